"""Writes for swarms, versions and runs."""

from swarms.services.runs import (
    run_cancel,
    run_create,
    run_create_for_swarm,
    run_create_from_source,
    run_retry,
)
from swarms.services.swarms import (
    swarm_create,
    swarm_purge,
    swarm_restore,
    swarm_soft_delete,
    swarm_update,
    swarm_version_create,
)

__all__ = [
    "run_cancel",
    "run_create",
    "run_create_for_swarm",
    "run_create_from_source",
    "run_retry",
    "swarm_create",
    "swarm_purge",
    "swarm_restore",
    "swarm_soft_delete",
    "swarm_update",
    "swarm_version_create",
]

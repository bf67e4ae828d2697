"""The periodic jobs' work as plain functions, under their Celery task names: Celery's tasks
(swarms/tasks.py, sent by beat) call them, and the embedded timer (sverm/periodic.py) calls them
in its own thread without Celery, which a process with no broker then never imports."""

from collections.abc import Callable

from swarms.services.approvals import approvals_expire, budget_pauses_expire
from swarms.services.dispatch import runs_redispatch_queued
from swarms.services.lifecycle import runs_reap_stale
from swarms.services.retention import retention_enforce


def stale_runs_recover() -> list[str]:
    """Resume (or fail) runs whose worker stopped sending heartbeats, send again the start of
    runs queued for long (it may not have reached the broker), deny the tool calls whose
    approval's deadline passed (their runs resume) and fail the runs whose budget pause did; the
    ids of the runs it failed."""
    reaped = runs_reap_stale()
    approvals_expire()
    reaped += budget_pauses_expire()
    runs_redispatch_queued()
    return reaped


def retention_apply() -> dict:
    """Prune expired runs' events and output, purge the expired trash; what it removed."""
    return retention_enforce().as_dict()


# Celery task name -> its work (the names sverm/periodic.py's PERIODIC_TASKS declare).
PERIODIC_JOBS: dict[str, Callable[[], object]] = {
    "swarms.reap_stale_runs": stale_runs_recover,
    "swarms.prune_retention": retention_apply,
}

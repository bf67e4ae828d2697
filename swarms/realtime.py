"""Realtime fan-out of run events: one group name helper per stream and one `publish` function.

The channel layer is at-most-once (channels-redis drops when a mailbox is full), so the database
stays the source of truth: streams replay from it and fill any gap in `seq` from it.
"""

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from swarms.models import Run, RunEvent

logger = logging.getLogger(__name__)

# What the channel layer raises when Redis is unreachable (the in-memory layer never does).
LAYER_ERRORS = (RedisError, ConnectionError)

STATUS_EVENT_TYPES = {
    "run.started",
    "run.progress",
    "run.completed",
    "run.failed",
    "run.cancelled",
}
TERMINAL_EVENT_TYPES = {"run.completed", "run.failed", "run.cancelled"}


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


def workspace_group(workspace_id: str) -> str:
    return f"workspace.{workspace_id}"


def event_message(event: RunEvent) -> dict[str, Any]:
    """The wire shape of one run event: `{seq, type, run_id, agent_id, data, ts}`."""
    return {
        "seq": event.seq,
        "type": event.type,
        "run_id": event.run_id,
        "agent_id": event.agent_id or None,
        "data": event.data,
        "ts": event.created_at.isoformat().replace("+00:00", "Z"),
    }


def status_message(run: Run) -> dict[str, Any]:
    """A workspace stream's `run.status` message: where one run stands."""
    return {
        "type": "run.status",
        "run_id": run.pk,
        "swarm_id": run.swarm_id,
        "template_id": run.template_id or None,
        "status": run.status,
        "progress": run.progress,
        "cost_usd": format(run.current_cost_usd.normalize(), "f"),
        "agents_active": run.agents_active,
        "agents_total": run.agents_total,
        "ts": (run.completed_at or run.started_at or run.created_at)
        .isoformat()
        .replace("+00:00", "Z"),
    }


def publish(event: RunEvent) -> None:
    """Send a stored event to its run's stream, and status changes to its workspace's stream.
    Called after the event's transaction commits; never blocks on slow readers. With Redis
    unreachable it only logs: the event is stored, and streams catch up from the database."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _publish(event, async_to_sync(layer.group_send))
    except LAYER_ERRORS as error:
        logger.warning(
            "run %s: event %d not published (%r); its streams catch up from the database",
            event.run_id, event.seq, error,
        )  # fmt: skip


def _publish(event: RunEvent, send: Callable[[str, dict], None]) -> None:
    send(run_group(event.run_id), {"type": "run.event", "event": event_message(event)})
    if event.type in STATUS_EVENT_TYPES:
        run = Run.objects.only(
            "id", "workspace_id", "swarm_id", "template_id", "status", "progress",
            "current_cost_usd", "agents_active", "agents_total", "created_at", "started_at",
            "completed_at",
        ).get(pk=event.run_id)  # fmt: skip
        if event.type in TERMINAL_EVENT_TYPES:
            # The terminal event is stored before the run row is finished; say what it will be.
            run.status = event.type.split(".", 1)[1]
            run.agents_active = 0
            if "cost_usd" in event.data:
                run.current_cost_usd = Decimal(event.data["cost_usd"])
            if run.status == "completed":
                run.progress = 1.0
        send(workspace_group(run.workspace_id), {"type": "run.status", "run": status_message(run)})

"""Realtime fan-out of run events: one group name helper per stream and one `publish` function.

The channel layer is at-most-once (channels-redis drops when a mailbox is full), so the database
stays the source of truth: streams replay from it and fill any gap in `seq` from it.
"""

import asyncio
import copy
import logging
import threading
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from sverm.api.money import money_fields_rendered
from sverm.money import money_json
from sverm.per_process import PerProcess
from swarms.engine.events import STATUS_EVENTS, RunState, as_of
from swarms.models import Run, RunEvent

logger = logging.getLogger(__name__)


def _layer_errors() -> tuple[type[Exception], ...]:
    """What the channel layer raises when Redis is unreachable (the in-memory layer never does).
    Redis's client (~8 MiB) is imported only where the configured layer is channels-redis's."""
    if not settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis."):
        return (ConnectionError,)
    from redis.exceptions import RedisError

    return (RedisError, ConnectionError)


LAYER_ERRORS = _layer_errors()


@dataclass(frozen=True)
class StreamGroup:
    """One kind of channel-layer group: how a group of it is named, and every message type that
    is sent to it (what a stream joining it must have a handler for, swarms/consumers.py)."""

    prefix: str
    message_types: frozenset[str]

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}"


# One run's events: `run.events` batches from `publish_many`, and the single `run.event` that
# publishers before it sent (a rolling deploy still has some).
RUN_GROUP = StreamGroup("run", frozenset({"run.events", "run.event"}))
# Where each run of a workspace stands: `run.status`.
WORKSPACE_GROUP = StreamGroup("workspace", frozenset({"run.status"}))
# One batch's events (batches/realtime.py publishes them, batches/consumers.py streams them):
# `batch.events` batches, as for runs.
BATCH_GROUP = StreamGroup("batch", frozenset({"batch.events"}))


def run_group(run_id: str) -> str:
    return RUN_GROUP.name(run_id)


def workspace_group(workspace_id: str) -> str:
    return WORKSPACE_GROUP.name(workspace_id)


def event_message(event: RunEvent) -> dict[str, Any]:
    """The wire shape of one run event: `{seq, type, run_id, agent_id, data, ts}`, its money as
    on every other surface (sverm/api/money.py)."""
    return {
        "seq": event.seq,
        "type": event.type,
        "run_id": event.run_id,
        "agent_id": event.agent_id or None,
        "data": money_fields_rendered(event.data),
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
        "cost_usd": money_json(run.current_cost_usd),
        "agents_active": run.agents_active,
        "agents_total": run.agents_total,
        "ts": (run.completed_at or run.started_at or run.created_at)
        .isoformat()
        .replace("+00:00", "Z"),
    }


def publish(event: RunEvent) -> None:
    publish_many([event])


def publish_many(events: list[RunEvent], *, run: Run | None = None) -> None:
    """Send stored events (of one run, in order) to its stream as one `run.events` message, and
    the run's status after them to its workspace's stream. Called after the events' transaction
    commits; it only hands the messages to this process's publisher, so it never waits on Redis
    or slow readers. With Redis unreachable the publisher only logs: the events are stored, and
    streams catch up from the database.

    `run`, when the caller has it (with the STATUS_FIELDS loaded, as of the last event), saves
    the query for status messages."""
    if not events or get_channel_layer() is None:
        return
    group = run_group(events[0].run_id)
    sends = [(group, {"type": "run.events", "events": [event_message(e) for e in events]})]
    # The workspace stream says where each run stands: the batch's last status change is it.
    changes = [event for event in events if event.type in STATUS_EVENTS]
    if changes:
        if run is None:
            run = Run.objects.only(*STATUS_FIELDS).get(pk=changes[-1].run_id)
        status = status_message(_as_of(run, changes[-1]))
        sends.append((workspace_group(run.workspace_id), {"type": "run.status", "run": status}))
    label = f"run {events[0].run_id}: events {events[0].seq}-{events[-1].seq}"
    _publisher().submit(label, sends)


STATUS_FIELDS = (
    "id", "workspace_id", "swarm_id", "template_id", "status", "progress", "current_cost_usd",
    "agents_active", "agents_total", "created_at", "started_at", "completed_at",
)  # fmt: skip


def _as_of(run: Run, event: RunEvent) -> Run:
    """The run as a status event says it stands (a batch's row shows only its end state)."""
    before = RunState(run.status, run.progress, run.current_cost_usd, run.agents_active)
    after = as_of(before, event.type, event.data)
    run = copy.copy(run)
    run.status, run.progress = after.status, after.progress
    run.current_cost_usd, run.agents_active = after.cost_usd, after.agents_active
    return run


def publish_to_groups(label: str, sends: list[tuple[str, dict]]) -> None:
    """Hand `(group, message)` sends to this process's publisher, in order, without waiting
    (how other apps' streams publish: see `publish_many`); `label` names them in its logs."""
    if sends and get_channel_layer() is not None:
        _publisher().submit(label, sends)


SEND_TIMEOUT = 5.0


class Publisher:
    """One event loop thread per process that sends to the channel layer, in the order it was
    given messages. A fresh loop per publish (what `async_to_sync` from a plain thread does) costs
    channels-redis a new connection every time; this loop keeps its connections."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue | None = None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="sverm-publisher", daemon=True
        )
        self._thread.start()
        ready.wait()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, label: str, sends: list[tuple[str, dict]]) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (label, sends))

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._queue = asyncio.Queue()
        self._loop.call_soon(ready.set)
        self._loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        while True:
            label, sends = await self._queue.get()
            try:
                layer = get_channel_layer()  # the configured one (tests may swap it)
                for group, message in sends:
                    # Bounded: one send that never returns must not stall every later event.
                    await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT)
            except (*LAYER_ERRORS, TimeoutError) as error:
                logger.warning(
                    "%s not published (%r); its streams catch up from the database", label, error
                )
            except Exception:
                logger.exception("%s not published; its streams catch up from the database", label)


_publishers = PerProcess(Publisher)


def _publisher() -> Publisher:
    """This process's publisher."""
    return _publishers.get()

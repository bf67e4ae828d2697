"""A batch's events on the wire and to its stream's group (swarms/realtime.py's BATCH_GROUP),
published after the transaction that stored them commits."""

from typing import Any

from batches.models import BatchEvent
from sverm.api.money import money_fields_rendered
from swarms.realtime import BATCH_GROUP, publish_to_groups


def batch_event_message(event: BatchEvent) -> dict[str, Any]:
    """The wire shape of one batch event: `{seq, type, batch_id, data, ts}`, its money as on
    every other surface (sverm/api/money.py)."""
    return {
        "seq": event.seq,
        "type": event.type,
        "batch_id": event.batch_id,
        "data": money_fields_rendered(event.data),
        "ts": event.created_at.isoformat().replace("+00:00", "Z"),
    }


def publish_batch_events(events: list[BatchEvent]) -> None:
    """Send stored events (of one batch, in order) to its stream as one `batch.events` message.
    Never waits and never fails the change: streams fill what the channel layer loses from
    the database."""
    if not events:
        return
    batch_id = events[0].batch_id
    message = {"type": "batch.events", "events": [batch_event_message(e) for e in events]}
    label = f"batch {batch_id}: events {events[0].seq}-{events[-1].seq}"
    publish_to_groups(label, [(BATCH_GROUP.name(batch_id), message)])

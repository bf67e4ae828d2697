"""`WS /api/batches/{id}/stream`: one batch's events (each item's start and end, the overall
progress, then its terminal event), on the run stream's machinery (swarms/consumers.py
SeqStreamConsumer): `?after=<seq>` resumes, nothing is sent twice or skipped, and the stream
closes with 1000 after `batch.completed`, `batch.cancelled` or `batch.failed`."""

from channels.db import database_sync_to_async

from batches import selectors
from batches.models import BATCH_TERMINAL_EVENTS
from batches.realtime import batch_event_message
from swarms.consumers import SeqStreamConsumer
from swarms.realtime import BATCH_GROUP


class BatchStreamConsumer(SeqStreamConsumer):
    """Any batch the caller may see (viewer is enough)."""

    joins = (BATCH_GROUP,)
    handlers = {"batch.events": "on_live_events"}
    url_kwarg = "batch_id"
    terminal_types = frozenset(str(event_type) for event_type in BATCH_TERMINAL_EVENTS)

    async def find(self, caller, key: str) -> str:
        batch = await database_sync_to_async(selectors.batch_for_stream)(
            caller=caller, batch_id=key
        )
        self.batch_id = batch.pk
        return batch.pk

    def events_after(self, *, after: int, upto: int | None, limit: int) -> list:
        return selectors.batch_events_after(
            batch_id=self.batch_id, after=after, upto=upto, limit=limit
        )

    def terminal_seq(self) -> int | None:
        return selectors.batch_terminal_seq(batch_id=self.batch_id)

    def message_of(self, event) -> dict:
        return batch_event_message(event)

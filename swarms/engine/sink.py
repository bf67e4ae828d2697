"""Delivery of a run's events and usage to the caller's callbacks, one at a time, in order.

Agent tasks only enqueue (a plain, non-awaiting call), and a single drain task awaits the
callbacks. So callbacks never run concurrently, the order they see is the order things happened,
and cancelling an agent's call can never interrupt a half-written usage record or event.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from swarms.engine.types import Event, Step, Usage

logger = logging.getLogger(__name__)

_CLOSE = object()


async def _ignore(_item: Any) -> None:
    return None


# At most this many queued items go to one `on_batch` call.
BATCH_LIMIT = 200
# Before taking a batch the drain lets the loop turn this many times, so what the agents queue
# in the same moment (a call's settlement and the next call's reservation, parallel workers'
# reservations) goes in one batch: half the transactions of a run, for microseconds of delay.
LINGER_TURNS = 3


class EventSink:
    """With `on_batch`, everything queued by the time the drain gets to it (events, usage and
    steps, in order) goes to one call, so a caller that stores them can use one transaction for
    many; otherwise each item goes to its own callback."""

    def __init__(
        self,
        on_event: Callable[[Event], Awaitable[None]] | None = None,
        on_usage: Callable[[Usage], Awaitable[None]] | None = None,
        on_step: Callable[[Step], Awaitable[None]] | None = None,
        on_batch: Callable[[list[Event | Usage | Step]], Awaitable[None]] | None = None,
    ) -> None:
        self._on_event = on_event or _ignore
        self._on_usage = on_usage or _ignore
        self._on_step = on_step or _ignore
        self._on_batch = on_batch
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()  # set on the first callback that raises

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="swarm-event-sink")

    def event(self, type_: str, agent_id: str | None, data: dict[str, Any]) -> None:
        self._queue.put_nowait(Event(type=type_, agent_id=agent_id, data=data))

    def usage(self, usage: Usage) -> None:
        self._queue.put_nowait(usage)

    def step(self, step: Step) -> None:
        self._queue.put_nowait((step, None))

    async def step_recorded(self, step: Step) -> None:
        """Queue a step and wait until its callback has run (a reservation must be on record
        before the call it covers starts); raises what the callback raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((step, done))
        await done

    async def close(self) -> None:
        """Deliver everything queued so far, then stop."""
        self._queue.put_nowait(_CLOSE)
        if self._task is not None:
            await self._task

    def abort(self) -> None:
        """Stop delivering (the caller's own task is being cancelled)."""
        if self._task is not None:
            self._task.cancel()

    async def _drain(self) -> None:
        closing = False
        while not closing:
            item = await self._queue.get()
            if item is _CLOSE:
                return
            batch = [item]
            for _ in range(LINGER_TURNS):
                await asyncio.sleep(0)
            while len(batch) < BATCH_LIMIT and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _CLOSE:
                    closing = True
                    break
                batch.append(item)
            if self._on_batch is not None:
                await self._deliver(batch, self._on_batch)
            else:
                for one in batch:
                    await self._deliver([one], self._callback_for(one))

    def _callback_for(self, item: Any) -> Callable[[Any], Awaitable[None]]:
        if isinstance(item, Usage):
            return self._on_usage
        if isinstance(item, tuple):
            return self._on_step
        return self._on_event

    async def _deliver(self, batch: list[Any], callback: Callable[[Any], Awaitable[None]]):
        items = [item[0] if isinstance(item, tuple) else item for item in batch]
        waiting = [item[1] for item in batch if isinstance(item, tuple) and item[1] is not None]
        try:
            await callback(items if callback is self._on_batch else items[0])
        except Exception as exc:
            # Keep delivering: the terminal event matters most. The runner fails the run.
            logger.exception("swarm engine callback failed for %r", items)
            if self.failure is None:
                self.failure = exc
                self.failed.set()
            for done in waiting:
                if not done.done():
                    done.set_exception(exc)
        else:
            for done in waiting:
                if not done.done():
                    done.set_result(None)

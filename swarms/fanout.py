"""Per-process fan-out of channel-layer groups: one membership per group per process, relayed to
every stream of that group this process serves.

With a channel per stream, every stream runs its own receive on the channel layer, and Channels
dispatches each message to it through a new task and a hop to the database thread (to close
stale connections): 500 streams of one run cost 500 of each per event, which one process could
not do 50 times a second (benchmark 6). A relay receives each message once and passes that one
object to each local stream's queue, so the work per event and stream is a queue put and one
send.

The channel layer stays at-most-once and so does the relay: a stream whose queue is full loses
the message (and fills the gap from the database, as for a message the channel layer dropped).

A relay whose receive fails (Redis restarted or unreachable: a restart forgets every group)
joins its group again as soon as Redis answers, within RETRY_SECONDS, and tells its streams,
which then catch up from the database: a restart heals in about a second of Redis being back,
without waiting for a stream's quiet-period resync.
"""

import asyncio
import contextlib
import logging
import weakref
from typing import Protocol

from channels.layers import BaseChannelLayer

from swarms.realtime import LAYER_ERRORS

logger = logging.getLogger(__name__)

# While the channel layer is unreachable, a relay's receive is tried again this often.
RETRY_SECONDS = 1.0


class Subscriber(Protocol):
    def live_put(self, message: dict) -> None:
        """Take one message from the group (without waiting: the relay serves every stream)."""

    def layer_lost(self, error: Exception) -> None:
        """The channel layer failed; the group may have to be joined again."""

    def layer_back(self) -> None:
        """The relay is in the group again after the channel layer failed: catch up now."""


class GroupRelay:
    """One group's membership in this process: a channel in the group, and a task that receives
    from it and hands every message to each subscriber, in the order received."""

    def __init__(self, layer: BaseChannelLayer, group: str, channel: str) -> None:
        self.layer = layer
        self.group = group
        self.channel = channel
        self.subscribers: dict[Subscriber, None] = {}  # an ordered set
        self.task = asyncio.create_task(self.relay(), name=f"relay {group}")

    async def relay(self) -> None:
        rejoin = False  # the receive failed: the membership may be gone with Redis
        while True:
            if rejoin:
                try:
                    await self.layer.group_add(self.group, self.channel)
                except LAYER_ERRORS:
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                except Exception:
                    logger.exception("relay of %s: joining again failed; trying again", self.group)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                rejoin = False
                for subscriber in list(self.subscribers):
                    subscriber.layer_back()
            try:
                message = await self.layer.receive(self.channel)
            except LAYER_ERRORS as error:
                for subscriber in list(self.subscribers):
                    subscriber.layer_lost(error)
                rejoin = True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception:
                logger.exception("relay of %s: receive failed; trying again", self.group)
                rejoin = True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for subscriber in list(self.subscribers):
                subscriber.live_put(message)


class Fanout:
    """The relays of one event loop (a server process has one; tests start a loop per test)."""

    def __init__(self) -> None:
        self.relays: dict[tuple[BaseChannelLayer, str], GroupRelay] = {}

    async def join(self, layer: BaseChannelLayer, group: str, subscriber: Subscriber) -> None:
        """Subscribe to `group`, and (re-)add this process's relay to it: idempotent, and what
        heals a membership that a restarted Redis forgot. Raises the channel layer's error
        when it is unreachable; the subscriber stays subscribed, so a later join by any
        stream of the group brings its messages back."""
        relay = self.relays.get((layer, group))
        if relay is None:
            channel = await layer.new_channel()
            relay = self.relays.get((layer, group))  # another stream may have made it meanwhile
            if relay is None:
                relay = self.relays[layer, group] = GroupRelay(layer, group, channel)
        relay.subscribers[subscriber] = None
        await layer.group_add(group, relay.channel)

    def leave(self, layer: BaseChannelLayer, group: str, subscriber: Subscriber) -> None:
        """Unsubscribe (without waiting, so it also works while the stream is being cancelled);
        the last subscriber out ends the relay and its membership."""
        relay = self.relays.get((layer, group))
        if relay is None or subscriber not in relay.subscribers:
            return
        del relay.subscribers[subscriber]
        if relay.subscribers:
            return
        del self.relays[layer, group]
        relay.task.cancel()
        discard = asyncio.create_task(_discard(layer, group, relay.channel))
        _discards.add(discard)
        discard.add_done_callback(_discards.discard)

    def subscribers(self, layer: BaseChannelLayer, group: str) -> int:
        relay = self.relays.get((layer, group))
        return len(relay.subscribers) if relay else 0


async def _discard(layer: BaseChannelLayer, group: str, channel: str) -> None:
    # An unreachable layer forgets the membership by itself (group expiry, or a Redis restart).
    with contextlib.suppress(*LAYER_ERRORS):
        await layer.group_discard(group, channel)


_discards: set[asyncio.Task] = set()  # running discards (a task nobody holds may be collected)
_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout]" = (
    weakref.WeakKeyDictionary()
)


def fanout() -> Fanout:
    """The running event loop's fan-out."""
    loop = asyncio.get_running_loop()
    found = _fanouts.get(loop)
    if found is None:
        found = _fanouts[loop] = Fanout()
    return found

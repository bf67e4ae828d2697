"""The embedded mode's channel layer: Channels' in-memory layer, made safe to publish into from
the run executor's threads, and cheap with many streams open.

The in-memory layer keeps asyncio queues that belong to the web server's event loop. Engine
threads publish from other loops, so every operation hops onto the loop that reads from the layer
(the "home" loop, set on the first receive); all its state is then touched by one loop only.

Channels' layer sweeps every channel and group for expired messages and memberships on each send
and receive, so a batch of events sent to a run's group cost a sweep of all the open streams per
stream in it: with 100 streams open, about a tenth of the embedded server's time under 100 runs at
once (bench/README.md, "Many runs at once"). Here the sweep runs at most once every
SWEEP_SECONDS (expiry is counted in seconds: messages expire after 60, memberships after a day),
and a group's members are sent to in turn rather than through a task each.
"""

import asyncio
import contextlib
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_SECONDS = 1.0


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._home: asyncio.AbstractEventLoop | None = None
        self._swept_at = float("-inf")

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        super()._clean_expired()

    async def _on_home(self, method, *args):
        home, current = self._home, asyncio.get_running_loop()
        if home is None or home is current or home.is_closed() or not home.is_running():
            # No reader's loop to hop to (gone, or stopped without being closed): waiting on
            # it would never return.
            return await method(*args)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(method(*args), home))

    async def receive(self, channel):
        if self._home is None or self._home.is_closed():
            self._home = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel, message):
        return await self._on_home(super().send, channel, message)

    async def _group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            with contextlib.suppress(ChannelFull):  # a full mailbox drops (streams catch up)
                # On the home loop already, and the in-memory send never waits.
                await InMemoryChannelLayer.send(self, channel, message)

    async def group_send(self, group, message):
        return await self._on_home(self._group_send, group, message)

    async def group_add(self, group, channel):
        return await self._on_home(super().group_add, group, channel)

    async def group_discard(self, group, channel):
        return await self._on_home(super().group_discard, group, channel)

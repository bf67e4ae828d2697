"""The embedded mode's channel layer: Channels' in-memory layer, made safe to publish into from
the run executor's threads.

The in-memory layer keeps asyncio queues that belong to the web server's event loop. Engine
threads publish from other loops, so every operation hops onto the loop that reads from the layer
(the "home" loop, set on the first receive); all its state is then touched by one loop only.
"""

import asyncio

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._home: asyncio.AbstractEventLoop | None = None

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

    async def group_send(self, group, message):
        return await self._on_home(super().group_send, group, message)

    async def group_add(self, group, channel):
        return await self._on_home(super().group_add, group, channel)

    async def group_discard(self, group, channel):
        return await self._on_home(super().group_discard, group, channel)

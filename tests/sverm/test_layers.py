"""The embedded channel layer: a group send reaches every member once, and the sweep for expired
messages runs at most once every SWEEP_SECONDS however many sends and receives."""

import asyncio

from channels.layers import InMemoryChannelLayer

from sverm import layers
from sverm.layers import ThreadSafeInMemoryChannelLayer


class CountingLayer(ThreadSafeInMemoryChannelLayer):
    sweeps = 0

    def _clean_expired(self):
        before = self._swept_at
        super()._clean_expired()
        if self._swept_at != before:
            self.sweeps += 1


def test_a_group_send_reaches_each_member_once_with_one_sweep():
    async def scenario():
        layer = CountingLayer()
        channels = [await layer.new_channel() for _ in range(50)]
        for channel in channels:
            await layer.group_add("run.x", channel)
        for _ in range(20):
            await layer.group_send("run.x", {"type": "run.events", "n": 1})
        got = [await layer.receive(channel) for channel in channels for _ in range(20)]
        return layer.sweeps, got

    sweeps, got = asyncio.run(scenario())
    assert len(got) == 50 * 20
    assert all(message == {"type": "run.events", "n": 1} for message in got)
    # Channels' own layer sweeps on every send and receive: 20 x (1 + 50) + 1,000 times here.
    assert sweeps == 1


def test_a_members_copy_is_its_own():
    async def scenario():
        layer = ThreadSafeInMemoryChannelLayer()
        one, two = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("g", one)
        await layer.group_add("g", two)
        await layer.group_send("g", {"type": "t", "data": {"k": [1]}})
        first = await layer.receive(one)
        first["data"]["k"].append(2)
        return await layer.receive(two)

    assert asyncio.run(scenario()) == {"type": "t", "data": {"k": [1]}}


def test_expired_messages_still_go_once_the_interval_has_passed(monkeypatch):
    monkeypatch.setattr(layers, "SWEEP_SECONDS", 0.05)

    async def scenario():
        layer = ThreadSafeInMemoryChannelLayer(expiry=0)
        stale = await layer.new_channel()
        await layer.group_add("g", stale)
        await layer.group_send("g", {"type": "t"})  # expires at once, never received
        await asyncio.sleep(0.1)
        fresh = await layer.new_channel()
        await layer.group_add("g", fresh)
        await layer.group_send("g", {"type": "t"})  # sweeps: the stale channel leaves the group
        return list(layer.groups["g"]), list(layer.channels), fresh

    members, channels, fresh = asyncio.run(scenario())
    assert members == channels == [fresh]


def test_a_full_member_does_not_stop_the_others():
    async def scenario():
        layer = ThreadSafeInMemoryChannelLayer(capacity=1)
        full, other = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("g", full)
        await layer.group_add("g", other)
        await InMemoryChannelLayer.send(layer, full, {"type": "first"})
        await layer.group_send("g", {"type": "second"})
        return await layer.receive(full), await layer.receive(other)

    assert asyncio.run(scenario()) == ({"type": "first"}, {"type": "second"})

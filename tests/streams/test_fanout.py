"""Per-process fan-out (swarms/fanout.py): one channel-layer membership per group and process,
each message handed to every local subscriber; subscribers come and go without disturbing the
others; a failing channel layer is reported to them and outlived.

First the relay alone (subscribers that only collect), then streams over the real ASGI stack."""

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer

from swarms import fanout as fanout_module
from swarms.fanout import Fanout
from swarms.realtime import run_group
from tests.streams.conftest import aadd_event, aadd_events, amake_run, jwt_for, open_stream
from tests.waiting import wait_for_async

pytestmark = pytest.mark.anyio


class Inbox:
    """A subscriber that keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.lost: list[Exception] = []
        self.back = 0

    def live_put(self, message: dict) -> None:
        self.messages.append(message)

    def layer_lost(self, error: Exception) -> None:
        self.lost.append(error)

    def layer_back(self) -> None:
        self.back += 1


def members(layer: InMemoryChannelLayer, group: str) -> int:
    return len(layer.groups.get(group, {}))


async def test_subscribers_share_one_membership_and_each_gets_every_message_in_order():
    layer, hub = InMemoryChannelLayer(), Fanout()
    first, second, third = Inbox(), Inbox(), Inbox()
    for inbox in (first, second, third):
        await hub.join(layer, "run.a", inbox)
    assert members(layer, "run.a") == 1
    for n in range(3):
        await layer.group_send("run.a", {"type": "run.events", "n": n})
    await wait_for_async(lambda: len(third.messages) == 3)
    for inbox in (first, second, third):
        assert [m["n"] for m in inbox.messages] == [0, 1, 2]
    # One object per message, whatever the number of subscribers (encoded once, too).
    assert first.messages[0] is second.messages[0] is third.messages[0]


async def test_a_subscriber_that_leaves_does_not_stop_the_others():
    layer, hub = InMemoryChannelLayer(), Fanout()
    leaving, staying = Inbox(), Inbox()
    await hub.join(layer, "run.b", leaving)
    await hub.join(layer, "run.b", staying)
    hub.leave(layer, "run.b", leaving)
    hub.leave(layer, "run.b", leaving)  # twice is harmless
    await layer.group_send("run.b", {"type": "run.events", "n": 1})
    await wait_for_async(lambda: len(staying.messages) == 1)
    assert leaving.messages == []
    assert (hub.subscribers(layer, "run.b"), members(layer, "run.b")) == (1, 1)

    hub.leave(layer, "run.b", staying)  # the last one out ends the membership
    await wait_for_async(lambda: members(layer, "run.b") == 0)
    assert hub.subscribers(layer, "run.b") == 0
    # A newcomer gets a membership of its own again.
    again = Inbox()
    await hub.join(layer, "run.b", again)
    await layer.group_send("run.b", {"type": "run.events", "n": 2})
    await wait_for_async(lambda: len(again.messages) == 1)
    assert staying.messages == [{"type": "run.events", "n": 1}]


async def test_groups_are_relayed_separately():
    layer, hub = InMemoryChannelLayer(), Fanout()
    a, b = Inbox(), Inbox()
    await hub.join(layer, "run.c", a)
    await hub.join(layer, "run.d", b)
    await layer.group_send("run.d", {"type": "run.events", "to": "d"})
    await layer.group_send("run.c", {"type": "run.events", "to": "c"})
    # A relay hands a message to all its subscribers at once: once each has one, it has all it
    # was handed, and the other group's are not among them.
    await wait_for_async(lambda: a.messages and b.messages)
    assert [m["to"] for m in a.messages] == ["c"]
    assert [m["to"] for m in b.messages] == ["d"]


class FlakyLayer(InMemoryChannelLayer):
    """Its receive fails `failures` times (Redis unreachable), then works; group_add fails
    while `adds_fail` is set."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.adds_fail = False
        self.adds_refused = 0

    async def receive(self, channel):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis is down")
        return await super().receive(channel)

    async def group_add(self, group, channel):
        if self.adds_fail:
            self.adds_refused += 1
            raise ConnectionError("redis is down")
        return await super().group_add(group, channel)


async def test_a_failing_receive_is_reported_to_every_subscriber_and_outlived(monkeypatch):
    monkeypatch.setattr(fanout_module, "RETRY_SECONDS", 0.01)
    layer, hub = FlakyLayer(failures=2), Fanout()
    a, b = Inbox(), Inbox()
    await hub.join(layer, "run.e", a)
    await hub.join(layer, "run.e", b)
    await wait_for_async(lambda: len(b.lost) == 2)
    assert [str(e) for e in a.lost] == ["redis is down"] * 2
    await layer.group_send("run.e", {"type": "run.events", "n": 1})
    await wait_for_async(lambda: len(a.messages) == len(b.messages) == 1)


async def test_after_an_outage_the_relay_joins_its_group_again_and_says_so_at_once(monkeypatch):
    # A restarted Redis forgets every group: the relay must not wait for a stream to join again.
    monkeypatch.setattr(fanout_module, "RETRY_SECONDS", 0.01)
    layer, hub = FlakyLayer(failures=1), Fanout()
    a, b = Inbox(), Inbox()
    await hub.join(layer, "run.g", a)
    await hub.join(layer, "run.g", b)
    # Before the relay's first receive: Redis goes (joins fail too while it is away), and
    # comes back without the group.
    layer.adds_fail = True
    layer.groups.clear()
    await wait_for_async(lambda: len(a.lost) == len(b.lost) == 1)
    await wait_for_async(lambda: layer.adds_refused >= 3)  # tries to join again, refused
    assert a.back == b.back == 0  # not back while joins fail
    layer.adds_fail = False
    await wait_for_async(lambda: a.back == b.back == 1)
    assert members(layer, "run.g") == 1
    await layer.group_send("run.g", {"type": "run.events", "n": 1})
    await wait_for_async(lambda: len(a.messages) == len(b.messages) == 1)


async def test_a_join_that_fails_keeps_the_subscriber_for_a_later_join():
    layer, hub = FlakyLayer(), Fanout()
    layer.adds_fail = True
    early = Inbox()
    with pytest.raises(ConnectionError):
        await hub.join(layer, "run.f", early)
    assert members(layer, "run.f") == 0
    layer.adds_fail = False
    late = Inbox()
    await hub.join(layer, "run.f", late)  # e.g. a resync: the membership is back for both
    await layer.group_send("run.f", {"type": "run.events", "n": 1})
    await wait_for_async(lambda: len(early.messages) == len(late.messages) == 1)


# ---------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------
pytest_django = pytest.mark.django_db(transaction=True)


@pytest_django
async def test_streams_of_one_run_share_one_membership_and_one_encoding(user, workspace):
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started"])
    jwt = jwt_for(user)
    path = f"/api/runs/{run.pk}/stream"
    layer = get_channel_layer()
    async with (
        open_stream(path, token=jwt) as a,
        open_stream(path, token=jwt) as b,
        open_stream(path, token=jwt) as c,
    ):
        for stream in (a, b, c):
            assert (await stream.next_json())["seq"] == 1  # the replay
        assert members(layer, run_group(run.pk)) == 1
        await aadd_event(run, "agent.message", text="to everyone")
        outputs = [await stream.next_output() for stream in (a, b, c)]
        assert {o["text"] for o in outputs} == {outputs[0]["text"]}
        assert '"seq": 2' in outputs[0]["text"]
        # The live event's JSON was encoded once for the three streams (the replayed one is
        # each stream's own).
        assert outputs[0]["text"] is outputs[1]["text"] is outputs[2]["text"]


@pytest_django
async def test_a_stream_that_leaves_does_not_stop_the_others(user, workspace):
    run = await amake_run(workspace)
    jwt = jwt_for(user)
    path = f"/api/runs/{run.pk}/stream"
    layer = get_channel_layer()
    async with open_stream(path, token=jwt) as staying, open_stream(path, token=jwt) as other:
        async with open_stream(path, token=jwt) as leaving:
            await aadd_event(run, "run.started")
            for stream in (staying, other, leaving):
                assert (await stream.next_json())["seq"] == 1
        # `leaving` hung up; the others go on, on the same membership.
        assert members(layer, run_group(run.pk)) == 1
        await aadd_event(run, "agent.message")
        await aadd_event(run, "run.completed", cost_usd="0")
        for stream in (staying, other):
            messages, code = await stream.until_close()
            assert ([m["seq"] for m in messages], code) == ([2, 3], 1000)
    await wait_for_async(lambda: members(layer, run_group(run.pk)) == 0)

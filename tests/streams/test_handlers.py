"""Stream classes declare the group kinds they join and a handler for each message type those
groups carry (swarms/consumers.py): a class that would join a group whose messages nothing
handles is refused when it is defined, joining an undeclared kind raises, and a class that
declares its handler receives the group's messages."""

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from swarms import consumers
from swarms.consumers import StreamConsumer
from swarms.realtime import RUN_GROUP, WORKSPACE_GROUP, StreamGroup
from tests.streams.conftest import TIMEOUT

pytestmark = pytest.mark.anyio

# A group kind of the tests' own, as swarms/realtime.py declares the real ones.
PING_GROUP = StreamGroup("ping", frozenset({"ping.sent"}))


class PingStream(StreamConsumer):
    """A stream that follows one ping group and sends each ping's `n` to its client."""

    joins = (PING_GROUP,)
    handlers = {"ping.sent": "ping_sent"}

    async def connect(self):
        await self.join(PING_GROUP, "one")
        await self.accept()
        self.start()

    async def ping_sent(self, message):
        await self.send_json({"n": message["n"]})


def test_a_stream_without_a_handler_for_its_groups_messages_is_refused_when_defined():
    with pytest.raises(TypeError, match=r"'ping'.*no handler.*'ping\.sent'"):

        class Deaf(StreamConsumer):  # joins ping groups, handles nothing
            joins = (PING_GROUP,)

    with pytest.raises(TypeError, match=r"'status_changed'"):

        class HalfDeaf(StreamConsumer):  # one of the workspace group's types, sent nowhere
            joins = (WORKSPACE_GROUP,)
            handlers = {"run.status": "status_changed"}

    with pytest.raises(TypeError, match=r"'run\.event'"):

        class Forgetful(consumers.RunStreamConsumer):  # drops a type its parent handled
            handlers = {"run.events": "run_events"}


def test_the_shipped_streams_handle_every_message_of_their_groups():
    for stream in (consumers.RunStreamConsumer, consumers.WorkspaceStreamConsumer):
        (group,) = stream.joins
        assert set(stream.handlers) == group.message_types, stream
    assert consumers.V1RunStreamConsumer.joins == (RUN_GROUP,)


async def test_joining_a_group_kind_the_class_did_not_declare_raises():
    stream = PingStream()
    # Not in its `joins`: nothing checked that its handlers take a run group's messages.
    with pytest.raises(TypeError, match=r"PingStream may not join 'run' groups"):
        await stream.join(RUN_GROUP, "run_x")
    assert stream.group is None  # refused before anything was joined


@pytest.mark.django_db(transaction=True)  # Channels closes stale connections per message
async def test_a_stream_that_declares_its_handler_receives_its_groups_messages():
    communicator = WebsocketCommunicator(PingStream.as_asgi(), "/ping")
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    layer = get_channel_layer()
    for n in (1, 2):
        await layer.group_send(PING_GROUP.name("one"), {"type": "ping.sent", "n": n})
    assert [await communicator.receive_json_from(TIMEOUT) for _ in range(2)] == [
        {"n": 1},
        {"n": 2},
    ]
    await communicator.disconnect()

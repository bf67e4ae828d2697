"""`sverm_websocket_connections` follows the streams: up by one while a client's stream is open,
by kind of stream, and down as it closes, whoever closes it; a refused socket never counts. The
real ASGI application over Channels' communicator (tests/streams/conftest.py)."""

import pytest

from tests.factories import add_events, make_run
from tests.metrics.conftest import increase, scrape
from tests.streams.conftest import (  # noqa: F401  (_sqlite_waits_on_locks: an autouse fixture)
    _sqlite_waits_on_locks,
    in_own_thread,
    jwt_for,
    open_stream,
    refusal,
)

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

GAUGE = "sverm_websocket_connections"
ascrape = in_own_thread(scrape)


async def test_open_streams_are_counted_by_kind_until_they_close(user, workspace):
    running = await in_own_thread(make_run)(workspace, status="running")
    token = jwt_for(user)
    before = await ascrape()
    async with open_stream(f"/api/runs/{running.pk}/stream", token=token) as run_stream:
        assert run_stream.accepted
        one = await ascrape()
        assert increase(before, one, GAUGE, stream="run") == 1
        async with open_stream(f"/api/workspaces/{workspace.pk}/stream", token=token) as ws:
            assert ws.accepted
            two = await ascrape()
            assert increase(before, two, GAUGE, stream="run") == 1
            assert increase(before, two, GAUGE, stream="workspace") == 1
            assert increase(before, two, GAUGE) == 2
        # The client hung up on the workspace stream.
        after_one = await ascrape()
        assert increase(before, after_one, GAUGE, stream="workspace") == 0
        assert increase(before, after_one, GAUGE, stream="run") == 1
    assert increase(before, await ascrape(), GAUGE) == 0


async def test_a_stream_the_server_closes_stops_counting(user, workspace):
    finished = await in_own_thread(make_run)(workspace, status="completed")
    await in_own_thread(add_events)(finished, ["run.started", "run.completed"])
    before = await ascrape()
    async with open_stream(f"/v1/swarms/{finished.pk}/stream", token=jwt_for(user)) as stream:
        assert stream.accepted
        messages, code = await stream.until_close()  # a finished run: replayed, then closed
        assert (len(messages), code) == (2, 1000)
    assert increase(before, await ascrape(), GAUGE) == 0


async def test_refused_sockets_are_not_counted(user, workspace, other_workspace):
    before = await ascrape()
    assert await refusal(f"/api/workspaces/{workspace.pk}/stream", token="not-a-jwt") == 4401
    assert await refusal(f"/api/workspaces/{other_workspace.pk}/stream", token=jwt_for(user)) == (
        4404
    )
    assert await refusal("/api/nowhere/stream", token=jwt_for(user)) == 4404
    assert increase(before, await ascrape(), GAUGE) == 0
    assert "none" not in (await ascrape()).label_values(GAUGE, "stream")

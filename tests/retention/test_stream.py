"""Why pruning keeps the terminal event: a stream of a pruned run replays it and closes
normally, instead of staying open waiting for an end that was deleted."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from swarms.services.retention import runs_prune_expired
from tests.retention.conftest import NOW, finished_run
from tests.streams.conftest import anyio_backend, jwt_for, open_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


def pruned_run(workspace):
    run = finished_run(workspace, ago=timedelta(days=31))
    assert runs_prune_expired(now=NOW).runs == 1
    return run


@pytest.mark.parametrize("path", ["/api/runs/{run}/stream", "/v1/swarms/{run}/stream"])
@pytest.mark.parametrize(("after", "expected"), [(None, [5]), (0, [5]), (3, [5]), (5, [])])
async def test_a_pruned_runs_stream_sends_its_terminal_event_and_closes_1000(
    workspace, user, path, after, expected
):
    run = await database_sync_to_async(pruned_run)(workspace)
    url = path.format(run=run.pk) + ("" if after is None else f"?after={after}")
    async with open_stream(url, token=jwt_for(user)) as stream:
        assert stream.accepted
        messages, code = await stream.until_close()
    assert [message["seq"] for message in messages] == expected
    assert all(message["type"] == "run.completed" for message in messages)
    assert all(message["data"]["output"] == "" for message in messages)
    assert code == 1000

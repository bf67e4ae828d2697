"""Streams over the real stack: a Celery worker executes a run and publishes through Redis, Daphne
serves the sockets, PostgreSQL holds the events the streams replay from. A client that drops
mid-run and reconnects with `after` sees every seq exactly once."""

import asyncio
import json
import re

import httpx
import pytest
import websockets

from tests.processes import manage

pytestmark = pytest.mark.integration

TIMEOUT = 30.0  # per message: a research run's simulated calls take about a second each
TERMINAL_TYPES = {"run.completed", "run.failed", "run.cancelled"}
SEEN_BEFORE_DROP = 3


@pytest.fixture(autouse=True)
def _unbuffered_children(monkeypatch):
    """Daphne writes its access log to stdout, which is block-buffered into daphne.log: make it
    line-current so the log read below is the whole log. (Autouse fixtures are set up before
    `stack_env` copies the environment.)"""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")


def bootstrap(stack_env) -> tuple[str, str]:
    """The bootstrap admin's workspace id and API key."""
    out = manage(
        stack_env, "bootstrap", "--email", "streams@example.com", "--password", "Pa55-word!x",
        "--plan", "team",
    )  # fmt: skip
    workspace_id = re.search(r"^Workspace: .* (wsp_\S+) \(plan", out, re.M).group(1)
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    return workspace_id, key


async def next_message(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def until_close(ws) -> list[dict]:
    """Every message up to the server's close."""
    messages = []
    try:
        while True:
            messages.append(await next_message(ws))
    except websockets.ConnectionClosed:
        return messages


async def stored_events(http: httpx.AsyncClient, run_id: str, headers: dict) -> list[dict]:
    events, params = [], {"limit": 100}
    while True:
        page = await http.get(f"/api/runs/{run_id}/events", params=params, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        events += body["data"]
        if not body["pageInfo"]["hasNextPage"]:
            return events
        params["after"] = body["pageInfo"]["endCursor"]


async def watch_workspace(ws, statuses: list[dict], run_id: asyncio.Future) -> None:
    """Collect `run.status` messages until the run (known once created) is terminal."""
    while True:
        message = await next_message(ws)
        statuses.append(message)
        if (
            run_id.done()
            and message["run_id"] == run_id.result()
            and message["status"] in {"completed", "failed", "cancelled"}
        ):
            return


async def scenario(base: str, workspace_id: str, key: str) -> dict:
    ws_base = base.replace("http://", "ws://")
    auth = {"Authorization": f"Bearer {key}"}
    result: dict = {}
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http:
        board = await websockets.connect(
            f"{ws_base}/api/workspaces/{workspace_id}/stream?token={key}", open_timeout=TIMEOUT
        )
        run_id: asyncio.Future = asyncio.get_running_loop().create_future()
        statuses: list[dict] = []
        watcher = asyncio.create_task(watch_workspace(board, statuses, run_id))

        started = await http.post(
            "/v1/swarms",
            json={"template": "research-swarm-v1", "task": "Norwegian hydrogen economy"},
            headers=auth,
        )
        assert started.status_code == 201, started.text
        run_id.set_result(started.json()["swarm_id"])
        result["run_id"] = run = run_id.result()

        # First connection: ?token= on /v1, a few events, then the network drops.
        first = await websockets.connect(
            f"{ws_base}/v1/swarms/{run}/stream?token={key}", open_timeout=TIMEOUT
        )
        before = [await next_message(first) for _ in range(SEEN_BEFORE_DROP)]
        first.transport.abort()
        await first.wait_closed()
        last_seen = before[-1]["seq"]

        # Let the run move on while nobody listens, so the reconnect must replay from the DB.
        for _ in range(int(TIMEOUT / 0.1)):
            if len(await stored_events(http, run, auth)) > last_seen + 1:
                break
            await asyncio.sleep(0.1)
        result["stored_at_reconnect"] = len(await stored_events(http, run, auth))

        # Second connection: Authorization header on /api, from the last seq seen.
        second = await websockets.connect(
            f"{ws_base}/api/runs/{run}/stream?after={last_seen}",
            additional_headers=auth,
            open_timeout=TIMEOUT,
        )
        after = await until_close(second)
        result["close_code"] = second.close_code

        await asyncio.wait_for(watcher, TIMEOUT)
        await board.close()
        result.update(
            before=before,
            after=after,
            statuses=[s for s in statuses if s["run_id"] == run],
            stored=await stored_events(http, run, auth),
            final=(await http.get(f"/v1/swarms/{run}", headers=auth)).json(),
        )
    return result


def test_a_dropped_stream_resumes_with_after_and_sees_every_event_once(
    server, celery_worker, stack_env, tmp_path
):
    workspace_id, key = bootstrap(stack_env)
    result = asyncio.run(asyncio.wait_for(scenario(server, workspace_id, key), 180))
    run_id, before, after = result["run_id"], result["before"], result["after"]

    # The drop was mid-run, and the run went on while the client was away.
    assert not TERMINAL_TYPES & {m["type"] for m in before}
    assert result["stored_at_reconnect"] > before[-1]["seq"] + 1
    assert after, "nothing after the reconnect"
    assert after[0]["seq"] == before[-1]["seq"] + 1

    streamed = before + after
    n = len(streamed)
    assert [m["seq"] for m in streamed] == list(range(1, n + 1))  # contiguous, no duplicate
    assert streamed[0]["type"] == "run.started"
    assert streamed[-1]["type"] == "run.completed"
    assert [m["type"] for m in streamed].count("run.completed") == 1
    assert result["close_code"] == 1000
    assert {m["run_id"] for m in streamed} == {run_id}
    assert [(e["seq"], e["type"]) for e in result["stored"]] == [
        (m["seq"], m["type"]) for m in streamed
    ]

    statuses = result["statuses"]
    assert statuses, "the workspace stream said nothing about the run"
    assert {s["type"] for s in statuses} == {"run.status"}
    assert statuses[-1]["status"] == "completed"
    assert [s["status"] for s in statuses[:-1]] == ["running"] * (len(statuses) - 1)
    assert statuses[-1]["progress"] == 1.0 and statuses[-1]["agents_active"] == 0
    assert result["final"]["status"] == "completed"
    # One money format everywhere: the stream's messages carry the cost as /v1 does, a number
    # rounded down to 6 places.
    final_cost = statuses[-1]["cost_usd"]
    assert isinstance(final_cost, float) and final_cost > 0
    assert final_cost == streamed[-1]["data"]["cost_usd"] == result["final"]["current_cost_usd"]

    # The key travelled in a query string three times; no log may keep it.
    daphne_log = (tmp_path / "daphne.log").read_text()
    assert f"WSCONNECTING /v1/swarms/{run_id}/stream" in daphne_log  # the log is the real one
    assert f"WSCONNECTING /api/workspaces/{workspace_id}/stream" in daphne_log
    assert key not in daphne_log
    assert key[len("sk-sverm-") :] not in daphne_log
    assert key not in (tmp_path / "worker.log").read_text()

"""Streams that heal, over real processes: Daphne (`python -m sverm.server`) with channels-redis on
a redis-server of this file's own, runs executed by the thread executor inside Daphne (so the
process that publishes is the one that streams, except in 1), PostgreSQL holding the events.

1. A mailbox of one message overflows: the process serving the streams stalls mid-run while
   another executes the run, until the channel layer has dropped messages for it; its slow
   readers still see every seq once, in order, up to the terminal event. (A slow WebSocket
   client alone never fills a mailbox: Daphne buffers what a stream sends without waiting for
   the client, so only a process that stops reading does.)
2. Redis is killed and started again on its port mid-run while clients connect and disconnect in
   a loop; every client that stays sees every seq after its `after` once, in order, and the run
   ends completed.
3. The same restart under streams that stay, with nobody joining after it: each run stream and
   the workspace stream delivers again within the README's bound of Redis being back.

The Redis here is started per test on a free port, never the shared one (whose db 0 and Celery
queue other suites use), and this file uses none of the Celery fixtures of conftest.py.
"""

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
from django.db import connection

from tests.integration.conftest import spawn, unavailable
from tests.processes import (
    RedisServer,
    free_port,
    manage,
    stop,
    wait_for_line,
    wait_until_serving,
)
from tests.waiting import wait_for_async

pytestmark = pytest.mark.integration

TIMEOUT = 30.0  # per message; a stream quiet for 2 s resyncs from the database
# The README's bound on a stream's silence after a Redis restart, from Redis being back.
HEAL_BOUND_SECONDS = 5.0
TERMINAL_TYPES = {"run.completed", "run.failed", "run.cancelled"}
# What a child process must not inherit: the test run's settings, and LLM credentials (runs here
# are simulated).
DROPPED = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "DEEPSEEK_API_KEY", "SVERM_PROVIDERS"}


def wide_run(workers: int, max_parallel: int) -> str:
    """Inline YAML of a parallel run: `workers` short simulated calls and an aggregator, each
    emitting agent.started, agent.message, agent.completed and run.progress."""
    entries = []
    for index, start in enumerate(range(0, workers, 16)):
        replicas = min(16, workers - start)
        entries.append(
            f"  - {{id: w{index}, role: worker, model: gpt-4o-mini, replicas: {replicas}, "
            "max_tokens: 64}"
        )
    return "\n".join(
        [
            "topology: parallel",
            f"limits: {{max_parallel: {max_parallel}, max_steps: {workers + 1}}}",
            "agents:",
            *entries,
            "  - {id: merger, role: aggregator, model: gpt-4o-mini, max_tokens: 64}",
        ]
    )


@dataclass
class Stack:
    """One server of the stack (its URL, process and log) and the workspace's admin key."""

    base: str
    key: str
    workspace_id: str
    log: Path
    process: subprocess.Popen
    serve: Callable[[str], "Stack"] = field(repr=False)

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def another_server(self, name: str) -> "Stack":
        """A second server process of the same stack (database, Redis, settings, key): it
        executes the runs created through it and streams from the channel layer like this one;
        its log is tmp_path/<name>.log."""
        return self.serve(name)


@pytest.fixture
def start_stack(transactional_db, redis_server, tmp_path):
    """`start_stack(**environment)`: bootstrap, then Daphne on this file's Redis with the
    thread executor and the given settings; returns the Stack."""
    if connection.vendor != "postgresql":
        unavailable("integration tests need DATABASE_URL pointing at PostgreSQL")
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    processes: list[subprocess.Popen] = []

    def start(**environment: str) -> Stack:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "PYTEST_")) and k not in DROPPED
        }
        env.update(
            DJANGO_SETTINGS_MODULE="sverm.settings",
            DATABASE_URL=database_url,
            REDIS_URL=redis_server.url,
            SECRET_KEY="stream-heal-" + "x" * 40,
            DEBUG="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SVERM_EXECUTOR="thread",
            # Quiet streams resync every ~2 s here unless a test says (15 s by default), so a
            # dropped message heals within the test's patience.
            SVERM_STREAM_RESYNC_SECONDS="2",
            PYTHONUNBUFFERED="1",
        )
        env.update(environment)
        out = manage(
            {**env, "SVERM_DATA_DIR": str(tmp_path)}, "bootstrap", "--email",
            "heal@example.com", "--password", "Pa55-word!x", "--plan", "team",
        )  # fmt: skip
        key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
        workspace_id = re.search(r"^Workspace: .* (wsp_\S+) \(plan", out, re.M).group(1)

        def serve(name: str) -> Stack:
            port = free_port()
            process = spawn(
                env, tmp_path, name,
                "sverm.server", "-b", "127.0.0.1", "-p", str(port), "sverm.asgi:application",
            )  # fmt: skip
            processes.append(process)
            stack = Stack(
                base=f"http://127.0.0.1:{port}", key=key, workspace_id=workspace_id,
                log=tmp_path / f"{name}.log", process=process, serve=serve,
            )  # fmt: skip
            wait_until_serving(process, stack.base, stack.log)
            return stack

        return serve("daphne")

    yield start
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # a test may have left it stopped
            stop(process)


# --- clients ----------------------------------------------------------------------------------


async def start_run(http: httpx.AsyncClient, stack: Stack, yaml: str) -> str:
    started = await http.post(
        "/v1/swarms",
        json={"template": yaml, "task": "Ideas for a quiet city street"},
        headers=stack.auth,
    )
    assert started.status_code == 201, started.text
    return started.json()["swarm_id"]


async def stored_at_least(http: httpx.AsyncClient, stack: Stack, run_id: str, count: int):
    """Wait until the run has stored `count` events."""

    async def enough() -> bool:
        return len(await stored_events(http, stack, run_id)) >= count

    await wait_for_async(enough, f"run {run_id}'s first {count} events", interval=0.1)


async def stored_events(http: httpx.AsyncClient, stack: Stack, run_id: str) -> list[dict]:
    events, params = [], {"limit": 100}
    while True:
        page = await http.get(f"/api/runs/{run_id}/events", params=params, headers=stack.auth)
        assert page.status_code == 200, page.text
        body = page.json()
        events += body["data"]
        if not body["pageInfo"]["hasNextPage"]:
            return events
        params["after"] = body["pageInfo"]["endCursor"]


@dataclass
class Watch:
    """What one client saw on one connection, and when (monotonic seconds) each message came."""

    after: int
    messages: list[dict]
    close_code: int | None
    times: list[float]

    @property
    def seqs(self) -> list[int]:
        return [message["seq"] for message in self.messages]


async def watch_to_the_end(
    stack: Stack,
    run_id: str,
    after: int,
    delay: float = 0.0,
    timeout: float = TIMEOUT,
    connected: asyncio.Event | None = None,
) -> Watch:
    """Stay connected until the server closes, reading a message every `delay` seconds (and
    failing when none comes for `timeout`); `connected` is set once the server accepted (and
    so the stream is in its group)."""
    url = f"{stack.ws_base}/api/runs/{run_id}/stream?token={stack.key}&after={after}"
    async with websockets.connect(url, open_timeout=TIMEOUT) as ws:
        if connected is not None:
            connected.set()
        messages, times = [], []
        try:
            while True:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
                times.append(time.monotonic())
                if delay:
                    await asyncio.sleep(delay)
        except websockets.ConnectionClosed:
            pass
        return Watch(after, messages, ws.close_code, times)


def assert_saw_everything_once(watch: Watch, stored: list[dict]) -> None:
    expected = [event for event in stored if event["seq"] > watch.after]
    assert watch.seqs == [event["seq"] for event in expected], (watch.after, watch.seqs)
    assert [m["type"] for m in watch.messages] == [event["type"] for event in expected]
    assert watch.messages[-1]["type"] in TERMINAL_TYPES
    assert watch.close_code == 1000


def healed(log: str) -> int:
    """How often the streams filled a gap or caught up from the database."""
    return len(re.findall(r"filling the gap from the database|events the channel layer lost", log))


# --- 1. a tiny mailbox ------------------------------------------------------------------------


async def tiny_mailbox_scenario(
    executor: Stack, streamer: Stack
) -> tuple[list[Watch], list[dict], dict]:
    """The run executes (and publishes) in `executor`; its slow readers stream from `streamer`,
    which stalls mid-run (SIGSTOP) until the channel layer has dropped a message for it."""
    async with httpx.AsyncClient(base_url=executor.base, timeout=TIMEOUT) as http:
        run_id = await start_run(http, executor, wide_run(workers=48, max_parallel=4))
        # Slow readers from the start, and more joining mid-run with and without `after`.
        connected = [asyncio.Event() for _ in range(4)]
        early = [
            asyncio.create_task(
                watch_to_the_end(streamer, run_id, after=0, delay=0.02, connected=event)
            )
            for event in connected
        ]
        await stored_at_least(http, executor, run_id, 10)
        late = [
            asyncio.create_task(watch_to_the_end(streamer, run_id, after=after, delay=0.01))
            for after in (0, 3, 10)
        ]
        await stored_at_least(http, executor, run_id, 20)
        await asyncio.gather(*(event.wait() for event in connected))  # live before the stall
        # The streaming process stops reading its mailbox of one while the run goes on: the
        # next publishes find it full, and the channel layer drops them (it logs each drop).
        os.kill(streamer.process.pid, signal.SIGSTOP)
        try:
            dropped = rf"channels over capacity in group run\.{run_id}"
            await asyncio.to_thread(wait_for_line, executor.log, dropped)
        finally:
            os.kill(streamer.process.pid, signal.SIGCONT)
        watches = await asyncio.gather(*early, *late)
        stored = await stored_events(http, executor, run_id)
        final = (await http.get(f"/v1/swarms/{run_id}", headers=executor.auth)).json()
    return watches, stored, final


def test_slow_readers_of_a_tiny_mailbox_see_every_seq_once_in_order(start_stack):
    # A mailbox of one message, calls of 0.2 s four at a time: a run of about three seconds.
    executor = start_stack(SVERM_CHANNEL_CAPACITY="1", SVERM_SIMULATED_LATENCY="0.2")
    streamer = executor.another_server("streamer")
    watches, stored, final = asyncio.run(
        asyncio.wait_for(tiny_mailbox_scenario(executor, streamer), 180)
    )

    assert final["status"] == "completed", final
    assert [event["seq"] for event in stored] == list(range(1, len(stored) + 1))
    assert len(stored) > 150  # 49 calls, four events each, and more
    assert stored[-1]["type"] == "run.completed"
    for watch in watches:
        assert_saw_everything_once(watch, stored)
    # The channel layer dropped live messages (waited for above), and the streams healed the
    # gaps from the database.
    assert healed(streamer.log_text()) > 0
    for stack in (executor, streamer):
        assert "Exception inside application" not in stack.log_text()


# --- 2. Redis restarts mid-run ----------------------------------------------------------------


@dataclass
class Traffic:
    """Connections opened by the clients that come and go, counted as they open."""

    opened: int = 0
    changed: asyncio.Event | None = None

    def open(self) -> None:
        self.opened += 1
        if self.changed is not None:
            self.changed.set()

    async def wait_for(self, count: int) -> None:
        while self.opened < count:
            self.changed = asyncio.Event()
            await self.changed.wait()


async def come_and_go(
    stack: Stack, run_id: str, done: asyncio.Event, traffic: Traffic, seed: int
) -> dict:
    """Connect, read a few messages, hang up; again and again until the run is over. A refused
    or broken connection is retried, resuming after the last seq seen."""
    rnd = random.Random(seed)
    last, connections, failures, wrong = 0, 0, 0, []
    while not done.is_set():
        url = f"{stack.ws_base}/api/runs/{run_id}/stream?token={stack.key}&after={last}"
        try:
            async with websockets.connect(url, open_timeout=5) as ws:
                connections += 1
                traffic.open()
                for _ in range(rnd.randint(1, 4)):
                    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if message["seq"] != last + 1:
                        wrong.append((last, message["seq"]))
                    last = message["seq"]
        except (OSError, TimeoutError, websockets.WebSocketException):
            failures += 1
        await asyncio.sleep(rnd.uniform(0, 0.2))
    return {"connections": connections, "failures": failures, "wrong": wrong, "last": last}


async def redis_restart_scenario(stack: Stack, redis_server: RedisServer) -> dict:
    async with httpx.AsyncClient(base_url=stack.base, timeout=TIMEOUT) as http:
        run_id = await start_run(http, stack, wide_run(workers=48, max_parallel=4))
        done, traffic = asyncio.Event(), Traffic()
        stayers = [asyncio.create_task(watch_to_the_end(stack, run_id, after=0)) for _ in range(3)]
        loopers = [
            asyncio.create_task(come_and_go(stack, run_id, done, traffic, seed))
            for seed in range(4)
        ]

        # Restart Redis once the run is well under way and the streams are live; while it is
        # down the run goes on storing events nobody can publish, and clients keep coming.
        await stored_at_least(http, stack, run_id, 20)
        before_restart = len(await stored_events(http, stack, run_id))
        await asyncio.to_thread(redis_server.kill)
        opened_before_outage = traffic.opened
        # Down for a second at least (the test is about an outage that long), and until
        # clients have tried to connect during it.
        await asyncio.gather(asyncio.sleep(1.0), traffic.wait_for(opened_before_outage + 3))
        opened_during_outage = traffic.opened - opened_before_outage
        await asyncio.to_thread(redis_server.start)
        back = time.monotonic()
        connected_through_the_outage = len(stayers)
        # Clients that arrive after the restart, fresh or resuming.
        stayers += [
            asyncio.create_task(watch_to_the_end(stack, run_id, after=after)) for after in (0, 5)
        ]
        watches = await asyncio.gather(*stayers)
        done.set()
        loops = await asyncio.gather(*loopers)
        stored = await stored_events(http, stack, run_id)
        final = (await http.get(f"/v1/swarms/{run_id}", headers=stack.auth)).json()
    # How long after Redis was back each client connected through the outage got a message.
    heal_seconds = [
        next((at - back for at in watch.times if at >= back), float("inf"))
        for watch in watches[:connected_through_the_outage]
    ]
    return {
        "watches": watches,
        "loops": loops,
        "stored": stored,
        "final": final,
        "before_restart": before_restart,
        "opened_during_outage": opened_during_outage,
        "heal_seconds": heal_seconds,
    }


def test_streams_survive_a_redis_restart_while_clients_come_and_go(start_stack, redis_server):
    # Calls of 0.4 s, four at a time: the run spreads its events over about five seconds. The
    # quiet-stream resync is the default's (15 s): healing after the restart must not wait for it.
    stack = start_stack(SVERM_SIMULATED_LATENCY="0.4", SVERM_STREAM_RESYNC_SECONDS="15")
    result = asyncio.run(asyncio.wait_for(redis_restart_scenario(stack, redis_server), 240))
    stored, final = result["stored"], result["final"]

    # README (Live streams): a stream delivers again within HEAL_BOUND_SECONDS of Redis being back.
    assert max(result["heal_seconds"]) <= HEAL_BOUND_SECONDS, result["heal_seconds"]

    assert final["status"] == "completed", final  # the run did not get stuck on Redis
    assert [event["seq"] for event in stored] == list(range(1, len(stored) + 1))
    assert [event["type"] for event in stored].count("run.completed") == 1
    assert stored[-1]["type"] == "run.completed"
    assert result["before_restart"] < len(stored) - 20  # the restart was mid-run
    assert result["opened_during_outage"] >= 3  # clients connected while Redis was down
    for watch in result["watches"]:
        assert_saw_everything_once(watch, stored)
    for loop in result["loops"]:
        assert loop["wrong"] == [], loop  # each connection resumed exactly after its `after`
        assert loop["connections"] > 0, loop
    log = stack.log_text()
    # The outage was seen on both sides, and healed without killing a connection.
    assert "not published" in log
    assert "the channel layer is unreachable" in log
    assert healed(log) > 0
    assert "Exception inside application" not in log


# --- 3. Redis restarts under streams that stay ------------------------------------------------


async def watch_workspace(stack: Stack, done: asyncio.Event) -> list[float]:
    """When (monotonic seconds) each message of the workspace's stream came, until `done`."""
    url = f"{stack.ws_base}/api/workspaces/{stack.workspace_id}/stream?token={stack.key}"
    times = []
    async with websockets.connect(url, open_timeout=TIMEOUT) as ws:
        while not done.is_set():
            try:
                await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                continue
            times.append(time.monotonic())
    return times


def first_after(times: list[float], back: float) -> float:
    return next((at - back for at in times if at >= back), float("inf"))


async def quiet_restart_scenario(stack: Stack, redis_server: RedisServer) -> dict:
    """Streams connected before the restart and nobody joining after it: nothing but their own
    healing brings their live messages back."""
    async with httpx.AsyncClient(base_url=stack.base, timeout=TIMEOUT) as http:
        run_id = await start_run(http, stack, wide_run(workers=60, max_parallel=3))
        done = asyncio.Event()
        # Patient enough to measure a heal that takes two resync periods.
        stayers = [
            asyncio.create_task(watch_to_the_end(stack, run_id, after=0, timeout=60))
            for _ in range(3)
        ]
        board = asyncio.create_task(watch_workspace(stack, done))
        await stored_at_least(http, stack, run_id, 20)
        await asyncio.to_thread(redis_server.kill)
        await asyncio.sleep(1.0)  # the outage: the test is about a restart that takes this long
        await asyncio.to_thread(redis_server.start)
        back = time.monotonic()
        watches = await asyncio.gather(*stayers)
        done.set()
        board_times = await board
        stored = await stored_events(http, stack, run_id)
        final = (await http.get(f"/v1/swarms/{run_id}", headers=stack.auth)).json()
    return {
        "watches": watches,
        "stored": stored,
        "final": final,
        "run_heal_seconds": [first_after(watch.times, back) for watch in watches],
        "workspace_heal_seconds": first_after(board_times, back),
        "events_after_back": sum(at >= back for at in watches[0].times),
    }


def test_streams_deliver_again_within_the_readme_bound_of_a_redis_restart(
    start_stack, redis_server
):
    # The default quiet-stream resync (15 s): a restart must heal well before it.
    stack = start_stack(SVERM_SIMULATED_LATENCY="0.4", SVERM_STREAM_RESYNC_SECONDS="15")
    result = asyncio.run(asyncio.wait_for(quiet_restart_scenario(stack, redis_server), 240))

    assert result["final"]["status"] == "completed", result["final"]
    assert result["events_after_back"] > 20  # the run went on well after Redis was back
    # README (Live streams): a stream delivers again within HEAL_BOUND_SECONDS of Redis being
    # back, run and workspace streams alike.
    assert max(result["run_heal_seconds"]) <= HEAL_BOUND_SECONDS, result["run_heal_seconds"]
    assert result["workspace_heal_seconds"] <= HEAL_BOUND_SECONDS, result
    for watch in result["watches"]:
        assert_saw_everything_once(watch, result["stored"])
    assert "Exception inside application" not in stack.log_text()

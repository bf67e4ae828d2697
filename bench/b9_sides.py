"""The three sides of benchmark 9: sverm's embedded server (`make run`: SQLite, in-memory channel
layer, in-process executor), sverm's production layout (docker-compose's Uvicorn workers, Celery
worker and beat on this machine's PostgreSQL and Redis) and the peer, the LangGraph Agent Server
(`langgraph dev`, in-memory runtime) in a virtualenv of its own; each started on a free port, and
a client that creates a run and follows its stream to the end the way each side's API offers
it."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets

from bench import stack

PEER_DIR = Path(__file__).resolve().parent / "peer"
# The peer's own virtualenv, made once and reused (gitignored): never sverm's.
PEER_VENV = PEER_DIR / ".venv"
PEER_PACKAGE = "langgraph-cli[inmem]"
PEER_GRAPH = "swarm"  # the graph's id in bench/peer/langgraph.json
# The same shape on both sides: manager -> 3 parallel workers -> writer, one call per agent.
SVERM_DEFINITION = """\
topology: hierarchical
instructions: Be factual and brief.
limits:
  max_parallel: 3
  max_steps: 5
agents:
  - id: manager
    role: manager
    model: gpt-4o-mini
    max_tokens: 512
  - id: worker
    role: worker
    model: gpt-4o-mini
    max_tokens: 512
    replicas: 3
  - id: writer
    role: writer
    model: gpt-4o-mini
    max_tokens: 1024
"""
# What the peer inherits from this process: nothing of sverm's configuration.
PEER_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
# docker-compose.yml's web service: WEB_CONCURRENCY's default, and its Uvicorn options but the
# logging ones (every server here runs with its access log off: stack.server's uvicorn).
WEB_CONCURRENCY = 2
COMPOSE_UVICORN = ("--ws", "websockets-sansio", "--timeout-keep-alive", "75",
                   "--timeout-graceful-shutdown", "20",
                   "--forwarded-allow-ips", "127.0.0.1")  # fmt: skip
# docker-compose.yml's worker service: SVERM_WORKER_CONCURRENCY's default.
WORKER_CONCURRENCY = 100


class PeerUnavailable(Exception):
    """The peer could not be installed here (no package index, no wheel for this Python)."""


@dataclass(frozen=True)
class Streamed:
    """One run seen by a client: seconds from its POST sent to the first streamed event and to
    the stream's end; ok when the stream ended with the run's successful end."""

    first: float
    wall: float
    ok: bool
    detail: str = ""


@dataclass
class Side:
    """A running server: its name, base URL, processes (whose trees hold its memory: one, or
    a layout's several, named by `parts`), the headers its API wants, and a status URL of one
    finished run."""

    name: str
    base: str
    processes: list[subprocess.Popen]
    headers: dict[str, str]
    status_url: str = ""
    # sverm's other status read, GET /api/runs/{id} of the same run.
    api_status_url: str = ""
    parts: tuple[str, ...] = ()

    @property
    def sverm(self) -> bool:
        return self.name.startswith("sverm")

    def rss_parts(self) -> dict[str, int]:
        """Resident bytes of each process's tree, by part."""
        names = self.parts or tuple(f"process {index}" for index in range(len(self.processes)))
        return {name: stack.tree_rss_bytes(process.pid)
                for name, process in zip(names, self.processes, strict=True)}  # fmt: skip

    def rss_bytes(self) -> int:
        return sum(self.rss_parts().values())


def peer_install(log_dir: Path) -> Path:
    """The peer's `langgraph` command, installing it into PEER_VENV when missing."""
    command = PEER_VENV / "bin" / "langgraph"
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import langgraph_runtime_inmem, langgraph_api"]
    if command.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return command
    log = log_dir / "peer-install.log"
    with log.open("ab") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(PEER_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", PEER_PACKAGE],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise PeerUnavailable(f"{' '.join(step[:4])}: {exc}") from None
            if done.returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise PeerUnavailable(f"`pip install {PEER_PACKAGE}` failed: {tail}")
    return command


def peer_version() -> str:
    found = subprocess.run(
        [str(PEER_VENV / "bin" / "python"), "-c",
         "from importlib.metadata import version as v; "
         "print(' '.join(f'{n} {v(n)}' for n in ('langgraph-api', 'langgraph-runtime-inmem', "
         "'langgraph')))"],
        capture_output=True, text=True,
    )  # fmt: skip
    return found.stdout.strip() or "unknown version"


def peer_start(command: Path, log_dir: Path, latency: float, jobs: int) -> Side:
    """`langgraph dev` on a free port, in a work folder holding the graph and its
    langgraph.json; `jobs` runs at a time (the dev server's default is 10)."""
    work = log_dir / "peer"
    work.mkdir(exist_ok=True)
    for name in ("graph.py", "langgraph.json"):
        shutil.copy(PEER_DIR / name, work / name)
    port = stack.free_port()
    env = {name: os.environ[name] for name in PEER_INHERITED if name in os.environ}
    env.update(
        PEER_SIMULATED_LATENCY=str(latency),
        LANGSMITH_TRACING="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        PYTHONUNBUFFERED="1",
    )
    log = log_dir / "peer.log"
    args = [str(command), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
            "--port", str(port), "--config", "langgraph.json", "--n-jobs-per-worker", str(jobs),
            "--server-log-level", "WARNING"]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(args, cwd=work, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        stack.wait_http(base, process, log, timeout=90, path="/ok")
    except Exception:
        stack.stop(process)
        raise
    return Side("LangGraph dev", base, [process], {})


def migrated_tenant(env: dict[str, str]) -> str:
    """The API key of a team-plan tenant (bench/fixtures.py) in the database `env` names,
    migrated first; each step in a process of its own, as a user would run them."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                   cwd=stack.ROOT, env=env, check=True, timeout=300)  # fmt: skip
    made = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from bench.fixtures import tenant_create; print(tenant_create().api_key)"],
        cwd=stack.ROOT, env=env, check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def sverm_start(env: dict[str, str], log_dir: Path, latency: float, threads: int) -> Side:
    """`make run`'s server (`python -m sverm.server`, Daphne, access log off) in the embedded
    mode, on a fresh SQLite database with a team-plan workspace and its API key; the executor
    runs `threads` runs at a time (SVERM_EXECUTOR_MAX_RUNS, 100 by default)."""
    data = log_dir / "sverm-embedded"
    data.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in env.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "SVERM_EXECUTOR", "CELERY_BROKER_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="sverm.settings",
        SVERM_DATA_DIR=str(data),
        SVERM_SIMULATED_LATENCY=str(latency),
        SVERM_EXECUTOR_MAX_RUNS=str(threads),
    )
    api_key = migrated_tenant(env)
    port = stack.free_port()
    name = f"sverm-embedded-{port}"
    process = stack.spawn(name, ["sverm.server", "-v", "0", "-b", "127.0.0.1", "-p", str(port),
                                 "sverm.asgi:application"], env, log_dir)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        stack.wait_http(base, process, log_dir / f"{name}.log")
    except Exception:
        stack.stop(process)
        raise
    return Side("sverm embedded", base, [process], {"Authorization": f"Bearer {api_key}"})


@contextmanager
def sverm_production(
    env: dict[str, str], log_dir: Path, latency: float, headers: dict[str, str]
) -> Iterator[Side]:
    """docker-compose's layout on this machine's services: `uvicorn --workers 2` with compose's
    options (stack.server's uvicorn), a Celery worker with compose's `--pool=threads
    --concurrency=100` (stack.celery_worker) and beat, on the bench's PostgreSQL database
    (migrated, holding the tenant whose API key `headers` carry) and Redis (channel layer,
    broker, cache; SVERM_EXECUTOR=celery); stopped on leaving."""
    env = {**env, "SVERM_SIMULATED_LATENCY": str(latency)}
    with ExitStack() as running:
        worker = running.enter_context(stack.celery_worker(
            env, log_dir, ["--pool=threads", f"--concurrency={WORKER_CONCURRENCY}"], "w-b9",
        ))  # fmt: skip
        beat = stack.spawn("beat-b9", ["celery", "-A", "sverm", "beat", "--loglevel=WARNING",
                                       "--schedule", str(log_dir / "beat-b9")], env,
                           log_dir)  # fmt: skip
        running.callback(stack.stop, beat)
        base, web = running.enter_context(stack.server_processes(
            "uvicorn", env, log_dir, WEB_CONCURRENCY, COMPOSE_UVICORN,
        ))  # fmt: skip
        parts = (f"Uvicorn master + {WEB_CONCURRENCY} workers", "Celery worker", "beat")
        yield Side("sverm production", base, [*web, worker, beat], headers, parts=parts)


async def _sverm_run(http: httpx.AsyncClient, side: Side, index: int) -> tuple[Streamed, str]:
    """POST /v1/swarms, then its WebSocket stream (stored events replayed, then live) until
    the server closes it after the terminal event."""
    start = time.perf_counter()
    body = {"template": SVERM_DEFINITION, "task": f"Topic {index}"}
    answer = await http.post(f"{side.base}/v1/swarms", headers=side.headers, json=body)
    if answer.status_code != 201:
        return Streamed(0, 0, False, f"POST {answer.status_code} {answer.text[:200]}"), ""
    run_id = answer.json()["swarm_id"]
    token = side.headers["Authorization"].removeprefix("Bearer ")
    url = f"{side.base.replace('http', 'ws', 1)}/v1/swarms/{run_id}/stream?token={token}"
    first, last = None, ""
    async with websockets.connect(url, max_size=2**22, open_timeout=120,
                                  ping_interval=None) as socket:  # fmt: skip
        async for raw in socket:
            if first is None:
                first = time.perf_counter() - start
            last = json.loads(raw)["type"]
    wall = time.perf_counter() - start
    ok = last == "run.completed"
    return Streamed(first or wall, wall, ok, "" if ok else f"ended with {last!r}"), run_id


async def _peer_run(http: httpx.AsyncClient, side: Side, index: int) -> tuple[Streamed, str]:
    """POST /runs/stream (a stateless run streamed as SSE) until the stream ends."""
    start = time.perf_counter()
    body = {"assistant_id": PEER_GRAPH, "input": {"task": f"Topic {index}"},
            "stream_mode": ["updates"]}  # fmt: skip
    first, last, wrote = None, "", False
    async with http.stream("POST", f"{side.base}/runs/stream", json=body) as answer:
        if answer.status_code != 200:
            await answer.aread()
            return Streamed(0, 0, False, f"POST {answer.status_code} {answer.text[:200]}"), ""
        async for line in answer.aiter_lines():
            if line.startswith("event:"):
                if first is None:
                    first = time.perf_counter() - start
                last = line.removeprefix("event:").strip()
            elif line.startswith("data:") and '"writer"' in line:
                wrote = True
    wall = time.perf_counter() - start
    ok = wrote and last != "error"
    return Streamed(first or wall, wall, ok, "" if ok else f"ended with {last!r}"), ""


async def _runs_at_once(side: Side, count: int, timeout: float) -> list[tuple[Streamed, str]]:
    limits = httpx.Limits(max_connections=count + 4, max_keepalive_connections=count + 4)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        one = _sverm_run if side.sverm else _peer_run
        answers = await asyncio.gather(
            *(asyncio.wait_for(one(http, side, index), timeout) for index in range(count)),
            return_exceptions=True,
        )
    return [
        answer if not isinstance(answer, BaseException)
        else (Streamed(0, 0, False, f"not ended within {timeout:g} s"), "")
        if isinstance(answer, TimeoutError)
        else (Streamed(0, 0, False, f"{type(answer).__name__}: {answer}"), "")
        for answer in answers
    ]  # fmt: skip


def runs_streamed(side: Side, count: int, timeout: float = 120) -> list[tuple[Streamed, str]]:
    """`count` runs created at once by one client, each followed to its end (a run not ended
    within `timeout` seconds of its POST failed: TimeoutError); with their ids (sverm's; the
    peer's stateless runs are not kept)."""
    return asyncio.run(_runs_at_once(side, count, timeout))


def peer_status_url(side: Side) -> str:
    """GET /threads/{thread_id}/runs/{run_id} of a finished run on a thread of its own."""
    with httpx.Client(base_url=side.base, timeout=60) as http:
        thread_id = http.post("/threads", json={}).raise_for_status().json()["thread_id"]
        body = {"assistant_id": PEER_GRAPH, "input": {"task": "status"}}
        created = http.post(f"/threads/{thread_id}/runs", json=body)
        run_id = created.raise_for_status().json()["run_id"]
        url = f"/threads/{thread_id}/runs/{run_id}"
        deadline = time.monotonic() + 60
        while http.get(url).raise_for_status().json()["status"] != "success":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the peer's run {run_id} did not succeed within 60 s")
            time.sleep(0.2)
    return side.base + url

"""The real stack: PostgreSQL (the suite's test database), Redis, a Daphne server and a Celery
worker as separate processes, or docker-compose.yml's whole layout (`production_stack`).
Missing services skip these tests locally and fail them in CI."""

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection

from tests.probe import reachable
from tests.processes import (
    REDIS_SERVER,
    RedisServer,
    free_port,
    manage,
    start_uvicorn_server,
    stop,
    stop_group,
    wait_until_serving,
)
from tests.test_compose import REQUIRED_ENV, as_argv, environment_of, load_compose

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("SVERM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Every test in this folder is an integration test, marked or not: the SQLite run
    (`-m "not integration"`) leaves them all out, before the mark's own selection runs."""
    here = Path(__file__).resolve().parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.integration)


def unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


@pytest.fixture
def stack_env(transactional_db) -> dict[str, str]:
    """Environment for child processes, pointing at this test run's PostgreSQL database."""
    if connection.vendor != "postgresql":
        unavailable("integration tests need DATABASE_URL pointing at PostgreSQL")
    if not reachable("redis", REDIS_URL):
        unavailable(f"Redis at {REDIS_URL} is unreachable")
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="sverm.settings",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        SECRET_KEY="integration-" + "x" * 40,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Slow enough simulated calls that a run can be cancelled while it is in flight.
        SVERM_SIMULATED_LATENCY="1.0",
    )
    return env


def spawn(stack_env, tmp_path, name: str, *args: str, append: bool = False) -> subprocess.Popen:
    """`python -m <args>` as a child process of the stack, logging to tmp_path/<name>.log (after
    what it holds with `append`)."""
    log = (tmp_path / f"{name}.log").open("a" if append else "w")
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**stack_env, "SVERM_DATA_DIR": str(tmp_path)},
        stdout=log,
        stderr=log,
    )


@pytest.fixture
def server(stack_env, tmp_path):
    """A real Daphne process serving sverm.asgi on a free port; yields its base URL."""
    port = free_port()
    process = spawn(
        stack_env, tmp_path, "daphne",
        "daphne", "-b", "127.0.0.1", "-p", str(port), "sverm.asgi:application",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(process, base, tmp_path / "daphne.log")
    yield base
    stop(process)


@pytest.fixture
def celery_worker(stack_env, tmp_path):
    """A real Celery worker process on the Redis broker; yields its node name."""
    name = f"sverm-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    process = spawn(
        stack_env, tmp_path, "worker",
        "celery", "-A", "sverm", "worker", "--pool=solo", "--concurrency=1",
        "--without-gossip", "--without-mingle", "-n", name, "--loglevel=INFO",
    )  # fmt: skip
    yield name
    stop(process)


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of this test's own, started, on a free port (never the shared one, whose
    databases other suites use): for faults, kill and start it again on the same port."""
    if REDIS_SERVER is None:
        unavailable("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


# --- docker-compose.yml's layout as real processes ----------------------------------------------
@dataclass
class ProductionStack:
    """docker-compose.yml's app services running here: `web` (Uvicorn, its compose flags and
    workers), `worker` (Celery, its compose flags) and `beat`, on the test run's PostgreSQL
    database and Redis. `processes` and `logs` are keyed by compose service name."""

    base: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    directory: Path  # the services' logs and data (compose's /data volume)
    commands: dict[str, list[str]] = field(default_factory=dict)

    def log(self, service: str) -> str:
        return self.logs[service].read_text(errors="replace")

    def start(self, service: str) -> subprocess.Popen:
        """Start `worker` or `beat` (again, after `stop`) with compose's command, its output
        appended to its log; returns the process once it is ready."""
        ready = self._spawn(service)
        _wait_for_log(self.processes[service], self.logs[service], READY[service], ready)
        return self.processes[service]

    def stop(self, service: str) -> None:
        """Stop a service as a container stop does (SIGTERM, SIGKILL after a grace period);
        `web` with its worker processes."""
        (stop_group if service == "web" else stop)(self.processes[service])

    def _spawn(self, service: str) -> int:
        """Start `worker` or `beat` without waiting; how many of its readiness lines its log
        holds once it is ready (one more than an earlier start left)."""
        self.logs[service] = log = self.directory / f"{service}.log"
        earlier = log.read_text(errors="replace") if log.exists() else ""
        ready = 1 + len(re.findall(READY[service], earlier))
        self.processes[service] = spawn(
            self.env, self.directory, service, *self.commands[service], append=True
        )
        return ready

    def api_key(self, email: str = "stack@example.com", plan: str = "team") -> dict[str, str]:
        """`manage.py bootstrap` in the stack's environment: headers with the admin's API key
        for a workspace on `plan` (one call per email: bootstrap keeps an existing key)."""
        out = manage(self.env, "bootstrap", "--email", email, "--plan", plan)
        key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
        return {"Authorization": f"Bearer {key}"}

    def pids(self, service: str) -> list[int]:
        """The service's process and its descendants (Uvicorn's worker processes)."""
        found, pending = [], [self.processes[service].pid]
        while pending:
            pid = pending.pop()
            found.append(pid)
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    pending.extend(int(child) for child in children.read_text().split())
                except OSError:
                    continue
        return found

    def database_connections(self) -> dict[int, int]:
        """Open TCP connections to PostgreSQL's port per process of the stack (pid -> count)."""
        port = int(self.env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
        pids = [pid for service in self.processes for pid in self.pids(service)]
        return {pid: len(_sockets_of(pid) & _sockets_to_port(port)) for pid in pids}


def _sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _sockets_to_port(port: int) -> set[str]:
    """Inodes of established TCP sockets whose remote end is `port` (/proc/net/tcp{,6})."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


# What a Celery service logs once it is ready.
READY = {"worker": r"celery@\S+ ready\.", "beat": r"beat: Starting"}
# Where compose's containers keep the beat schedule (the data volume); here, the test's folder.
COMPOSE_DATA_DIR = "/data"
# What a container of compose would not have: provider credentials and sverm's knobs of the
# shell running the tests (compose passes the variables of its `environment` only).
NOT_PASSED_TO_CONTAINERS = ("SVERM_", "OPENAI_", "DEEPSEEK_", "DB_", "CELERY_", "WEB_CONCURRENCY")


def _wait_for_log(process: subprocess.Popen, log: Path, pattern: str, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while len(re.findall(pattern, log.read_text(errors="replace"))) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{process.args} did not become ready:\n" + log.read_text()[-4000:])
        time.sleep(0.2)


@pytest.fixture
def start_production_stack(stack_env, tmp_path) -> Iterator[Callable[..., ProductionStack]]:
    """A factory: `start_production_stack(**env)` starts docker-compose.yml's `web`, `worker`
    and `beat` with the commands compose gives them (read from the file, with its defaults:
    Uvicorn `--workers=2` and its flags, `celery worker --pool=threads --concurrency=100`,
    `celery beat`), as compose's environment would have them plus `env` (e.g.
    OPENAI_API_KEY/OPENAI_BASE_URL, SVERM_SIMULATED_LATENCY, DB_POOL_MAX_SIZE, or REDIS_URL of
    a redis-server the test owns), on this test's PostgreSQL database and Redis
    (SVERM_TEST_REDIS_URL). `env` is also the shell compose reads the file in (its
    `${...}`: WEB_CONCURRENCY=1 runs one Uvicorn worker). Compose's environment has no LLM
    provider and simulated calls of 0.2 s unless `env` says otherwise. Returns a
    ProductionStack (`.base` URL, `.api_key()`, `.processes`/`.logs`/`.log()` by service name,
    `.stop()`/`.start()` of a service, `.database_connections()`); everything it started is
    stopped when the test ends. Call it once per test."""
    started: list[ProductionStack] = []

    def start(**overrides: str) -> ProductionStack:
        assert not started, "one production stack per test"
        services = load_compose({**REQUIRED_ENV, **overrides})["services"]
        env = {k: v for k, v in stack_env.items() if not k.startswith(NOT_PASSED_TO_CONTAINERS)}
        for name, value in environment_of(services["web"]).items():
            if name not in ("DATABASE_URL", "REDIS_URL"):  # compose's hosts: ours are local
                env.setdefault(name, value)
        env.update(SVERM_DATA_DIR=str(tmp_path), **overrides)
        if "PROMETHEUS_MULTIPROC_DIR" not in overrides:  # compose's in-memory volume: ours
            env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
        commands = {name: as_argv(services[name]["command"]) for name in ("web", "worker", "beat")}
        beat = commands["beat"]
        commands["beat"] = [arg.replace(COMPOSE_DATA_DIR, str(tmp_path)) for arg in beat]
        stack = ProductionStack(
            base="", env=env, processes={}, logs={}, commands=commands, directory=tmp_path
        )
        started.append(stack)
        ready = {name: stack._spawn(name) for name in ("worker", "beat")}
        web = commands["web"]
        assert web[:2] == ["uvicorn", "sverm.asgi:application"], web
        flags = [arg for arg in web[2:] if not arg.startswith(("--host=", "--port="))]
        process, stack.base, stack.logs["web"] = start_uvicorn_server(env, tmp_path, *flags)
        stack.processes["web"] = process
        workers = int(next(arg for arg in flags if arg.startswith("--workers=")).split("=")[1])
        _wait_for_log(process, stack.logs["web"], r"Started server process", workers)
        for name, count in ready.items():
            _wait_for_log(stack.processes[name], stack.logs[name], READY[name], count)
        return stack

    yield start
    for stack in started:
        for name in ("web", "worker", "beat"):
            if name in stack.processes:
                stack.stop(name)


@pytest.fixture
def production_stack(start_production_stack) -> ProductionStack:
    """docker-compose.yml's layout with compose's environment (see start_production_stack)."""
    return start_production_stack()

"""The real stack: PostgreSQL (the suite's test database), Redis, a Daphne server and a Celery
worker as separate processes. Missing services skip these tests locally and fail them in CI."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.probe import reachable
from tests.processes import REDIS_SERVER, RedisServer, free_port, stop

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("SVERM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


def spawn(stack_env, tmp_path, name: str, *args: str) -> subprocess.Popen:
    """`python -m <args>` as a child process of the stack, logging to tmp_path/<name>.log."""
    log = (tmp_path / f"{name}.log").open("w")
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
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail("Daphne did not start:\n" + (tmp_path / "daphne.log").read_text())
        time.sleep(0.2)
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

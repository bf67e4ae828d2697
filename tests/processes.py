"""Child processes for tests that run sverm for real: free ports, manage.py, clean stops, and a
redis-server of a test's own to kill and restart."""

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def manage(env: dict[str, str], *args: str) -> str:
    """`manage.py <args>` in a child process with `env`; its stdout, or a failing assertion."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stderr}"
    return result.stdout


# --- the embedded default as a real server ------------------------------------------------------
TIMEOUT = 30.0
# What a server child must not inherit: anything that would leave the embedded mode, reach a
# real LLM provider, or point Django at the test run's settings or database.
INHERITED_NOT = ("DJANGO_", "PYTEST_", "SVERM_")
DROPPED = {
    "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
    "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", "STATIC_ROOT", "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS", "SECRET_KEY", "DEBUG",
}  # fmt: skip


def embedded_server_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of an embedded-default sverm (SQLite in tmp_path/data, no Redis)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(INHERITED_NOT) and k not in DROPPED
    }
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env.update(
        DJANGO_SETTINGS_MODULE="sverm.settings",
        SVERM_DATA_DIR=str(data_dir),
        SECRET_KEY="embedded-" + secrets.token_urlsafe(32),
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        **overrides,
    )
    return env


def start_embedded_server(
    env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.Popen, str, Path]:
    """`python -m sverm.server` (what `make run` starts) on a free port; the process, its base
    URL and its access log (a file of its own; everything else goes to tmp_path/server.log)."""
    port = free_port()
    access_log = tmp_path / "access.log"
    with (tmp_path / "server.log").open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sverm.server", "-b", "127.0.0.1", "-p", str(port),
             "--access-log", str(access_log), "sverm.asgi:application"],
            cwd=ROOT, env=env, stdout=output, stderr=output,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(process, base, tmp_path / "server.log")
    return process, base, access_log


def wait_until_serving(process: subprocess.Popen, base: str, output: Path) -> None:
    """Return once `base`/healthz answers 200; stop the process and fail (showing its output)
    if it exits or does not answer within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail("the server did not start:\n" + output.read_text())
        time.sleep(0.2)


def wait_for_line(path: Path, pattern: str) -> str:
    """The file's text once a line matches `pattern` (a server writes it after responding)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text, re.M):
            return text
        assert time.monotonic() < deadline, f"no line matching {pattern!r} in:\n{text}"
        time.sleep(0.05)


# --- the production server as a real process ----------------------------------------------------
UVICORN_LOG_CONFIG = "sverm/uvicorn_logging.yaml"


def start_uvicorn_server(
    env: dict[str, str], tmp_path: Path, *args: str
) -> tuple[subprocess.Popen, str, Path]:
    """`uvicorn sverm.asgi:application <args>` (the production server; pass its flags) on a free
    port, from the project root; the process, its base URL and the file with everything it
    printed (stdout and stderr, its workers' included)."""
    port = free_port()
    output_path = tmp_path / "uvicorn.log"
    with output_path.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "sverm.asgi:application",
             "--host=127.0.0.1", f"--port={port}", *args],
            cwd=ROOT, env=env, stdout=output, stderr=output, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base, output_path)
    finally:
        if process.poll() is not None:
            stop_group(process)
    return process, base, output_path


def stop_group(process: subprocess.Popen) -> None:
    """Stop a server started in its own session as a signal would in production (SIGTERM to
    the supervisor, which stops its workers), then kill whatever of its group is left."""
    stop(process)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# --- a redis-server of the test's own -----------------------------------------------------------
REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """A redis-server child on a port of its own, without persistence (a restart forgets every
    group and message, as a Redis without AOF does)."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.dir = tmp_path / "redis"
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.dir / f"redis-{self.starts}.log").open("w")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=log, stderr=log,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("redis-server did not start: " + self.log_text())
                time.sleep(0.05)
            finally:
                client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.dir.glob("redis-*.log")))

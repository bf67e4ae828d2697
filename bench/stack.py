"""The processes a benchmark starts (Daphne, Uvicorn, Celery): each in its own process group,
logged to a file, and always stopped, also on failure or Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

_running: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, **popen
) -> subprocess.Popen:
    """`python -m <args>` in a new process group, logging to log_dir/<name>.log."""
    log = (log_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )
    log.close()
    process.bench_name = name  # type: ignore[attr-defined]
    _running.append(process)
    return process


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to the process's own group (its workers too), SIGKILL after `timeout`."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Children that outlived their parent (uvicorn or celery workers) share its group.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process in _running:
        _running.remove(process)


def stop_all() -> None:
    for process in list(reversed(_running)):
        stop(process, timeout=5)


def wait_http(
    base: str, process: subprocess.Popen, log: Path, timeout: float = 40, path: str = "/healthz"
) -> None:
    """Wait until `base + path` answers 200; fail with the log's tail if the process exits first
    or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"server {process.args} did not start:\n{tail}")
        time.sleep(0.2)


@contextmanager
def server(kind: str, env: dict[str, str], log_dir: Path, processes: int = 1):
    """An ASGI server serving bench.settings' sverm on a free loopback port; yields its URL.

    daphne: one process (`make run`'s embedded server, access log off). daphne-multi: N Daphne
    processes accepting on one shared listening socket (as a process manager would run them).
    uvicorn: `uvicorn --workers N` (N=1: a single process, no supervisor)."""
    with server_processes(kind, env, log_dir, processes) as (base, _started):
        yield base


@contextmanager
def server_processes(
    kind: str, env: dict[str, str], log_dir: Path, processes: int = 1, options: Sequence[str] = ()
):
    """server(), yielding its URL and the processes it started (each heads its own process
    group: a benchmark sums their trees' memory); `options` are added to uvicorn's (e.g.
    docker-compose's `--ws websockets-sansio`)."""
    if options and kind != "uvicorn":
        raise ValueError(f"options are for uvicorn, not {kind!r}")
    port = free_port()
    env = {**env, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    name = f"{kind}-{processes}-{port}"
    started: list[subprocess.Popen] = []
    listener = None
    try:
        if kind == "daphne":
            started.append(spawn(name, ["daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port),
                                        "sverm.asgi:application"], env, log_dir))  # fmt: skip
        elif kind == "daphne-multi":
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(1024)
            listener.set_inheritable(True)
            fd = listener.fileno()
            for number in range(processes):
                started.append(spawn(f"{name}-{number}", ["daphne", "-v", "0", "--fd", str(fd),
                                     "sverm.asgi:application"], env, log_dir,
                                     pass_fds=(fd,)))  # fmt: skip
        elif kind == "uvicorn":
            args = ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                    "--lifespan", "off", "--log-level", "warning"]  # fmt: skip
            if processes > 1:
                args += ["--workers", str(processes)]
            args += list(options)
            started.append(spawn(name, [*args, "sverm.asgi:application"], env, log_dir))
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        base = f"http://127.0.0.1:{port}"
        wait_http(base, started[0], log_dir / f"{started[0].bench_name}.log")  # type: ignore[attr-defined]
        if kind != "daphne":
            time.sleep(1.5)  # the other processes/workers come up too
        yield base, started
    finally:
        for process in started:
            stop(process)
        if listener is not None:
            listener.close()


@contextmanager
def celery_worker(env: dict[str, str], log_dir: Path, extra: list[str], name: str):
    """A Celery worker on the bench broker; yields its process (group)."""
    node = f"{name}-{os.getpid()}@{socket.gethostname()}"
    args = ["celery", "-A", "sverm", "worker", "--loglevel=WARNING", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-n", node, *extra]  # fmt: skip
    process = spawn(name, args, env, log_dir)
    try:
        yield process
    finally:
        stop(process, timeout=20)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used by a process and its live descendants, each with the
    children it has already waited for (so a PostgreSQL backend that ended still counts in its
    postmaster's); from /proc."""
    ticks = 0
    for current in process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant, parents first (from /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop(0)
        if current in found:
            continue
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    total = 0
    for current in process_tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total

"""`python -m bench.memory`: what each of sverm's processes holds at idle, in the embedded server
(benchmark 9's start and warm-up) and in docker-compose.yml's production layout (Uvicorn
workers, a Celery worker, Celery beat, on PostgreSQL + Redis), per process: RSS, PSS and USS
from /proc/PID/smaps_rollup (bench/README.md, "Where memory goes").

    python -m bench.memory embedded
    python -m bench.memory production --database-url postgres://... --redis-url redis://.../N

The production side drops and re-creates the database it is given and flushes the Redis one; it runs
the same commands as docker-compose.yml (its environment: DEBUG=0, a SECRET_KEY, the URLs).
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import stack
from bench.b9_sides import Side, migrated_tenant, runs_streamed, sverm_start
from bench.fixtures import database_recreate

MIB = 1024 * 1024


def process_memory(pid: int) -> dict:
    """RSS, PSS and USS (private clean + dirty) in bytes, threads and the command line."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_unit = line.split()
        fields[name.rstrip(":")] = int(value) * 1024
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return {
        "pid": pid,
        "command": command,
        "threads": int(status["Threads"]),
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def table(title: str, roots: list[subprocess.Popen]) -> str:
    rows = [process_memory(pid) for root in roots for pid in stack.process_tree(root.pid)]
    lines = [
        f"{title}",
        f"{'pid':>7} {'thr':>4} {'RSS MiB':>8} {'PSS MiB':>8} {'USS MiB':>8}  command",
    ]
    for row in rows:
        command = row["command"]
        command = command if len(command) < 90 else command[:87] + "..."
        lines.append(
            f"{row['pid']:>7} {row['threads']:>4} {row['rss'] / MIB:>8.1f} "
            f"{row['pss'] / MIB:>8.1f} {row['uss'] / MIB:>8.1f}  {command}"
        )
    total = {key: sum(row[key] for row in rows) / MIB for key in ("rss", "pss", "uss")}
    lines.append(
        f"{'total':>7} {'':>4} {total['rss']:>8.1f} {total['pss']:>8.1f} {total['uss']:>8.1f}"
    )
    return "\n".join(lines)


def _warm_up(side: Side) -> None:
    """Benchmark 9's warm-up: a run, another run and a status read of it, then 1 s idle."""
    for _ in range(2):
        [(run, run_id)] = runs_streamed(side, 1)
        if not run.ok:
            raise RuntimeError(f"a run failed: {run.detail}")
    httpx.get(f"{side.base}/v1/swarms/{run_id}", headers=side.headers).raise_for_status()
    time.sleep(1)


def embedded(log_dir: Path) -> str:
    side = sverm_start(_base_env(), log_dir, latency=0.05, threads=100)
    try:
        _warm_up(side)
        return table("embedded: python -m sverm.server (Daphne, SQLite)", side.processes)
    finally:
        stack.stop(side.processes[0])


def production(log_dir: Path, database_url: str, redis_url: str, web_workers: int) -> str:
    env = _base_env()
    env.update(
        DJANGO_SETTINGS_MODULE="sverm.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY="bench-memory",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SVERM_SIMULATED_LATENCY="0.05",
        SVERM_DATA_DIR=str(log_dir),
    )
    database_recreate(database_url)
    subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=True, capture_output=True)
    api_key = migrated_tenant(env)
    port = stack.free_port()
    # docker-compose.yml's commands, less the container's host and port.
    commands = {
        "web": ["uvicorn", "sverm.asgi:application", "--host=127.0.0.1", f"--port={port}",
                f"--workers={web_workers}", "--ws=websockets-sansio", "--lifespan=off",
                "--log-config=sverm/uvicorn_logging.yaml", "--timeout-keep-alive=75",
                "--timeout-graceful-shutdown=20"],
        "worker": ["celery", "-A", "sverm", "worker", "--loglevel=INFO", "--pool=threads",
                   "--concurrency=100"],
        "beat": ["celery", "-A", "sverm.beat", "beat", "--loglevel=INFO", "--schedule",
                 str(log_dir / "celerybeat-schedule")],
    }  # fmt: skip
    started = {}
    try:
        for name, args in commands.items():
            started[name] = stack.spawn(f"memory-{name}", args, env, log_dir)
        base = f"http://127.0.0.1:{port}"
        stack.wait_http(base, started["web"], log_dir / "memory-web.log")
        time.sleep(3)  # the other web workers, the Celery worker and beat come up too
        side = Side("sverm production", base, [started["web"]],
                    {"Authorization": f"Bearer {api_key}"})  # fmt: skip
        _warm_up(side)
        time.sleep(2)
        titles = "; ".join(f"{name}: {shlex.join(args[:4])}" for name, args in commands.items())
        return table(f"production ({titles})", list(started.values()))
    finally:
        for process in started.values():
            stack.stop(process, timeout=30)


def _base_env() -> dict[str, str]:
    drop = ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "SVERM_PROVIDERS", "DB_CONN_MAX_AGE",
            "DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT")  # fmt: skip
    return {key: value for key, value in os.environ.items() if key not in drop}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("layout", choices=("embedded", "production"))
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--web-workers", type=int, default=2)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sverm-memory-") as folder:
        log_dir = Path(folder)
        try:
            if arguments.layout == "embedded":
                print(embedded(log_dir))
            else:
                print(production(log_dir, arguments.database_url, arguments.redis_url,
                                 arguments.web_workers))  # fmt: skip
        except Exception:
            for log in sorted(log_dir.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}",
                      file=sys.stderr)  # fmt: skip
            raise


if __name__ == "__main__":
    main(sys.argv[1:])

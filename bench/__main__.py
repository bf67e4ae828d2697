"""`python -m bench [--quick] [--only NAME,...]`: run the benchmark suite (bench/README.md).

Creates its own PostgreSQL database and uses its own Redis database, starts and stops its own
servers and workers, prints a table and writes bench/results/latest.{json,md} (quick.{json,md}
with --quick). A benchmark that fails is reported as errored and the others still run; the exit
status is non-zero only when the suite itself cannot run.
"""

import argparse
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from bench import stack
from bench.context import FULL, QUICK, Context
from bench.fixtures import database_drop, database_recreate, tenant_create
from bench.report import Figure, now_iso, table, write

BENCHMARKS = (
    "b1_deep_pages",
    "b2_request_overhead",
    "b3_engine_overhead",
    "b4_critical_path",
    "b5_many_runs",
    "b6_streaming",
    "b7_usage",
    "b8_serving",
    "b9_peer",
)
RESULTS = Path(__file__).resolve().parent / "results"
# Not taken from the shell, in the suite's processes or its servers: the simulated provider only,
# and the production connection defaults (each process's pool of 12; benchmark 8 turns it off
# for its comparison).
NOT_INHERITED = (
    "OPENAI_API_KEY", "DEEPSEEK_API_KEY", "SVERM_PROVIDERS",
    "DB_CONN_MAX_AGE", "DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT",
)  # fmt: skip


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI; under 3 minutes)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench"),
        help="a PostgreSQL database the suite may drop and create (default: %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
        help="a Redis database (not 0) the suite may flush (default: %(default)s)",
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names, e.g. b1,b6")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind")
    parser.add_argument("--out", default="", help="file stem for results (default: latest/quick)")
    return parser.parse_args(argv)


def _selected(only: str) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    wanted = [item.strip() for item in only.split(",") if item.strip()]
    chosen = [name for name in BENCHMARKS if any(name.startswith(w) for w in wanted)]
    if not chosen:
        raise SystemExit(f"--only {only!r} matches none of {', '.join(BENCHMARKS)}")
    return chosen


def _check_services(database_url: str, redis_url: str) -> None:
    import psycopg
    import redis

    db = urlsplit(redis_url).path.lstrip("/") or "0"
    if db == "0":
        raise SystemExit("--redis-url must name a Redis database other than 0 (it is flushed).")
    try:
        psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=5).close()
    except Exception as exc:
        raise SystemExit(f"PostgreSQL is unreachable at {database_url}: {exc}") from None
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
    except Exception as exc:
        raise SystemExit(f"Redis is unreachable at {redis_url}: {exc}") from None


def _environment(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SECRET_KEY="bench-" + "k" * 50,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        SVERM_DATA_DIR=str(data_dir),
        SVERM_EXECUTOR="celery",
        SVERM_SIMULATED_LATENCY="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    for name in NOT_INHERITED:
        env.pop(name, None)
    return env


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=stack.ROOT, capture_output=True, text=True, timeout=10
    )
    return result.stdout.strip()


def _commit() -> str:
    try:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return _git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    names = _selected(args.only)
    _check_services(args.database_url, args.redis_url)
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="sverm-bench-"))
    env = _environment(args, data_dir)
    os.environ.update(env)
    for name in NOT_INHERITED:
        os.environ.pop(name, None)
    sizes = QUICK if args.quick else FULL
    figures: list[Figure] = []
    ctx = None
    import redis

    broker = redis.Redis.from_url(args.redis_url)
    try:
        broker.flushdb()
        print(f"bench: preparing database {args.database_url} ...", flush=True)
        database_recreate(args.database_url)
        import django

        django.setup()
        logging.getLogger("sverm").setLevel(logging.WARNING)
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        ctx = Context(quick=args.quick, sizes=sizes, tenant=tenant_create(), env=env,
                      log_dir=data_dir)  # fmt: skip
        for name in names:
            module = importlib.import_module(f"bench.{name}")
            print(f"bench: {name} ...", flush=True)
            started = time.monotonic()
            try:
                found = module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                traceback.print_exc()
                found = [Figure.error(f"{name}: errored", exc)]
            finally:
                stack.stop_all()
            figures.extend(found)
            print(f"bench: {name} done in {time.monotonic() - started:.0f} s", flush=True)
            for figure in found:
                print(f"  {figure.name}: {figure.value} {figure.unit} (baseline {figure.baseline}, "
                      f"ratio {figure.ratio}, {figure.target or 'report'}: {figure.met})",
                      flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        stack.stop_all()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django may not be set up yet
            pass
        if not args.keep_db:
            database_drop(args.database_url)
        broker.flushdb()
        broker.close()
    duration = time.monotonic() - began
    stem = args.out or ("quick" if args.quick else "latest")
    command = "make bench QUICK=1" if args.quick else "make bench"
    if args.only:
        command += f" (only {', '.join(names)})"
    meta = {
        "mode": "quick" if args.quick else "full",
        "command": command,
        "commit": _commit(),
        "finished_at": now_iso(),
        "duration_seconds": round(duration, 1),
        "cpus": os.cpu_count(),
        # Other work on the machine competes for its cores: the 1-minute load average.
        "load_average_start": round(load_before, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    write(figures, meta, ctx.findings, RESULTS / f"{stem}.json", RESULTS / f"{stem}.md")
    print()
    print(table(figures))
    missed = [f.name for f in figures if f.met is False]
    print(f"\n{len(figures)} figures, {len(missed)} missed or errored; {duration:.0f} s; "
          f"results in {RESULTS / stem}.json and .md")  # fmt: skip
    errored = [f for f in figures if f.how.startswith("error:")]
    if errored:
        print(f"server and worker logs kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if figures and len(errored) == len(figures) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

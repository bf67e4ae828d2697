"""5. Many runs at once: runs of the research template with 500 ms simulated calls, created by as
many concurrent `POST /v1/swarms` on docker-compose's layout (Uvicorn --workers 2, one Celery
worker, beat) and executed by that worker; the errors (any answer but 201, any run that did not
complete), the median run's wall time (its creation to its completion) against a lone run's on
the same stack, the same from the moment the POSTs were sent (what a client waits, the burst's
queue at the web server included), and the worker's resident memory.

Measured for docker-compose's worker (one process, Celery thread slots that wait while the
process's run host executes every run on one event loop) and, for comparison, the prefork worker
compose ran before (4 child processes, one run each at a time)."""

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.utils import timezone

from bench import stack
from bench.context import Context
from bench.report import Figure

NAME = "many-runs"
LATENCY = 0.5
TEMPLATE = "research-swarm-v1"
TERMINAL = ("completed", "failed", "cancelled")


async def _post_at_once(base: str, headers: dict[str, str], count: int) -> list:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        return await asyncio.gather(
            *(http.post("/v1/swarms", headers=headers,
                        json={"template": TEMPLATE, "task": f"Investigate topic {index}"})
              for index in range(count)),
            return_exceptions=True,
        )  # fmt: skip


def _create(ctx: Context, base: str, count: int) -> tuple[list[str], datetime, list[str]]:
    """`count` runs by as many concurrent POSTs (one connection each): the ids of those created,
    when the POSTs were sent, and what each other answer was."""
    sent = timezone.now()
    answers = asyncio.run(_post_at_once(base, ctx.tenant.headers, count))
    ids, errors = [], []
    for answer in answers:
        if isinstance(answer, httpx.Response) and answer.status_code == 201:
            ids.append(answer.json()["swarm_id"])
        elif isinstance(answer, httpx.Response):
            errors.append(f"{answer.status_code} {answer.text[:200]}")
        else:
            errors.append(f"{type(answer).__name__}: {answer}")
    return ids, sent, errors


@dataclass
class Walls:
    """Seconds to each completed run's completion from its creation (`run`) and from the moment
    its POST was sent (`client`); the statuses of the runs that did not complete."""

    run: list[float]
    client: list[float]
    failed: list[str]


def _wait(run_ids: list[str], since: datetime, timeout: float, sample=None) -> Walls:
    from swarms.models import Run

    deadline = time.monotonic() + timeout
    while True:
        if sample is not None:
            sample()
        done = Run.objects.filter(pk__in=run_ids, status__in=TERMINAL).count()
        if done == len(run_ids):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(run_ids) - done} of {len(run_ids)} runs did not finish "
                               f"within {timeout:.0f} s")  # fmt: skip
        time.sleep(0.1)
    rows = Run.objects.filter(pk__in=run_ids).values_list("status", "created_at", "completed_at")
    done = [(created, completed) for status, created, completed in rows if status == "completed"]
    return Walls(
        run=[(completed - created).total_seconds() for created, completed in done],
        client=[(completed - since).total_seconds() for _created, completed in done],
        failed=[status for status, _created, _completed in rows if status != "completed"],
    )


def _lone(ctx: Context, base: str) -> Walls:
    ids, sent, errors = _create(ctx, base, 1)
    walls = _wait(ids, sent, 60)
    if errors or walls.failed:
        raise RuntimeError(f"a lone run failed: {errors or walls.failed}")
    return walls


def _measure(ctx: Context, label: str, extra: list[str], count: int, concurrency: int) -> dict:
    env = {**ctx.env, "SVERM_SIMULATED_LATENCY": str(LATENCY)}
    schedule = str(ctx.log_dir / f"beat-{label}")
    beat = stack.spawn(f"beat-{label}", ["celery", "-A", "sverm", "beat", "--loglevel=WARNING",
                                         "--schedule", schedule], env, ctx.log_dir)  # fmt: skip
    web = stack.server("uvicorn", env, ctx.log_dir, processes=2)
    try:
        with web as base, stack.celery_worker(env, ctx.log_dir, extra, f"w-{label}") as worker:
            _lone(ctx, base)  # warm-up (and startup)
            lone = [_lone(ctx, base) for _ in range(1 if ctx.quick else 2)]
            peak = [stack.tree_rss_bytes(worker.pid)]
            ids, sent, errors = _create(ctx, base, count)
            answered = timezone.now()
            waves = -(-count // concurrency)
            walls = _wait(
                ids, sent, 60 + waves * 3 * LATENCY * 4,
                sample=lambda: peak.append(stack.tree_rss_bytes(worker.pid)),
            )  # fmt: skip
    finally:
        stack.stop(beat)
    if not walls.run:
        raise RuntimeError(f"no run completed: {(errors + walls.failed)[:3]}")
    return {
        "lone": statistics.median(w.run[0] for w in lone),
        "lone_client": statistics.median(w.client[0] for w in lone),
        "median": statistics.median(walls.run), "max": max(walls.run),
        "median_client": statistics.median(walls.client),
        "answered": (answered - sent).total_seconds(),
        "rss": max(peak), "errors": errors + walls.failed,
    }  # fmt: skip


def run(ctx: Context) -> list[Figure]:
    count = ctx.sizes.many_runs
    figures = []
    common = (f"{count} {TEMPLATE} runs (5 calls each, {LATENCY * 1000:.0f} ms per simulated "
              f"call, critical path {3 * LATENCY:.1f} s) created by {count} concurrent `POST "
              f"/v1/swarms` (one connection each) on docker-compose's server (Uvicorn "
              f"--workers 2, each process's PostgreSQL pool of DB_POOL_MAX_SIZE) with beat "
              f"running; baseline: median of 2 lone runs, POSTed the same way, on the same warm "
              f"stack (1 in QUICK, which also skips the prefork worker)")  # fmt: skip
    slots = max(count, 100)
    workers = [
        ("compose", ["--pool=threads", f"--concurrency={slots}"], slots,
         f"one worker process as docker-compose runs it: `celery worker --pool=threads "
         f"--concurrency={slots}` (runs on the process's run host)"),
        ("prefork", ["--concurrency=4"], 4,
         "docker-compose's earlier worker: `celery worker --concurrency=4` (prefork: 4 child "
         "processes, one run each at a time)"),
    ]  # fmt: skip
    for label, extra, concurrency, what in workers[:1] if ctx.quick else workers:
        try:
            result = _measure(ctx, label, extra, count, concurrency)
        except Exception as exc:
            figures.append(Figure.error(f"5. many runs at once, {what}", exc))
            continue
        errors = result["errors"]
        figures.append(Figure.value_target(
            f"5. {count} runs created at once through HTTP: errors, {what}", len(errors), None,
            "<=", 0, "errors",
            f"answers other than 201 and runs that did not complete, of {count}"
            + (f"; first: {errors[:3]}" if errors else ""),
        ))  # fmt: skip
        rss_mib = result["rss"] / 2**20
        figures.append(Figure.ratio_target(
            f"5. {count} runs at once, median wall / lone run, {what}", result["median"] * 1000,
            result["lone"] * 1000, "<=", 1.5, "ms",
            f"{common}; wall = the run's created_at (its POST being served) to its "
            f"completed_at. Slowest run {result['max']:.1f} s; every POST answered "
            f"{result['answered']:.1f} s after they were sent; worker RSS at peak (process "
            f"tree) {rss_mib:.0f} MiB.",
        ))  # fmt: skip
        figures.append(Figure.report(
            f"5. {count} runs at once, median wall from the POSTs sent / lone run's, {what}",
            result["median_client"] * 1000, result["lone_client"] * 1000, "ms",
            f"{common}; wall = the moment the {count} POSTs were sent to the run's completed_at: "
            f"what a client waits, including its POST's turn at the web server.",
        ))  # fmt: skip
        figures.append(Figure.report(
            f"5. worker resident memory at peak, {what}", rss_mib, None, "MiB",
            f"sum of VmRSS over the worker's process tree, sampled every 0.1 s during the "
            f"{count} runs.",
        ))  # fmt: skip
    ctx.note(
        f"Many runs: {count} POSTs at once are served by 2 Uvicorn processes whose threads share "
        f"each process's connection pool, and a worker process executes every run it holds on "
        f"one event loop (the run host, swarms/executor.py), their database writes on "
        f"SVERM_EXECUTOR_DB_LANES (4) lanes, so {count} runs at once hold 4 PostgreSQL "
        f"connections in the worker, not {2 * count}; Celery's thread slots only wait for their "
        f"run to end. The runs wait on the LLM, not the CPU; what is left per run is benchmark "
        f"3's work (SQL round trips, publishing)."
    )
    return figures

"""5. Many runs at once: runs of the research template with 500 ms simulated calls, created
together and executed by one Celery worker; the median run's wall time (dispatch to completion)
against a lone run's on the same worker, and the worker's resident memory.

Measured for docker-compose's worker (one process, Celery thread slots that wait while the
process's run host executes every run on one event loop) and, for comparison, the prefork worker
compose ran before (4 child processes, one run each at a time)."""

import statistics
import time
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from bench import stack
from bench.context import Context
from bench.fixtures import builtin_definition
from bench.report import Figure

NAME = "many-runs"
LATENCY = 0.5
TEMPLATE = "research-swarm-v1"
TERMINAL = ("completed", "failed", "cancelled")


def _create(ctx: Context, count: int, definition: dict) -> tuple[list[str], datetime]:
    """`count` runs through run_create, committed together: all dispatched at one moment. The
    ids, and when the transaction committed (before the runs' dispatches, which follow it)."""
    from accounts.models import User
    from swarms.services.runs import run_create

    user = User.objects.get(pk=ctx.tenant.user_id)
    committed: list[datetime] = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(timezone.now()))  # the first callback
        ids = [
            run_create(workspace_id=ctx.tenant.workspace_id, definition=definition,
                       task=f"Investigate topic {index}", max_budget_usd=None, created_by=user,
                       template_id=TEMPLATE).pk
            for index in range(count)
        ]  # fmt: skip
    return ids, committed[0]


def _wait(run_ids: list[str], since, timeout: float, sample=None) -> list[float]:
    """Seconds from `since` to each run's completion (all must complete)."""
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
    rows = list(Run.objects.filter(pk__in=run_ids).values_list("status", "completed_at"))
    failed = [status for status, _ in rows if status != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not complete: {failed[:3]}")
    return [(completed - since).total_seconds() for _, completed in rows]


def _measure_worker(ctx: Context, label: str, extra: list[str], count: int, definition: dict,
                    concurrency: int) -> dict:  # fmt: skip
    env = {**ctx.env, "SVERM_SIMULATED_LATENCY": str(LATENCY),
           "DJANGO_SETTINGS_MODULE": "sverm.settings"}  # fmt: skip
    with stack.celery_worker(env, ctx.log_dir, extra, f"worker-{label}") as worker:
        _wait(*_create(ctx, 1, definition), 60)  # warm-up (and startup)
        lone = []
        for _ in range(1 if ctx.quick else 2):
            lone += _wait(*_create(ctx, 1, definition), 60)
        peak = [stack.tree_rss_bytes(worker.pid)]
        ids, since = _create(ctx, count, definition)
        waves = -(-count // concurrency)
        walls = _wait(ids, since, 60 + waves * 3 * LATENCY * 4,
                      sample=lambda: peak.append(stack.tree_rss_bytes(worker.pid)))  # fmt: skip
    return {"lone": statistics.median(lone), "median": statistics.median(walls),
            "max": max(walls), "rss": max(peak)}  # fmt: skip


def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    count = sizes.many_runs
    definition = builtin_definition(TEMPLATE)
    figures = []
    common = (f"{count} {TEMPLATE} runs (5 calls each, {LATENCY * 1000:.0f} ms per simulated "
              f"call, critical path {3 * LATENCY:.1f} s) created by run_create in one "
              f"transaction, so dispatched to the Celery broker (Redis) at one commit; wall = "
              f"commit to the run's completed_at; baseline: median of 2 lone runs on the same "
              f"warm worker (1 in QUICK, which also skips docker-compose's worker)")  # fmt: skip
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
            result = _measure_worker(ctx, label, extra, count, definition, concurrency)
        except Exception as exc:
            figures.append(Figure.error(f"5. many runs at once, {what}", exc))
            continue
        rss_mib = result["rss"] / 2**20
        figures.append(Figure.ratio_target(
            f"5. {count} runs at once, median wall / lone run, {what}", result["median"] * 1000,
            result["lone"] * 1000, "<=", 1.5, "ms",
            f"{common}. Slowest run {result['max']:.1f} s; worker RSS at peak (process tree) "
            f"{rss_mib:.0f} MiB.",
        ))  # fmt: skip
        figures.append(Figure.report(
            f"5. worker resident memory at peak, {what}", rss_mib, None, "MiB",
            f"sum of VmRSS over the worker's process tree, sampled every 0.1 s during the "
            f"{count} runs.",
        ))  # fmt: skip
    ctx.note(
        f"Many runs: a worker process executes every run it holds on one event loop (the run "
        f"host, swarms/executor.py), their database writes on SVERM_EXECUTOR_DB_LANES (4) "
        f"lanes, so {count} runs at once hold 4 PostgreSQL connections, not {2 * count}; Celery's "
        f"thread slots only wait for their run to end. The runs wait on the LLM, not the CPU; "
        f"what is left per run is benchmark 3's work (SQL round trips, publishing)."
    )
    return figures

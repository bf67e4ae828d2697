"""5. Many runs at once: runs of the research template with 500 ms simulated calls, created
together and executed by one Celery worker; the median run's wall time (dispatch to completion)
against a lone run's on the same worker, and the worker's resident memory.

Measured for docker-compose's worker (prefork, concurrency 4) and for one worker process with a
thread pool; then, as a what-if, for the runs on one event loop sharing four database threads
(what the executor could do), in this process."""

import asyncio
import contextlib
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

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


def _create(ctx: Context, count: int, definition: dict) -> list[str]:
    """`count` runs through run_create, committed together: all dispatched at one moment."""
    from accounts.models import User
    from swarms.services.runs import run_create

    user = User.objects.get(pk=ctx.tenant.user_id)
    with transaction.atomic():
        return [
            run_create(workspace_id=ctx.tenant.workspace_id, definition=definition,
                       task=f"Investigate topic {index}", max_budget_usd=None, created_by=user,
                       template_id=TEMPLATE).pk
            for index in range(count)
        ]  # fmt: skip


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
        _wait(_create(ctx, 1, definition), timezone.now(), 60)  # warm-up (and startup)
        lone = []
        for _ in range(1 if ctx.quick else 2):
            since = timezone.now()
            lone += _wait(_create(ctx, 1, definition), since, 60)
        peak = [stack.tree_rss_bytes(worker.pid)]
        since = timezone.now()
        ids = _create(ctx, count, definition)
        waves = -(-count // concurrency)
        walls = _wait(ids, since, 60 + waves * 3 * LATENCY * 4,
                      sample=lambda: peak.append(stack.tree_rss_bytes(worker.pid)))  # fmt: skip
    return {"lone": statistics.median(lone), "median": statistics.median(walls),
            "max": max(walls), "rss": max(peak)}  # fmt: skip


def _one_loop(ctx: Context, count: int, definition: dict, db_threads: int = 4) -> dict:
    """What-if: `count` runs on one event loop in this process, their database writes on a
    shared pool of `db_threads` threads (one connection each), events published as usual."""
    from asgiref.sync import sync_to_async
    from django.db import close_old_connections

    from billing.selectors import price_map
    from billing.services import usage_record_add
    from swarms.engine import Definition, ProviderRouter, RunInput, run_swarm
    from swarms.models import Run
    from swarms.services.runs import run_claim, run_event_add, run_finish

    pool = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="bench-db")
    prices = price_map()
    parsed = Definition.from_dict(definition)

    def in_db(func):
        return sync_to_async(func, thread_sensitive=False, executor=pool)

    async def one(run: Run) -> None:
        await in_db(run_claim)(run_id=run.pk)
        spec = RunInput(run_id=run.pk, task=run.task, definition=parsed,
                        budget_usd=run.max_budget_usd, prices=prices)  # fmt: skip

        async def on_event(event) -> None:
            await in_db(run_event_add)(run_id=run.pk, type=event.type,
                                       agent_id=event.agent_id or "", data=event.data)  # fmt: skip

        async def on_usage(usage) -> None:
            await in_db(usage_record_add)(
                workspace_id=run.workspace_id, run_id=run.pk, swarm_id="",
                swarm_type=run.swarm_type, agent_id=usage.agent_id, model=usage.model,
                provider=usage.provider, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
                cost_usd=usage.cost_usd,
            )  # fmt: skip

        result = await run_swarm(spec, router=ProviderRouter.simulated_only(LATENCY),
                                 on_event=on_event, on_usage=on_usage)  # fmt: skip
        await in_db(run_finish)(run_id=run.pk, result=result)

    def queued(n: int) -> list[Run]:
        from swarms.models import Run

        with transaction.atomic():
            created = [
                Run.objects.create(
                    workspace_id=ctx.tenant.workspace_id, template_id=TEMPLATE,
                    swarm_type=TEMPLATE, definition=definition, task=f"Investigate topic {i}",
                    max_budget_usd=Decimal(5), estimated_cost_usd=Decimal("0.01"),
                    agents_total=len(parsed.expanded_agents()), simulated=True,
                    created_by_id=ctx.tenant.user_id,
                )
                for i in range(n)
            ]  # fmt: skip
        return created

    async def batch(runs: list[Run]) -> None:
        await asyncio.gather(*(one(run) for run in runs))

    def close() -> None:
        close_old_connections()
        from django.db import connection

        connection.close()

    try:
        asyncio.run(batch(queued(1)))  # warm-up
        lone = []
        for _ in range(2):
            runs = queued(1)
            since = timezone.now()
            asyncio.run(batch(runs))
            lone += _wait([run.pk for run in runs], since, 30)
        runs = queued(count)
        since = timezone.now()
        asyncio.run(batch(runs))
        walls = _wait([run.pk for run in runs], since, 30)
    finally:
        for _ in range(db_threads):
            with contextlib.suppress(Exception):
                pool.submit(close).result(timeout=10)
        pool.shutdown(wait=True)
    return {"lone": statistics.median(lone), "median": statistics.median(walls),
            "max": max(walls), "threads": threading.active_count()}  # fmt: skip


def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    count = sizes.many_runs
    definition = builtin_definition(TEMPLATE)
    figures = []
    threads = sizes.thread_pool_runs
    common = (f"{count} {TEMPLATE} runs (5 calls each, {LATENCY * 1000:.0f} ms per simulated "
              f"call, critical path {3 * LATENCY:.1f} s) created by run_create in one "
              f"transaction, so dispatched to the Celery broker (Redis) at one commit; wall = "
              f"commit to the run's completed_at; baseline: median of 2 lone runs on the same "
              f"warm worker (1 in QUICK, which also skips docker-compose's worker)")  # fmt: skip
    workers = [
        ("threads", ["--pool=threads", f"--concurrency={threads}"], threads,
         f"one worker process, `--pool=threads --concurrency={threads}`"),
        ("compose", ["--concurrency=4"], 4,
         "docker-compose's worker: `celery worker --concurrency=4` (prefork: 4 child processes)"),
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
    try:
        what_if = _one_loop(ctx, count, definition)
        figures.append(Figure.report(
            f"5. what-if: {count} runs on one event loop, 4 shared DB threads, median wall / lone",
            what_if["median"] * 1000, what_if["lone"] * 1000, "ms",
            f"bench/b5_many_runs.py::_one_loop in this process: the executor's steps (run_claim, "
            f"run_swarm, run_event_add, usage_record_add, run_finish) for {count} runs as "
            f"asyncio tasks of one loop, database calls on a shared 4-thread pool (4 "
            f"connections) instead of a thread and a connection per run; slowest "
            f"{what_if['max']:.1f} s.",
        ))  # fmt: skip
    except Exception as exc:
        figures.append(Figure.error("5. what-if: runs on one event loop", exc))
    ctx.note(
        "RECOMMENDED (many runs): first cut the work per run that benchmark 3 breaks down (SQL "
        "statements, one group_send per event, a new connection per run): with 100 runs at once "
        "it queues on the database and the publisher whatever the worker; then execute runs as "
        "asyncio tasks on one "
        "event loop per worker process with a small shared database thread pool, as the what-if "
        "above does: in swarms/executor.py replace the per-run `ThreadPoolExecutor(max_workers="
        "1)` (a thread and a PostgreSQL connection per run) by a process-wide pool of a few "
        "threads (each run's writes stay ordered because its EventSink awaits them one at a "
        "time) and hand runs from the Celery task to a process-wide loop thread, or run the "
        "worker with `--pool=threads --concurrency=<runs>` once connections are shared; then set "
        "docker-compose's worker to that. Until then a worker runs `concurrency` runs at a time "
        "and the others queue."
    )
    ctx.note(
        f"Many runs: each run executing holds a worker slot for its whole life and two "
        f"PostgreSQL connections (the task thread's and the per-run DB thread's), so a worker "
        f"runs at most `concurrency` runs at once and {count} concurrent runs would need "
        f"{2 * count} connections (PostgreSQL's default max_connections is 100); the runs wait "
        f"on the LLM, not on the CPU."
    )
    return figures

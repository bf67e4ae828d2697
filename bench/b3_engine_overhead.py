"""3. Engine overhead: research-template runs on the simulated provider with zero latency, through
the executor's `execute_run` (events stored in PostgreSQL and published to channels-redis,
usage in the ledger): milliseconds per agent step, against the same steps with persistence and
publishing off (`run_swarm` with callbacks that do nothing: the orchestration floor)."""

import asyncio
import time
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings

from bench.context import Context
from bench.fixtures import builtin_definition, run_make
from bench.report import Figure, median

NAME = "engine-overhead"
TEMPLATE = "research-swarm-v1"


def orchestration_floor(definition: dict, latency: float = 0.0) -> tuple[float, int]:
    """Seconds and LLM calls of one run with no persistence and no publishing."""
    from swarms.engine import Definition, ProviderRouter, RunInput, run_swarm
    from swarms.providers import price_map

    spec = RunInput(run_id="run_floor", task="Investigate the Norwegian hydrogen economy",
                    definition=Definition.from_dict(definition), budget_usd=Decimal(5),
                    prices=price_map())  # fmt: skip

    async def nothing(_item) -> None:
        return None

    async def once():
        router = ProviderRouter.simulated_only(latency)
        return await run_swarm(spec, router=router, on_event=nothing, on_usage=nothing)

    start = time.perf_counter()
    result = asyncio.run(once())
    elapsed = time.perf_counter() - start
    if result.status != "completed":
        raise RuntimeError(f"the floor run ended {result.status}: {result.error_message}")
    return elapsed, len(result.usage)


def executed_run(ctx: Context, definition: dict, template_id: str = "") -> tuple[float, str]:
    """Seconds of `execute_run` on a fresh queued run, and the run id (checked completed)."""
    from swarms.executor import execute_run
    from swarms.models import Run

    run_id = run_make(ctx.tenant, definition, template_id=template_id)
    start = time.perf_counter()
    execute_run(run_id)
    elapsed = time.perf_counter() - start
    run = Run.objects.get(pk=run_id)
    if run.status != "completed":
        raise RuntimeError(f"run {run_id} ended {run.status}: {run.error_message}")
    return elapsed, run_id


def connection_setup_ms(samples: int = 10) -> float:
    """Median milliseconds to open a PostgreSQL connection and run one query."""
    import psycopg

    url = settings.DATABASES["default"]
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        with psycopg.connect(
            host=url["HOST"] or "127.0.0.1", port=url["PORT"] or 5432, user=url["USER"],
            password=url["PASSWORD"] or None, dbname=url["NAME"],
        ) as conn:  # fmt: skip
            conn.execute("SELECT 1")
        timings.append((time.perf_counter() - start) * 1000)
    return median(timings)


def durable_commit_ms(samples: int = 30) -> float:
    """Median milliseconds of one committed single-row INSERT (the WAL flush a commit waits on)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit (x int)")
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_commit VALUES (1)")  # autocommit: one commit
        timings.append((time.perf_counter() - start) * 1000)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_commit")
    return median(timings)


@contextmanager
def counting():
    """Counts and times, in every thread of this process, SQL statements by kind, commits and
    channel-layer group_sends while the block runs (bench-only instrumentation)."""
    from channels_redis.core import RedisChannelLayer
    from django.db.backends import utils
    from django.db.backends.base.base import BaseDatabaseWrapper

    counts: Counter = Counter()
    seconds: Counter = Counter()
    execute, commit, group_send = (
        utils.CursorWrapper.execute,
        BaseDatabaseWrapper.commit,
        RedisChannelLayer.group_send,
    )

    def timed_execute(self, sql, params=None):
        start = time.perf_counter()
        try:
            return execute(self, sql, params)
        finally:
            kind = sql.split(None, 1)[0].upper()
            kind = "SELECT FOR UPDATE" if kind == "SELECT" and "FOR UPDATE" in sql else kind
            counts[kind] += 1
            seconds[kind] += time.perf_counter() - start

    def timed_commit(self):
        start = time.perf_counter()
        try:
            return commit(self)
        finally:
            counts["COMMIT"] += 1
            seconds["COMMIT"] += time.perf_counter() - start

    async def timed_group_send(self, group, message):
        start = time.perf_counter()
        try:
            return await group_send(self, group, message)
        finally:
            counts["group_send"] += 1
            seconds["group_send"] += time.perf_counter() - start

    utils.CursorWrapper.execute = timed_execute
    BaseDatabaseWrapper.commit = timed_commit
    RedisChannelLayer.group_send = timed_group_send
    try:
        yield counts, seconds
    finally:
        utils.CursorWrapper.execute = execute
        BaseDatabaseWrapper.commit = commit
        RedisChannelLayer.group_send = group_send


def breakdown(counts: Counter, seconds: Counter, runs: int, steps: int) -> str:
    parts = [
        f"{kind} {counts[kind] / runs / steps:.1f} ({seconds[kind] * 1000 / runs / steps:.1f} ms)"
        for kind in sorted(counts, key=lambda k: -seconds[k])
    ]
    return ", ".join(parts)


@contextmanager
def asynchronous_commits():
    """New connections of this process use synchronous_commit=off (a what-if, bench only)."""
    from django.db import connections

    options = connections.settings["default"].setdefault("OPTIONS", {})
    before = options.get("options")
    options["options"] = "-c synchronous_commit=off"
    connections["default"].close()
    try:
        yield
    finally:
        if before is None:
            options.pop("options", None)
        else:
            options["options"] = before
        connections["default"].close()


def run(ctx: Context) -> list[Figure]:
    from swarms.models import RunEvent

    settings.SVERM_SIMULATED_LATENCY = 0.0
    definition = builtin_definition(TEMPLATE)
    runs = ctx.sizes.engine_runs
    floor_samples, steps = [], 0
    orchestration_floor(definition)  # warm-up
    for _ in range(runs):
        seconds, steps = orchestration_floor(definition)
        floor_samples.append(seconds)
    executed_run(ctx, definition, TEMPLATE)  # warm-up: connections, imports
    samples, run_id = [], ""
    for _ in range(runs):
        seconds, run_id = executed_run(ctx, definition, TEMPLATE)
        samples.append(seconds)
    events = RunEvent.objects.filter(run_id=run_id).count()
    with counting() as (counts, seconds):
        counted_runs = 3
        counted = [executed_run(ctx, definition, TEMPLATE)[0] for _ in range(counted_runs)]
    per_step_work = breakdown(counts, seconds, counted_runs, steps)
    per_run_step = counted_runs * steps
    commits = counts["COMMIT"] / per_run_step
    sends = counts["group_send"] / per_run_step
    statements = sum(n for kind, n in counts.items() if kind not in ("COMMIT", "group_send"))
    statements /= per_run_step
    ctx.note(
        f"Engine overhead, where a step's time goes (3 instrumented runs, "
        f"{median(counted) * 1000 / steps:.1f} ms/step; per step: count (time)): "
        f"{per_step_work}. The rest is the ORM, thread hops and the engine."
    )
    with asynchronous_commits():
        executed_run(ctx, definition, TEMPLATE)
        relaxed = [executed_run(ctx, definition, TEMPLATE)[0] for _ in range(runs)]
    relaxed_step = median(relaxed) * 1000 / steps
    per_step = median(samples) * 1000 / steps
    floor = median(floor_samples) * 1000 / steps
    ctx.note(
        f"Engine overhead: a {TEMPLATE} run makes {steps} LLM calls and stores {events} events "
        f"and {steps} ledger rows; {per_step:.2f} ms per step against an orchestration floor of "
        f"{floor:.2f} ms."
    )
    commit_ms = durable_commit_ms()
    connect_ms = connection_setup_ms()
    sql_ms = sum(v for k, v in seconds.items() if k != "group_send") * 1000 / per_run_step
    send_ms = seconds["group_send"] * 1000 / per_run_step
    if per_step > 3.0:
        ctx.note(
            f"RECOMMENDED (engine overhead, {per_step:.2f} ms/step > 3 ms): a step is now "
            f"{statements:.1f} SQL statements in {commits:.1f} transactions ({sql_ms:.1f} ms; a "
            f"durable commit costs {commit_ms:.2f} ms here, a new connection {connect_ms:.1f} "
            f"ms, which a busy lane no longer pays) and {sends:.1f} channel-layer group_sends "
            f"({send_ms:.1f} ms, on the publisher thread). The checkpoint design needs two "
            f"transactions per LLM call (the reservation on record before the call, the "
            f"settlement with its ledger row after), and each pays BEGIN and COMMIT round trips "
            f"besides its statements: with one round trip each, the statements alone take "
            f"{sql_ms:.1f} ms of a step. What is left: send each transaction's statements "
            f"without waiting for each result (psycopg's pipeline mode, which Django's ORM does "
            f"not use), or write a batch in one data-modifying CTE on PostgreSQL (the run row's "
            f"UPDATE … RETURNING feeding the events', checkpoints' and ledger's INSERTs): two "
            f"round trips per transaction instead of about six."
        )
    waiting = per_step - relaxed_step
    ctx.note(
        f"Engine overhead without waiting for WAL flushes (synchronous_commit=off on the "
        f"executor's connections, a what-if): {relaxed_step:.2f} ms per step against "
        f"{per_step:.2f} ms as configured, so commits waiting on the disk are "
        + (f"{waiting:.2f} ms of a step." if waiting > 0.5 else "within the noise here.")
    )
    return [
        Figure.value_target(
            f"3. engine overhead per agent step, {TEMPLATE}, zero-latency provider (baseline: "
            "persistence and publishing off)", per_step, floor, "<=", 3.0, "ms/step",
            f"median of {runs} runs (after 1 warm-up) of swarms.executor.execute_run on a queued "
            f"run in this process: PostgreSQL, channels-redis, simulated provider with 0 s "
            f"latency; divided by the {steps} LLM calls ({events} events) of a run. Baseline: "
            f"swarms.engine.run_swarm on the same definition with no-op event and usage "
            f"callbacks, median of {runs}.",
        ),
        Figure.report(
            "3. what-if: engine overhead per step with synchronous_commit=off (baseline: as "
            "configured)", relaxed_step, per_step, "ms/step",
            f"as the figure above, {runs} runs, with PostgreSQL's synchronous_commit=off on the "
            f"connections the executor opens (commits stop waiting for the WAL flush): how much "
            f"of a step is commit latency.",
        ),
    ]  # fmt: skip

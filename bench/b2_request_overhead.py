"""2. Request overhead: `GET /v1/swarms/{id}` requests/s on a warm Daphne under a loopback load
generator, against a bare Django view in the same process returning the same row as JSON; and
the queries one such request makes, with 1 run in the workspace and with 1,000 more."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench import loadgen, stack
from bench.context import Context
from bench.fixtures import builtin_definition, run_make
from bench.report import Figure

NAME = "request-overhead"


def _queries(ctx: Context, path: str) -> int:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {ctx.tenant.api_key}")
    client.get(path)  # warm caches (plan limits) like a warm server's
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}")
    return len(captured.captured_queries)


def filler_runs(ctx: Context, count: int, definition: dict) -> None:
    from decimal import Decimal

    from swarms.models import Run

    Run.objects.bulk_create(
        [
            Run(workspace_id=ctx.tenant.workspace_id, template_id="research-swarm-v1",
                swarm_type="research-swarm-v1", definition=definition, task="filler",
                max_budget_usd=Decimal(5), estimated_cost_usd=Decimal("0.01"), agents_total=5,
                simulated=True, created_by_id=ctx.tenant.user_id)
            for _ in range(count)
        ],
        batch_size=500,
    )  # fmt: skip


def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    definition = builtin_definition("research-swarm-v1")
    run_id = run_make(ctx.tenant, definition, template_id="research-swarm-v1")
    v1_path = f"/v1/swarms/{run_id}"
    bare_path = f"/bench/bare/runs/{run_id}"
    queries_alone = _queries(ctx, v1_path)
    filler_runs(ctx, 1000, definition)
    queries_many = _queries(ctx, v1_path)
    bare_queries = _queries(ctx, bare_path)

    with stack.server("daphne", ctx.env, ctx.log_dir) as base:
        kwargs = {"connections": sizes.connections, "seconds": sizes.load_seconds,
                  "warmup": sizes.warmup_seconds}  # fmt: skip
        loadgen.run(base + bare_path, **{**kwargs, "seconds": 0.5})  # warm every path once
        # Both carry the API key: the bare view ignores it.
        v1, bare = loadgen.run_in_turns(
            [base + v1_path, base + bare_path], headers=ctx.tenant.headers, **kwargs
        )
    for load, path in ((v1, v1_path), (bare, bare_path)):
        if load.errors or not load.requests:
            raise RuntimeError(f"{path}: {load.errors} errors of {load.requests}: {load.statuses}")
    how = (f"one Daphne process (`make run`'s embedded server, access log off) on a free loopback "
           f"port, PostgreSQL + Redis (rate limiter, cache); closed-loop load from "
           f"{sizes.connections} keep-alive connections (bench/loadgen.py), "
           f"{sizes.warmup_seconds:g} s warm-up then {sizes.load_seconds:g} s measured each, in "
           f"two alternating slices (API, bare, API, bare), same process serving both")  # fmt: skip
    ctx.note(
        f"Request overhead: GET /v1/swarms/{{id}} {v1.rps:.0f} req/s (p50 {v1.p50:.1f} ms) vs "
        f"the bare view {bare.rps:.0f} req/s (p50 {bare.p50:.1f} ms); the API request makes "
        f"{queries_many} queries (bare view: {bare_queries}), and under ASGI every request "
        f"takes a PostgreSQL connection from the process's pool and gives it back as it ends "
        f"(Django's ASGI handler runs each request's sync code in a thread of its own)."
    )
    return [
        Figure.ratio_target(
            "2. request overhead: GET /v1/swarms/{id} / bare Django view, requests/s", v1.rps,
            bare.rps, ">=", 0.5, "req/s",
            f"{how}. API: {v1.describe()}. Bare view (JsonResponse of the same row, no DRF, "
            f"no auth): {bare.describe()}.",
        ),
        Figure.value_target(
            "2. queries per GET /v1/swarms/{id}: 1,001 runs in the workspace (baseline: 1)",
            queries_many, queries_alone, "<=", queries_alone, "queries",
            f"CaptureQueriesContext around one warm in-process request (API key auth, plan "
            f"limits cached), first with the workspace's only run, then after 1,000 more runs "
            f"were added; constant when value == baseline. Bare view: {bare_queries} query.",
        ),
    ]  # fmt: skip

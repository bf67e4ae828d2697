"""7. Usage: `GET /v1/usage` of a workspace with the full-size ledger against one with a small
ledger, in the same table and the same minutes (the monthly rollup rebuilt from the ledger); and,
reported beside it, `GET /api/usage` (a GROUP BY over the ledger's current month)."""

from bench.context import Context, paired_ms
from bench.fixtures import Tenant, checkpoint, ledger_load, tenant_second
from bench.report import Figure

NAME = "usage"


def _getter(tenant: Tenant, path: str):
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")

    def get():
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: "
                               f"{response.content[:300]!r}")  # fmt: skip
        return response

    return get


V1 = "/v1/usage"
API = "/api/usage?group_by=model"


def run(ctx: Context) -> list[Figure]:
    from billing.models import UsageRecord

    sizes = ctx.sizes
    reps = sizes.repetitions
    small, big = ctx.tenant, tenant_second(ctx.tenant, "Bench usage")
    ledger_load(small, sizes.ledger_small, seed=1)
    alone_v1, alone_api = paired_ms([_getter(small, V1), _getter(small, API)], reps)
    load_seconds = ledger_load(big, sizes.ledger_rows - sizes.ledger_small, seed=2)
    checkpoint()
    rows = UsageRecord.objects.count()
    big_rows = UsageRecord.objects.filter(workspace_id=big.workspace_id).count()
    small_rows = UsageRecord.objects.filter(workspace_id=small.workspace_id).count()
    v1_small, v1_big, api_small, api_big = paired_ms(
        [_getter(small, V1), _getter(big, V1), _getter(small, API), _getter(big, API)], reps
    )
    how = (f"in-process Django test client with each workspace's API key on PostgreSQL; the "
           f"ledger holds {rows:,} rows: {big_rows:,} of one workspace (COPY in "
           f"{load_seconds:.0f} s, the current UTC month, rollup rebuilt with "
           f"usage_rollup_rebuild, then CHECKPOINT) and {small_rows:,} of another; the two "
           f"workspaces' requests timed in turns, median of {reps} after 1 warm-up. Before the "
           f"big load (a {small_rows:,}-row table) the small workspace took {alone_v1:.1f} ms "
           f"on /v1/usage and {alone_api:.1f} ms on /api/usage")  # fmt: skip
    ctx.note(
        f"Usage: /v1/usage {v1_small:.1f} ms for the workspace with {small_rows:,} ledger rows, "
        f"{v1_big:.1f} ms for the one with {big_rows:,} (it reads the monthly rollup only); "
        f"/api/usage grouped by model {api_small:.1f} ms -> {api_big:.1f} ms (it aggregates "
        f"the ledger rows in range; a daily rollup would bound it if dashboards need it)."
    )
    return [
        Figure.ratio_target(
            f"7. usage: GET /v1/usage, {big_rows:,} / {small_rows:,} ledger rows", v1_big,
            v1_small, "<=", 1.2, "ms", how + ".",
        ),
        Figure.report(
            f"7. usage: GET /api/usage?group_by=model (current month), {big_rows:,} / "
            f"{small_rows:,} ledger rows", api_big, api_small, "ms",
            how + "; no target: a dashboard range read.",
        ),
    ]  # fmt: skip

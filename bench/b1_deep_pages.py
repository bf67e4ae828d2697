"""1. Deep pages: `GET /api/swarms` on a bulk-loaded workspace, first page vs a page 90% deep
(keyset `after`), against DRF's LimitOffsetPagination at the same depth; a filtered list; and
the share of the exact `total` (a COUNT) in the latency."""

import json
import re
import time
from urllib.parse import urlencode

from bench.context import Context, median_ms, paired_ms
from bench.fixtures import swarms_load
from bench.report import Figure

NAME = "deep-pages"
LIMIT = 100
TWO_KEYS = [{"name": "asc"}, {"createdAt": "desc"}]
FILTER = {"OR": [{"name": {"contains": "hydrogen"}}, {"description": {"startsWith": "legal"}}]}


def _client(ctx: Context):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {ctx.tenant.api_key}")


def _get(client, path: str, params: dict) -> dict:
    response = client.get(f"{path}?{urlencode(params)}")
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params} answered {response.status_code}: "
                           f"{response.content[:300]!r}")  # fmt: skip
    return response.json()


def _cursor_at(ctx: Context, order: list | None, position: int):
    """The signed `after` cursor of the row at `position` (1-based) under `order`, and the id
    of the row after it (what the deep page must start with)."""
    from sverm.api.listing import parse_order_by
    from sverm.api.pagination import encode_cursor, order_by_expressions
    from swarms.filters import SWARM_LIST
    from swarms.models import Swarm

    keys = parse_order_by(json.dumps(order) if order else None, SWARM_LIST)
    alive = Swarm.objects.filter(workspace_id=ctx.tenant.workspace_id, deleted_at__isnull=True)
    rows = list(alive.order_by(*order_by_expressions(keys))[position - 1 : position + 1])
    return encode_cursor(rows[0], keys), rows[1].pk, rows[0]


def _plan_of(queryset) -> str:
    """The top nodes and run time of PostgreSQL's plan for COUNT(*) over `queryset`."""
    from django.db import connection

    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ANALYZE SELECT COUNT(*) FROM ({sql}) AS counted", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    nodes = re.findall(r"(?:->\s*)?([A-Z][A-Za-z ]+?(?: Scan| Join| Aggregate|Gather)[^(]*)", plan)
    runtime = re.search(r"Execution Time: ([0-9.]+) ms", plan)
    top = "; ".join(dict.fromkeys(node.strip() for node in nodes[:4]))
    return f"{top} ({runtime.group(1) if runtime else '?'} ms)"


def _sql_ms(queryset, reps: int) -> float:
    return median_ms(lambda: list(queryset.all()), reps)  # a fresh clone: no result cache


def _what_if(ctx: Context, row, first_api: float, deep_api: float, reps: int, common: str):
    """The page queries alone (SQL through the ORM, no HTTP), as the view builds them and as
    they would be with the two changes the findings recommend."""
    from sverm.api.listing import parse_order_by
    from sverm.api.pagination import order_by_expressions, rows_after
    from swarms.filters import SWARM_LIST
    from swarms.models import Swarm

    keys = parse_order_by(None, SWARM_LIST)
    order = order_by_expressions(keys)
    values = [row.created_at, row.pk]
    scoped = Swarm.objects.visible_in([ctx.tenant.workspace_id]).alive()
    plain = Swarm.objects.filter(workspace_id=ctx.tenant.workspace_id).alive()
    page = LIMIT + 1
    now_first = _sql_ms(scoped.order_by(*order)[:page], reps)
    now_deep = _sql_ms(scoped.filter(rows_after(keys, values)).order_by(*order)[:page], reps)
    fixed_first = _sql_ms(plain.order_by(*order)[:page], reps)
    or_deep = _sql_ms(plain.filter(rows_after(keys, values)).order_by(*order)[:page], reps)
    row_deep = _sql_ms(
        plain.extra(where=["(created_at, id) < (%s, %s)"], params=values).order_by(*order)[:page],
        reps,
    )
    ctx.note(
        f"Deep pages, the page query alone (median of {reps}): as built today (scope "
        f"`workspace_id IN (...) OR workspace_id IN (integrations)`, keyset as OR-expanded "
        f"comparisons) first {now_first:.2f} ms / deep {now_deep:.2f} ms; with the scope "
        f"resolved to a plain `workspace_id IN (<ids>)` first {fixed_first:.2f} ms / deep "
        f"{or_deep:.2f} ms (the OR-expanded keyset is an index Filter, not an Index Cond, so "
        f"the scan walks every row before the cursor); with a row-value keyset "
        f"`(created_at, id) < (%s, %s)` deep {row_deep:.2f} ms."
    )
    shapes = {
        "now_first": now_first, "now_deep": now_deep, "fixed_first": fixed_first,
        "or_deep": or_deep, "row_deep": row_deep,
    }  # fmt: skip
    figure = Figure.report(
        "1. what-if: page query 90% deep / first page with a plain workspace scope and a "
        "row-value keyset (SQL only)",
        row_deep,
        fixed_first,
        "ms",
        f"the ORM query of the page (LIMIT {page}) without HTTP, median of {reps}: "
        f"Swarm.objects.filter(workspace_id=...).alive() ordered by (-created_at, -id), the deep "
        f"page with .extra(where=['(created_at, id) < (%s, %s)']); today's shapes: first "
        f"{now_first:.2f} ms, deep {now_deep:.2f} ms (API: {first_api:.1f} / {deep_api:.1f} ms); "
        f"{common}.",
    )
    return figure, shapes


def _recommend(ctx: Context, results: dict, shapes: dict, figures: list[Figure]) -> None:
    """RECOMMENDED findings for what this run shows is slow, with its numbers."""
    advice = []
    if shapes["now_first"] > 2 * shapes["fixed_first"] + 1:
        advice.append(
            f"sverm/api/scoping.py ScopedQuerySet.visible_in: read the installed integrations' "
            f"publisher ids first (one indexed query) and filter `workspace_id__in=[*own, "
            f"*publishers]` instead of `own | workspace_id IN (subquery)`, which makes "
            f"PostgreSQL scan and sort the table for every page (first page "
            f"{shapes['now_first']:.1f} -> {shapes['fixed_first']:.1f} ms, SQL only)"
        )
    if shapes["or_deep"] > 3 * shapes["row_deep"]:
        advice.append(
            f"sverm/api/pagination.py rows_after: when the order keys are non-nullable and "
            f"share one direction (the default createdAt desc + id) emit one row-value "
            f"comparison `(created_at, id) < (%s, %s)` (Django 5.2's tuple lookups or a RawSQL "
            f"condition): the OR-expanded comparisons are an index Filter, so the scan walks "
            f"every row before the cursor (deep page {shapes['or_deep']:.1f} -> "
            f"{shapes['row_deep']:.1f} ms, SQL only)"
        )
    first, deep = results["orderBy name asc, createdAt desc"]
    if deep > 1.3 * first:
        advice.append(
            f"mixed directions (orderBy name asc, createdAt desc: deep {deep:.0f} ms vs first "
            f"{first:.0f} ms): sverm/api/pagination.py should split such a keyset into "
            f"`name > x` and `name = x AND (created_at, id) < (...)`, each its own LIMITed "
            f"query (UNION ALL) so each part is an index range; an index on (workspace, name, "
            f"-created_at, -id) alone does not help (the planner walks it and filters)"
        )
    shares = [f.value for f in figures if f.name.startswith("1. total") and f.value]
    if shares and max(shares) > 30:
        advice.append(
            f"the exact total is {max(shares):.0f}% of a page's latency (a COUNT of every "
            f"living row on every page): add `models.Index(fields=['workspace'], condition=Q("
            f"deleted_at__isnull=True), name='swarm_ws_alive')` so it is an index-only scan, "
            f"and compute it only on the first page (or when asked) if seed 003 allows; it "
            f"stays exact and still grows with the workspace"
        )
    if advice:
        ctx.note(
            "RECOMMENDED (deep pages): "
            + "; ".join(f"({i}) {text}" for i, text in enumerate(advice, 1))
            + "."
        )


def run(ctx: Context) -> list[Figure]:
    from swarms.models import Swarm

    sizes = ctx.sizes
    load_seconds = swarms_load(ctx.tenant, sizes.swarms)
    alive = Swarm.objects.filter(workspace_id=ctx.tenant.workspace_id, deleted_at__isnull=True)
    living = alive.count()
    depth = int(living * 0.9)
    client = _client(ctx)
    # Requests over the full table take a second each: 5 repetitions keep the suite in budget.
    reps = min(sizes.repetitions, 5)
    common = (f"{sizes.swarms:,} swarms bulk-loaded with COPY in {load_seconds:.0f} s "
              f"({living:,} not deleted) in one workspace; in-process Django test client with an "
              f"API key on PostgreSQL (full middleware, auth, rate limiter on Redis); limit="
              f"{LIMIT}; median of {reps} after 1 warm-up, each figure timed in turns with its "
              f"baseline")  # fmt: skip
    figures = []

    # Default order (createdAt desc), then two keys.
    results = {}
    for label, order in (("default order (createdAt desc)", None),
                         ("orderBy name asc, createdAt desc", TWO_KEYS)):  # fmt: skip
        params = {"limit": LIMIT, **({"orderBy": json.dumps(order)} if order else {})}
        cursor, expected_first, row = _cursor_at(ctx, order, depth)
        deep_params = {**params, "after": cursor}
        if order is None:
            default_row, deep_default = row, deep_params
        page = _get(client, "/api/swarms", deep_params)
        if page["data"][0]["id"] != expected_first:
            raise RuntimeError(f"the deep page starts at {page['data'][0]['id']}, "
                               f"not {expected_first}")  # fmt: skip
        first, deep = paired_ms(
            [
                lambda p=params: _get(client, "/api/swarms", p),
                lambda p=deep_params: _get(client, "/api/swarms", p),
            ],
            reps,
        )
        results[label] = (first, deep)
        figures.append(Figure.ratio_target(
            f"1. deep pages: keyset page 90% deep / first page, {label}", deep, first, "<=", 1.3,
            "ms", f"GET /api/swarms?after=<cursor of row {depth:,}> vs the first page; {common}.",
        ))  # fmt: skip

    # The baseline: LimitOffsetPagination at the same depth, same view otherwise.
    offset_params = {"limit": LIMIT, "offset": depth}
    page = _get(client, "/bench/offset/swarms", offset_params)
    _deep_first, keyset_deep = results["default order (createdAt desc)"]
    offset_ms = median_ms(lambda: _get(client, "/bench/offset/swarms", offset_params), reps)
    # The keyset page again, in the same minutes as the offset page it is compared with.
    keyset_deep = median_ms(lambda: _get(client, "/api/swarms", deep_default), reps)
    figures.append(Figure.ratio_target(
        "1. deep pages: DRF LimitOffsetPagination / keyset, same page 90% deep", offset_ms,
        keyset_deep, ">=", 10, "ms",
        f"GET /bench/offset/swarms?limit={LIMIT}&offset={depth:,} (SwarmViewSet with DRF's "
        f"LimitOffsetPagination, same scoping and filters; {len(page['results'])} rows) vs the "
        f"keyset page at the same depth; {common}.",
    ))  # fmt: skip

    # A filtered list, and what the exact total costs.
    filtered = {"limit": LIMIT, "filter": json.dumps(FILTER)}
    plain = {"limit": LIMIT}
    first_plain, _ = results["default order (createdAt desc)"]
    filtered_ms = median_ms(lambda: _get(client, "/api/swarms", filtered), reps)
    matching = _get(client, "/api/swarms", filtered)["pageInfo"]["total"]
    figures.append(Figure.report(
        "1. filtered list (OR + contains/startsWith), first page / unfiltered first page",
        filtered_ms, first_plain, "ms",
        f"filter={json.dumps(FILTER)} ({matching:,} of {living:,} rows match); {common}.",
    ))  # fmt: skip
    for label, params in (("unfiltered", plain), ("filtered", filtered)):
        with_total, without = paired_ms(
            [
                lambda p=params: _get(client, "/api/swarms", p),
                lambda p=params: _get(client, "/bench/no-total/swarms", p),
            ],
            reps,
        )
        share = max(0.0, (with_total - without) / with_total * 100) if with_total else 0.0
        figures.append(Figure.report(
            f"1. total (exact COUNT) share of the first page's latency, {label}", share, None,
            "%", f"(latency with total {with_total:.1f} ms - the same view without the COUNT "
            f"{without:.1f} ms) / with total; `total` stays exact, as seed 003 defines it (a "
            f"number, no estimate); {common}.",
        ))  # fmt: skip

    what_if, shapes = _what_if(ctx, default_row, first_plain, keyset_deep, reps, common)
    figures.append(what_if)

    _recommend(ctx, results, shapes, figures)

    # Where the time goes, for the findings.
    from sverm.api.listing import compile_filter
    from swarms.filters import SWARM_LIST

    scoped = Swarm.objects.visible_in([ctx.tenant.workspace_id]).alive()
    start = time.perf_counter()
    scoped.count()
    count_ms = (time.perf_counter() - start) * 1000
    ctx.note(
        f"Deep pages ({sizes.swarms:,} swarms): first page {first_plain:.1f} ms, keyset 90% deep "
        f"{keyset_deep:.1f} ms, LimitOffsetPagination at the same depth {offset_ms:.1f} ms. "
        f"The exact total is a COUNT over every living row of the workspace on every page "
        f"({count_ms:.1f} ms here; plan: {_plan_of(scoped)}); filtered: "
        f"{_plan_of(scoped.filter(compile_filter(json.dumps(FILTER), SWARM_LIST)))}."
    )
    return figures

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
    from sverm.api.keyset import encode_cursor, order_by_expressions
    from sverm.api.listing import parse_order_by
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


def _page_queries(ctx: Context, rows: dict, reps: int, common: str):
    """The page queries alone (SQL through the ORM, no HTTP), first page and 90% deep, as the
    paginator builds them (`seek_parts`: one row-value range for the default order, one range
    per run of same-direction keys for name asc + createdAt desc) and, deep, as the OR-expanded
    comparisons they replaced; a first page scoped to a plain `workspace_id = ...`."""
    from sverm.api.keyset import order_by_expressions, rows_after, rows_fetch, seek_parts
    from sverm.api.listing import parse_order_by
    from swarms.filters import SWARM_LIST
    from swarms.models import Swarm

    scoped = Swarm.objects.visible_in([ctx.tenant.workspace_id]).alive()
    plain = Swarm.objects.filter(workspace_id=ctx.tenant.workspace_id).alive()
    page = LIMIT + 1
    shapes = {}
    for label, order in (("default", None), ("mixed", TWO_KEYS)):
        keys = parse_order_by(json.dumps(order) if order else None, SWARM_LIST)
        expressions = order_by_expressions(keys, Swarm)
        values = [getattr(rows[label], key.path) for key in keys]
        parts = seek_parts(keys, values, Swarm)
        shapes[f"{label}_first"] = _sql_ms(scoped.order_by(*expressions)[:page], reps)
        shapes[f"{label}_deep"] = median_ms(
            lambda p=parts, e=expressions: rows_fetch(scoped, p, e, page), reps
        )
        expanded = scoped.filter(rows_after(keys, values)).order_by(*expressions)[:page]
        shapes[f"{label}_or_deep"] = _sql_ms(expanded, min(reps, 3))  # 1-2 s each
    default_keys = parse_order_by(None, SWARM_LIST)
    shapes["plain_first"] = _sql_ms(
        plain.order_by(*order_by_expressions(default_keys, Swarm))[:page], reps
    )
    ctx.note(
        f"Deep pages, the page query alone (LIMIT {page}, median of {reps}): default order "
        f"first {shapes['default_first']:.2f} ms / 90% deep {shapes['default_deep']:.2f} ms "
        f"(one row-value range `(created_at, id) < (%s, %s)`); orderBy name asc, createdAt desc "
        f"first {shapes['mixed_first']:.2f} ms / deep {shapes['mixed_deep']:.2f} ms (split: "
        f"`name = x AND (created_at, id) < (...)` and `name > x`, each ordered and LIMITed in "
        f"a UNION ALL, ranges of swarm_ws_name_created). The OR-expanded comparisons they "
        f"replaced, 90% deep: default {shapes['default_or_deep']:.1f} ms, mixed "
        f"{shapes['mixed_or_deep']:.1f} ms (an index Filter, not an Index Cond: the scan walks "
        f"every row before the cursor). First page with a plain `workspace_id = ...` scope "
        f"{shapes['plain_first']:.2f} ms."
    )
    figure = Figure.report(
        "1. page query alone: 90% deep / first page, orderBy name asc, createdAt desc, split "
        "keyset (SQL only)",
        shapes["mixed_deep"],
        shapes["mixed_first"],
        "ms",
        f"the ORM queries of the page (LIMIT {page}) without HTTP or COUNT, median of {reps}: "
        f"sverm.api.keyset.rows_fetch over seek_parts (two ranges in one UNION ALL query) "
        f"vs the first page; the OR-expanded keyset it replaced: "
        f"{shapes['mixed_or_deep']:.1f} ms; {common}.",
    )
    return figure, shapes


def _recommend(ctx: Context, results: dict, shapes: dict, figures: list[Figure]) -> None:
    """RECOMMENDED findings for what this run shows is slow, with its numbers."""
    advice = []
    if shapes["default_first"] > 2 * shapes["plain_first"] + 1:
        advice.append(
            f"accounts/tenancy.py ScopedQuerySet.visible_in: the integration scope costs the "
            f"first page {shapes['default_first']:.1f} ms vs {shapes['plain_first']:.1f} ms "
            f"with a plain `workspace_id = ...`: keep it `workspace_id IN (own and publisher "
            f"ids read first)`, never `own OR workspace_id IN (subquery)`, which makes "
            f"PostgreSQL scan and sort the table for every page"
        )
    for label, name in (("default", "default order"), ("mixed", "name asc, createdAt desc")):
        if shapes[f"{label}_deep"] > 3 * shapes[f"{label}_first"] + 1:
            advice.append(
                f"{name}: the page query 90% deep takes {shapes[f'{label}_deep']:.1f} ms vs "
                f"{shapes[f'{label}_first']:.1f} ms for the first page: each part of "
                f"sverm/api/keyset.py seek_parts must be a single-direction range (a "
                f"row-value comparison for several keys) that an index in the same order "
                f"answers with an Index Cond (swarm_ws_created, swarm_ws_name_created); check "
                f"EXPLAIN of each part"
            )
    first, deep = results["orderBy name asc, createdAt desc"]
    if deep > 1.3 * first:
        advice.append(
            f"mixed directions through the API (orderBy name asc, createdAt desc: deep "
            f"{deep:.0f} ms vs first {first:.0f} ms): see the page queries above; the rest of a "
            f"page is the same COUNT and serialization as the first page"
        )
    shares = {f.name.rsplit(", ", 1)[-1]: f.value for f in figures
              if f.name.startswith("1. total") and f.value}  # fmt: skip
    if shares and max(shares.values()) > 30:
        advice.append(
            f"the exact total is {shares.get('unfiltered', 0):.0f}% of the first page's latency "
            f"unfiltered and {shares.get('filtered', 0):.0f}% filtered: a COUNT of every "
            f"matching living row on every page; unfiltered it is an index-only scan of "
            f"swarm_ws_alive once the table is vacuumed (the bench vacuums after its bulk "
            f"load, autovacuum does in production) but still grows with the workspace, "
            f"filtered it is the filter's own scan. Seed 003 wants the exact number on every "
            f"page (no estimate): what is left is an exact per-workspace count of living swarms "
            f"kept by the services that create, delete and restore them, for unfiltered lists"
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
    common = (f"{sizes.swarms:,} swarms bulk-loaded with COPY in {load_seconds:.0f} s, then "
              f"VACUUM (ANALYZE) ({living:,} not deleted) in one workspace; in-process Django "
              f"test client with an API key on PostgreSQL (full middleware, auth, rate limiter "
              f"on Redis); limit={LIMIT}; median of {reps} after 1 warm-up, each figure timed in "
              f"turns with its baseline")  # fmt: skip
    figures = []

    # Default order (createdAt desc), then two keys.
    results = {}
    deep_rows = {}
    for label, order in (("default order (createdAt desc)", None),
                         ("orderBy name asc, createdAt desc", TWO_KEYS)):  # fmt: skip
        params = {"limit": LIMIT, **({"orderBy": json.dumps(order)} if order else {})}
        cursor, expected_first, row = _cursor_at(ctx, order, depth)
        deep_rows["mixed" if order else "default"] = row
        deep_params = {**params, "after": cursor}
        if order is None:
            deep_default = deep_params
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
    # Both pay the exact count: the pages alone, neither counting.
    offset_alone = median_ms(lambda: _get(client, "/bench/offset-no-count/swarms", offset_params),
                             reps)  # fmt: skip
    keyset_alone = median_ms(lambda: _get(client, "/bench/no-total/swarms", deep_default), reps)
    figures.append(Figure.report(
        "1. deep pages without the count: offset page / keyset page, 90% deep", offset_alone,
        keyset_alone, "ms",
        f"the comparison above with neither paying a COUNT (/bench/offset-no-count/swarms: DRF's "
        f"LimitOffsetPagination with get_count stubbed; /bench/no-total/swarms: the keyset "
        f"page without `total`): what the offset itself costs; {common}.",
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

    page_queries, shapes = _page_queries(ctx, deep_rows, reps, common)
    figures.append(page_queries)

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

"""Property: for random swarms, orderBy, filter and limit, walking GET /api/swarms forward by
`after` and backward by `before` yields exactly the rows a plain-Python reference selects, in the
reference's order (nulls placed per direction, ties broken by id in the last key's direction)."""

import functools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accounts.models import Membership
from swarms.models import Swarm

pytestmark = pytest.mark.django_db

# The documented semantics, written out independently of sverm.api.listing:
# direction -> (descending, nulls_first); plain asc puts nulls last, plain desc puts them first.
DIRECTIONS = {
    "asc": (False, False),
    "desc": (True, True),
    "asc_nulls_first": (False, True),
    "asc_nulls_last": (False, False),
    "desc_nulls_first": (True, True),
    "desc_nulls_last": (True, False),
}
SORTABLE = ["name", "description", "runtimeUserId", "retentionTier", "createdAt"]
TIERS = ["ephemeral", "standard", "extended"]
BASE = datetime(2024, 1, 1, tzinfo=UTC)
TIMES = [BASE + timedelta(minutes=m) for m in range(4)]  # few values: ties are common
USERS = ["u1", "u2"]  # runtime users, resolved to real ids per test

short_text = st.text(alphabet="ab", min_size=0, max_size=2)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.text(alphabet="ab", min_size=1, max_size=2),
            "description": short_text,
            "runtimeUserId": st.sampled_from([None, *USERS]),
            "retentionTier": st.sampled_from(TIERS),
            "createdAt": st.sampled_from(TIMES),
        }
    ),
    max_size=12,
)
order_strategy = st.lists(
    st.tuples(st.sampled_from(SORTABLE), st.sampled_from(sorted(DIRECTIONS))),
    min_size=1,
    max_size=3,
    unique_by=lambda key: key[0],
)


# --- filters: (JSON filter with placeholders, Python predicate on a row) -----------------------
TEXT_OPS = {
    "eq": lambda v, x: v == x,
    "lt": lambda v, x: v < x,
    "lte": lambda v, x: v <= x,
    "gt": lambda v, x: v > x,
    "gte": lambda v, x: v >= x,
    "contains": lambda v, x: x in v,
    "startsWith": lambda v, x: v.startswith(x),
    "endsWith": lambda v, x: v.endswith(x),
}


INSENSITIVE_OK = {"eq", "neq", "contains", "startsWith", "endsWith"}


@st.composite
def _text_condition(draw):
    field = draw(st.sampled_from(["name", "description"]))
    op = draw(st.sampled_from([*TEXT_OPS, "neq", "in", "notIn"]))
    if op in ("in", "notIn"):
        values = draw(st.lists(short_text, max_size=3))
        wanted = op == "in"
        return {field: {op: values}}, lambda row: (row[field] in values) == wanted
    value = draw(short_text)
    if op in INSENSITIVE_OK and draw(st.booleans()):
        # Stored text is lower-case; the query shouts and asks to ignore case.
        query = {field: {op: value.upper(), "mode": "insensitive"}}
    else:
        query = {field: {op: value}}
    if op == "neq":
        return query, lambda row: row[field] != value
    return query, lambda row: TEXT_OPS[op](row[field], value)


@st.composite
def _runtime_condition(draw):
    op = draw(st.sampled_from(["eq", "neq", "in", "notIn", "isNull", "eqNull", "neqNull"]))
    if op == "isNull":
        flag = draw(st.booleans())
        return {
            "runtimeUserId": {"isNull": flag}
        }, lambda row: (row["runtimeUserId"] is None) == flag
    if op == "eqNull":
        return {"runtimeUserId": {"eq": None}}, lambda row: row["runtimeUserId"] is None
    if op == "neqNull":
        return {"runtimeUserId": {"neq": None}}, lambda row: row["runtimeUserId"] is not None
    if op in ("in", "notIn"):
        values = draw(st.lists(st.sampled_from(USERS), max_size=2, unique=True))
        if op == "in":
            return {"runtimeUserId": {"in": values}}, lambda row: row["runtimeUserId"] in values
        # notIn keeps rows whose value is null.
        return {"runtimeUserId": {"notIn": values}}, lambda row: row["runtimeUserId"] not in values
    user = draw(st.sampled_from(USERS))
    if op == "eq":
        return {"runtimeUserId": {"eq": user}}, lambda row: row["runtimeUserId"] == user
    # neq keeps rows whose value is null.
    return {"runtimeUserId": {"neq": user}}, lambda row: row["runtimeUserId"] != user


@st.composite
def _tier_condition(draw):
    op = draw(st.sampled_from(["eq", "neq", "in", "notIn"]))
    if op in ("in", "notIn"):
        values = draw(st.lists(st.sampled_from(TIERS), max_size=3, unique=True))
        wanted = op == "in"
        return (
            {"retentionTier": {op: values}},
            lambda row: (row["retentionTier"] in values) == wanted,
        )
    tier = draw(st.sampled_from(TIERS))
    wanted = op == "eq"
    return {"retentionTier": {op: tier}}, lambda row: (row["retentionTier"] == tier) == wanted


@st.composite
def _time_condition(draw):
    op = draw(st.sampled_from(["lt", "lte", "gt", "gte", "eq", "neq"]))
    moment = draw(st.sampled_from(TIMES))
    compare = {
        "lt": lambda v: v < moment,
        "lte": lambda v: v <= moment,
        "gt": lambda v: v > moment,
        "gte": lambda v: v >= moment,
        "eq": lambda v: v == moment,
        "neq": lambda v: v != moment,
    }[op]
    return {"createdAt": {op: moment.isoformat()}}, lambda row: compare(row["createdAt"])


# Text conditions twice: they have the most operators (and the `mode`).
simple_filter = st.one_of(
    _text_condition(), _text_condition(), _runtime_condition(), _tier_condition(), _time_condition()
)


@st.composite
def filter_strategy(draw):
    shape = draw(st.sampled_from(["none", "none", "simple", "not", "and", "or"]))
    if shape == "none":
        return None, lambda row: True
    first, keep_first = draw(simple_filter)
    if shape == "simple":
        return first, keep_first
    if shape == "not":
        return {"NOT": first}, lambda row: not keep_first(row)
    second, keep_second = draw(simple_filter)
    if shape == "and":
        return {"AND": [first, second]}, lambda row: keep_first(row) and keep_second(row)
    return {"OR": [first, second]}, lambda row: keep_first(row) or keep_second(row)


# --- reference order ----------------------------------------------------------------------------
def reference_order(rows: list[dict], order: list[tuple[str, str]]) -> list[str]:
    def compare(a: dict, b: dict) -> int:
        for field, direction in order:
            descending, nulls_first = DIRECTIONS[direction]
            x, y = a[field], b[field]
            if x == y:
                continue
            if x is None or y is None:
                return (-1 if nulls_first else 1) * (1 if x is None else -1)
            result = -1 if x < y else 1
            return -result if descending else result
        descending = DIRECTIONS[order[-1][1]][0]
        result = -1 if a["id"] < b["id"] else 1
        return -result if descending else result

    return [row["id"] for row in sorted(rows, key=functools.cmp_to_key(compare))]


def test_reference_order_places_nulls_per_direction():
    rows = [
        {"id": "a", "runtimeUserId": None},
        {"id": "b", "runtimeUserId": "x"},
        {"id": "c", "runtimeUserId": None},
        {"id": "d", "runtimeUserId": "w"},
    ]
    expect = {
        "asc": ["d", "b", "a", "c"],
        "asc_nulls_last": ["d", "b", "a", "c"],
        "asc_nulls_first": ["a", "c", "d", "b"],
        "desc": ["c", "a", "b", "d"],
        "desc_nulls_first": ["c", "a", "b", "d"],
        "desc_nulls_last": ["b", "d", "c", "a"],
    }
    for direction, ids in expect.items():
        assert reference_order(rows, [("runtimeUserId", direction)]) == ids, direction


# --- the walk -------------------------------------------------------------------------------
def walk(client, params: dict, limit: int, expected: list[str]) -> None:
    total = len(expected)
    pages = max(1, -(-total // limit))

    def fetch(**extra) -> dict:
        response = client.get("/api/swarms", {**params, "limit": str(limit), **extra})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["pageInfo"]["total"] == total
        assert 0 < len(body["data"]) <= limit or (total == 0 and body["data"] == [])
        return body

    body = fetch()
    assert not body["pageInfo"]["hasPreviousPage"]
    forward = [row["id"] for row in body["data"]]
    seen_pages = 1
    while body["pageInfo"]["hasNextPage"]:
        assert seen_pages < pages, "more pages than rows allow"
        body = fetch(after=body["pageInfo"]["endCursor"])
        assert body["pageInfo"]["hasPreviousPage"]
        forward += [row["id"] for row in body["data"]]
        seen_pages += 1
    assert len(forward) == len(set(forward)), "a row appeared twice walking forward"
    assert forward == expected
    assert seen_pages == pages

    backward = [row["id"] for row in body["data"]]
    seen_pages = 1
    while body["pageInfo"]["hasPreviousPage"]:
        assert seen_pages < pages, "more pages than rows allow"
        body = fetch(before=body["pageInfo"]["startCursor"])
        assert body["pageInfo"]["hasNextPage"]
        backward = [row["id"] for row in body["data"]] + backward
        seen_pages += 1
    assert len(backward) == len(set(backward)), "a row appeared twice walking backward"
    assert backward == expected
    assert seen_pages == pages


@pytest.fixture
def runtime_users(workspace, make_user) -> dict[str, str]:
    users = {}
    for label in USERS:
        member = make_user()
        Membership.objects.create(workspace=workspace, user=member, role="operator")
        users[label] = member.pk
    return users


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=rows_strategy,
    order=order_strategy,
    filter=filter_strategy(),
    limit=st.integers(min_value=1, max_value=7),
)
def test_walking_pages_matches_the_reference(
    api_client, workspace, runtime_users, rows, order, filter, limit
):
    Swarm.objects.all().delete()  # examples share one test transaction
    data = []
    for row in rows:
        runtime = runtime_users[row["runtimeUserId"]] if row["runtimeUserId"] else None
        swarm = Swarm.objects.create(
            workspace=workspace,
            name=row["name"],
            description=row["description"],
            runtime_user_id=runtime,
            retention_tier=row["retentionTier"],
            created_at=row["createdAt"],
        )
        data.append({**row, "id": swarm.pk})

    query, keep = filter
    # The predicate sees user labels; the order compares the users' real ids.
    selected = [
        {**row, "runtimeUserId": runtime_users.get(row["runtimeUserId"])}
        for row in data
        if keep(row)
    ]
    expected = reference_order(selected, order)
    pages = -(-len(expected) // limit)
    event(f"pages: {pages if pages < 3 else '3+'}")
    event(f"null runtime users selected: {any(r['runtimeUserId'] is None for r in selected)}")

    params = {"orderBy": json.dumps([{field: direction} for field, direction in order])}
    if query is not None:
        params["filter"] = json.dumps(resolve_users(query, runtime_users))
    walk(api_client, params, limit, expected)


def resolve_users(node, users: dict[str, str]):
    """Replace the user labels in a filter with the users' ids."""
    if isinstance(node, dict):
        return {key: resolve_users(value, users) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_users(value, users) for value in node]
    return users.get(node, node) if isinstance(node, str) else node

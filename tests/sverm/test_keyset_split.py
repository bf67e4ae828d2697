"""Mixed-direction keysets split into single-direction parts: across ties in the leading keys
every row comes exactly once and in order, walking either way, at a fixed number of queries."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sverm.api.ids import new_id
from sverm.api.keyset import rows_fetch, seek_parts
from sverm.api.listing import parse_order_by
from swarms.filters import SWARM_LIST
from swarms.models import RetentionTier, Swarm

pytestmark = pytest.mark.django_db

N = 48
# orderBy -> the same order spelled out for the database (the oracle), and how many
# single-direction runs of keys (so parts) it has once the id is appended.
ORDERS = {
    "name asc, createdAt desc": (
        [{"name": "asc"}, {"createdAt": "desc"}],
        [F("name").asc(), F("created_at").desc(), F("id").desc()],
        2,
    ),
    "name desc, createdAt asc": (
        [{"name": "desc"}, {"createdAt": "asc"}],
        [F("name").desc(), F("created_at").asc(), F("id").asc()],
        2,
    ),
    "retentionTier asc, createdAt desc, name asc": (
        [{"retentionTier": "asc"}, {"createdAt": "desc"}, {"name": "asc"}],
        [F("retention_tier").asc(), F("created_at").desc(), F("name").asc(), F("id").asc()],
        3,
    ),
    "default (createdAt desc)": (
        None,
        [F("created_at").desc(), F("id").desc()],
        1,
    ),
}


@pytest.fixture
def ties(workspace, other_workspace):
    """N swarms over 3 names, 4 instants and 3 tiers: long runs of equal leading keys."""
    base = datetime(2025, 3, 1, tzinfo=UTC)
    tiers = RetentionTier.values
    Swarm.objects.bulk_create(
        [
            Swarm(
                id=new_id("swm"),
                workspace=workspace,
                name=f"team-{'abc'[(i * 5) % 3]}",
                retention_tier=tiers[(i * 7) % 3],
                created_at=base + timedelta(minutes=(i * 11) % 4),
            )
            for i in range(N)
        ]
    )
    # Rows no page may show: soft-deleted here, and living in a workspace not ours.
    Swarm.objects.bulk_create(
        [
            Swarm(id=new_id("swm"), workspace=workspace, name="team-a", deleted_at=base),
            Swarm(id=new_id("swm"), workspace=other_workspace, name="team-a", created_at=base),
        ]
    )
    return workspace


def expected_ids(workspace, order: str) -> list[str]:
    alive = Swarm.objects.filter(workspace=workspace, deleted_at__isnull=True)
    return list(alive.order_by(*ORDERS[order][1]).values_list("id", flat=True))


def keys_of(order: str):
    order_by = ORDERS[order][0]
    return parse_order_by(json.dumps(order_by) if order_by else None, SWARM_LIST)


def get(client, order: str, limit: int, **cursor) -> dict:
    params = {"limit": str(limit), **cursor}
    if ORDERS[order][0] is not None:
        params["orderBy"] = json.dumps(ORDERS[order][0])
    response = client.get("/api/swarms", params)
    assert response.status_code == 200, response.content
    return response.json()


def walk(client, order: str, limit: int) -> tuple[list[str], list[str]]:
    """Every page forward from the first, then every page back from the last; checks each
    page's hasNextPage/hasPreviousPage against where it is."""
    body = get(client, order, limit)
    assert not body["pageInfo"]["hasPreviousPage"]
    forward = [row["id"] for row in body["data"]]
    while body["pageInfo"]["hasNextPage"]:
        body = get(client, order, limit, after=body["pageInfo"]["endCursor"])
        assert body["pageInfo"]["hasPreviousPage"]
        forward += [row["id"] for row in body["data"]]
    backward = [row["id"] for row in body["data"]]
    while body["pageInfo"]["hasPreviousPage"]:
        body = get(client, order, limit, before=body["pageInfo"]["startCursor"])
        assert body["pageInfo"]["hasNextPage"]
        backward = [row["id"] for row in body["data"]] + backward
    return forward, backward


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=st.sampled_from(sorted(ORDERS)), limit=st.integers(min_value=1, max_value=11))
def test_walking_either_way_yields_every_row_once_in_order(api_client, ties, order, limit):
    expected = expected_ids(ties, order)
    assert len(expected) == N
    forward, backward = walk(api_client, order, limit)
    assert forward == expected
    assert backward == expected


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_parts_are_the_rows_after_any_position_in_page_order(ties, order):
    keys = keys_of(order)
    alive = Swarm.objects.filter(workspace=ties, deleted_at__isnull=True)
    oracle = ORDERS[order][1]
    rows = list(alive.order_by(*oracle))
    ids = [row.pk for row in rows]

    def concatenated(parts) -> list[str]:
        return [
            pk
            for part in parts
            for pk in alive.filter(part).order_by(*oracle).values_list("pk", flat=True)
        ]

    for position, row in enumerate(rows):
        values = [getattr(row, key.path) for key in keys]
        parts = seek_parts(keys, values, Swarm)
        assert len(parts) == ORDERS[order][2]
        assert concatenated(parts) == ids[position + 1 :]
        assert concatenated(seek_parts(keys, values, Swarm, inclusive=True)) == ids[position:]
        fetched = rows_fetch(alive, parts, oracle, 5)
        assert [r.pk for r in fetched] == ids[position + 1 : position + 6]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="Django spells row values out with OR on SQLite"
)
def test_each_part_is_one_range_without_or(ties):
    # An OR across keys sorted different ways is an index Filter on PostgreSQL, not a range.
    keys = keys_of("retentionTier asc, createdAt desc, name asc")
    row = Swarm.objects.filter(workspace=ties).first()
    for part in seek_parts(keys, [getattr(row, key.path) for key in keys], Swarm):
        sql = str(Swarm.objects.filter(part).query)
        assert " OR " not in sql, sql


def test_a_deep_mixed_page_costs_what_a_default_page_costs(api_client, ties):
    def queries(order: str, **cursor) -> int:
        with CaptureQueriesContext(connection) as captured:
            get(api_client, order, 5, **cursor)
        return len(captured)

    default_cursor = get(api_client, "default (createdAt desc)", 20)["pageInfo"]["endCursor"]
    mixed = "retentionTier asc, createdAt desc, name asc"
    mixed_cursor = get(api_client, mixed, 20)["pageInfo"]["endCursor"]
    assert queries(mixed, after=mixed_cursor) == queries(
        "default (createdAt desc)", after=default_cursor
    )
    assert queries(mixed, before=mixed_cursor) == queries(
        "default (createdAt desc)", before=default_cursor
    )


def test_cursor_row_deleted_between_pages(api_client, ties):
    order = "name asc, createdAt desc"
    expected = expected_ids(ties, order)
    first = get(api_client, order, 10)
    Swarm.objects.filter(pk=expected[9]).update(deleted_at=datetime(2025, 4, 1, tzinfo=UTC))
    second = get(api_client, order, 10, after=first["pageInfo"]["endCursor"])
    assert [row["id"] for row in second["data"]] == expected[10:20]
    assert second["pageInfo"]["hasPreviousPage"] and second["pageInfo"]["hasNextPage"]
    back = get(api_client, order, 10, before=second["pageInfo"]["startCursor"])
    assert [row["id"] for row in back["data"]] == expected[:9]
    assert not back["pageInfo"]["hasPreviousPage"] and back["pageInfo"]["hasNextPage"]

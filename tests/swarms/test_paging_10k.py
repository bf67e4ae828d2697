"""Keyset paging at scale: 10,000 swarms walked 100 at a time, forward and back, under two
orders, match the database's own ordering with no row repeated or skipped, at a fixed number of
queries per page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership
from sverm.api.ids import new_id
from swarms.models import RetentionTier, Swarm

pytestmark = pytest.mark.django_db

N = 10_000
LIMIT = 100
# JWT user + memberships + installed publishers + count + page (+ "is there a previous/next
# page" after a cursor).
QUERIES_FIRST_PAGE = 5
QUERIES_PER_PAGE = 6

ORDERS = {
    "default": (
        None,
        [F("created_at").desc(nulls_first=True), F("id").desc()],
    ),
    "name-then-runtime-user": (
        '[{"name": "asc"}, {"runtimeUserId": "desc_nulls_last"}]',
        [
            F("name").asc(nulls_last=True),
            F("runtime_user_id").desc(nulls_last=True),
            F("id").desc(),
        ],
    ),
}


@pytest.fixture
def ten_thousand(workspace, make_user, other_workspace):
    members = []
    for _ in range(3):
        member = make_user()
        Membership.objects.create(workspace=workspace, user=member, role="operator")
        members.append(member.pk)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    tiers = RetentionTier.values
    swarms = [
        Swarm(
            id=new_id("swm"),
            workspace=workspace,
            name=f"swarm-{(i * 7) % 41:02d}",  # 41 names: ~244 rows share each
            description="",
            runtime_user_id=None if i % 4 == 0 else members[i % 3],  # a quarter null
            retention_tier=tiers[i % 3],
            created_at=base + timedelta(seconds=(i * 7919) % 3000),  # ~3 rows per instant
        )
        for i in range(N)
    ]
    Swarm.objects.bulk_create(swarms, batch_size=2000)
    # Rows the walk must not see: soft-deleted here, and living in a workspace not ours.
    Swarm.objects.bulk_create(
        [
            Swarm(id=new_id("swm"), workspace=workspace, name="swarm-00", deleted_at=base),
            Swarm(id=new_id("swm"), workspace=other_workspace, name="swarm-00"),
        ]
    )
    return workspace


def page(client, order_by, **cursor) -> dict:
    params = {"limit": str(LIMIT), **cursor}
    if order_by is not None:
        params["orderBy"] = order_by
    response = client.get("/api/swarms", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["pageInfo"]["total"] == N
    return body


def walk(client, order_by) -> tuple[list[str], list[str], list[int]]:
    """Every page forward, then every page back from the last; queries per page request."""
    counts = []

    def fetch(**cursor) -> dict:
        with CaptureQueriesContext(connection) as queries:
            body = page(client, order_by, **cursor)
        counts.append(len(queries))
        assert len(body["data"]) == LIMIT  # N is a multiple of LIMIT: every page is full
        return body

    body = fetch()
    forward = [row["id"] for row in body["data"]]
    while body["pageInfo"]["hasNextPage"]:
        body = fetch(after=body["pageInfo"]["endCursor"])
        forward += [row["id"] for row in body["data"]]
    backward = [row["id"] for row in body["data"]]
    while body["pageInfo"]["hasPreviousPage"]:
        body = fetch(before=body["pageInfo"]["startCursor"])
        backward = [row["id"] for row in body["data"]] + backward
    return forward, backward, counts


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_ten_thousand_rows_walk_both_ways_without_gaps_or_repeats(api_client, ten_thousand, order):
    order_by, expressions = ORDERS[order]
    expected = list(
        Swarm.objects.filter(workspace=ten_thousand, deleted_at__isnull=True)
        .order_by(*expressions)
        .values_list("id", flat=True)
    )
    assert len(expected) == len(set(expected)) == N

    forward, backward, counts = walk(api_client, order_by)

    assert len(forward) == len(set(forward)), "a row repeated walking forward"
    assert forward == expected
    assert len(backward) == len(set(backward)), "a row repeated walking backward"
    assert backward == expected
    # 100 pages forward, then 99 more walking back from the last one.
    assert len(counts) == 2 * (N // LIMIT) - 1
    assert counts[0] == QUERIES_FIRST_PAGE
    assert set(counts[1:]) == {QUERIES_PER_PAGE}, "queries per page vary with the page"


def test_a_middle_page_costs_a_fixed_number_of_queries(
    api_client, ten_thousand, django_assert_max_num_queries
):
    order_by = ORDERS["name-then-runtime-user"][0]
    first = page(api_client, order_by)
    middle = first
    for _ in range(49):
        middle = page(api_client, order_by, after=middle["pageInfo"]["endCursor"])
    with django_assert_max_num_queries(QUERIES_PER_PAGE):
        body = page(api_client, order_by, after=middle["pageInfo"]["endCursor"])
    assert len(body["data"]) == LIMIT
    with django_assert_max_num_queries(QUERIES_PER_PAGE):
        back = page(api_client, order_by, before=body["pageInfo"]["startCursor"])
    assert [row["id"] for row in back["data"]] == [row["id"] for row in middle["data"]]

"""Keyset pagination: every row exactly once in both directions, and bad parameters are 400."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Workspace
from accounts.services import workspace_create
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def seven(user):
    return [workspace_create(name=f"W{i}", owner=user).pk for i in range(7)]


def walk(client, limit, direction="after"):
    """Follow cursors from the first page (or, backwards, from the last page) to the end."""
    ids, pages = [], 0
    url = f"/api/workspaces?limit={limit}"
    body = client.get(url).json()
    if direction == "before":
        while body["pageInfo"]["hasNextPage"]:
            body = client.get(f"{url}&after={body['pageInfo']['endCursor']}").json()
    while True:
        pages += 1
        page = [w["id"] for w in body["data"]]
        ids = ids + page if direction == "after" else page + ids
        info = body["pageInfo"]
        more = info["hasNextPage"] if direction == "after" else info["hasPreviousPage"]
        if not more:
            return ids, pages
        cursor = info["endCursor"] if direction == "after" else info["startCursor"]
        body = client.get(f"{url}&{direction}={cursor}").json()


def test_newest_first_and_page_info(api_client, seven):
    body = api_client.get("/api/workspaces?limit=3").json()
    assert [w["id"] for w in body["data"]] == seven[::-1][:3]
    info = body["pageInfo"]
    assert info["total"] == 7 and info["hasNextPage"] and not info["hasPreviousPage"]
    second = api_client.get(f"/api/workspaces?limit=3&after={info['endCursor']}").json()
    assert [w["id"] for w in second["data"]] == seven[::-1][3:6]
    assert second["pageInfo"]["hasPreviousPage"] and second["pageInfo"]["hasNextPage"]
    back = api_client.get(
        f"/api/workspaces?limit=3&before={second['pageInfo']['startCursor']}"
    ).json()
    assert [w["id"] for w in back["data"]] == seven[::-1][:3]
    assert not back["pageInfo"]["hasPreviousPage"] and back["pageInfo"]["hasNextPage"]


def test_empty_page_has_null_cursors(client_for, make_user):
    body = client_for(make_user()).get("/api/workspaces").json()
    assert body == {
        "data": [],
        "pageInfo": {
            "total": 0,
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(min_value=1, max_value=8))
def test_walking_either_way_yields_every_row_once_in_order(api_client, seven, limit):
    expected = list(Workspace.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    forward, pages = walk(api_client, limit, "after")
    assert forward == expected
    assert pages == -(-len(expected) // limit)
    backward, _ = walk(api_client, limit, "before")
    assert backward == expected


def test_rows_created_between_pages_are_not_repeated(api_client, user, seven):
    first = api_client.get("/api/workspaces?limit=4").json()
    workspace_create(name="late", owner=user)  # newer: sorts before the cursor
    rest = api_client.get(f"/api/workspaces?limit=4&after={first['pageInfo']['endCursor']}").json()
    seen = [w["id"] for w in first["data"] + rest["data"]]
    assert seen == seven[::-1]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("after=not-a-cursor", "after"),
        ("before=%%%", "before"),
        ("after=a&before=b", "either"),
    ],
)
def test_bad_paging_parameters_are_400(api_client, seven, query, needle):
    body = assert_problem(api_client.get(f"/api/workspaces?{query}"), 400, "invalid_request")
    assert needle in body["detail"]


def test_list_costs_a_fixed_number_of_queries(api_client, seven, django_assert_max_num_queries):
    # auth user + memberships + count + page; no per-row queries.
    with django_assert_max_num_queries(4):
        assert len(api_client.get("/api/workspaces").json()["data"]) == 7


def test_tampered_cursor_is_400(api_client, seven):
    cursor = api_client.get("/api/workspaces?limit=2").json()["pageInfo"]["endCursor"]
    forged = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    body = assert_problem(api_client.get(f"/api/workspaces?after={forged}"), 400, "invalid_request")
    assert "not valid" in body["detail"]


def test_cursor_replayed_under_another_order_is_400(api_client, seven):
    cursor = api_client.get("/api/workspaces?limit=2").json()["pageInfo"]["endCursor"]
    response = api_client.get(f'/api/workspaces?after={cursor}&orderBy=[{{"name":"asc"}}]')
    body = assert_problem(response, 400, "invalid_request")
    assert "another orderBy" in body["detail"]

"""`GET /api/usage`: the ledger grouped by day, model, swarm or template over a UTC date range,
for dashboards; validation, tenancy, roles, and a fixed number of queries."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import Role
from accounts.services import workspace_create
from billing.periods import current_month, month_after
from tests.billing.conftest import record, utc
from tests.conftest import assert_problem, jwt_client
from tests.runs.conftest import decimal_json, is_json_number

pytestmark = pytest.mark.django_db

ROW_KEYS = {"key", "costUsd", "tokensIn", "tokensOut", "calls"}
TOTAL_KEYS = {"runs", "costUsd", "tokensIn", "tokensOut", "calls"}
JANUARY = {"from": "2026-01-01", "to": "2026-02-01"}


def usage(client, **params) -> dict:
    response = client.get("/api/usage", params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = decimal_json(response)
    assert set(body) == {"data", "totals"}
    assert set(body["totals"]) == TOTAL_KEYS
    for row in body["data"]:
        has_runs = params.get("group_by") in ("swarm", "template")
        assert set(row) == ROW_KEYS | ({"runs"} if has_runs else set()), row
        assert is_json_number(row["costUsd"])
    return body


@pytest.fixture
def january(workspace):
    """Calls across January 2026 (and just outside it), two runs of a swarm, one of a template."""
    swarm = {"swarm_id": "swm_team", "swarm_type": "custom"}
    record(workspace, "0.10", at=utc(2026, 1, 1, 0, 0), run_id="run_a", tokens=(10, 1), **swarm)
    record(workspace, "0.20", at=utc(2026, 1, 1, 23, 59, 59), run_id="run_a", tokens=(20, 2),
           model="deepseek-chat", **swarm)  # fmt: skip
    record(workspace, "0.40", at=utc(2026, 1, 2, 0, 0), run_id="run_b", tokens=(40, 4), **swarm)
    record(workspace, "0.80", at=utc(2026, 1, 31, 23, 59, 59), run_id="run_c", tokens=(80, 8),
           model="deepseek-chat")  # fmt: skip
    record(workspace, "1.60", at=utc(2026, 2, 1, 0, 0), run_id="run_d", tokens=(160, 16))
    record(workspace, "3.20", at=utc(2025, 12, 31, 23, 59, 59), run_id="run_e", tokens=(320, 32))


def test_group_by_day_in_utc_days_oldest_first(api_client, january):
    body = usage(api_client, **JANUARY)
    assert [(row["key"], row["costUsd"], row["calls"]) for row in body["data"]] == [
        ("2026-01-01", Decimal("0.3"), 2),
        ("2026-01-02", Decimal("0.4"), 1),
        ("2026-01-31", Decimal("0.8"), 1),
    ]
    assert body["data"][0]["tokensIn"] == 30 and body["data"][0]["tokensOut"] == 3
    assert body["totals"] == {
        "runs": 3, "costUsd": Decimal("1.5"), "tokensIn": 150, "tokensOut": 15, "calls": 4
    }  # fmt: skip
    assert usage(api_client, group_by="day", **JANUARY) == body  # day is the default


def test_group_by_model_costliest_first(api_client, january):
    body = usage(api_client, group_by="model", **JANUARY)
    assert [(row["key"], row["costUsd"], row["calls"]) for row in body["data"]] == [
        ("deepseek-chat", Decimal("1.0"), 2),
        ("gpt-4o-mini", Decimal("0.5"), 2),
    ]
    assert body["totals"]["costUsd"] == Decimal("1.5")


def test_group_by_swarm_with_runs_and_null_for_runs_of_no_swarm(api_client, january):
    body = usage(api_client, group_by="swarm", **JANUARY)
    assert [(row["key"], row["runs"], row["costUsd"]) for row in body["data"]] == [
        (None, 1, Decimal("0.8")),
        ("swm_team", 2, Decimal("0.7")),
    ]
    assert sum(row["runs"] for row in body["data"]) == body["totals"]["runs"] == 3


def test_group_by_template(api_client, january):
    body = usage(api_client, group_by="template", **JANUARY)
    assert [(row["key"], row["runs"], row["calls"]) for row in body["data"]] == [
        ("research-swarm-v1", 1, 1),
        ("custom", 2, 3),
    ]


def test_from_is_inclusive_and_to_exclusive(api_client, january):
    body = usage(api_client, **{"from": "2026-01-02", "to": "2026-01-31"})
    assert [row["key"] for row in body["data"]] == ["2026-01-02"]
    body = usage(api_client, **{"from": "2026-01-31", "to": "2026-02-02"})
    assert [row["key"] for row in body["data"]] == ["2026-01-31", "2026-02-01"]


def test_the_current_utc_month_by_default(api_client, workspace):
    month = current_month()
    record(workspace, "0.25")
    record(workspace, "7", at=utc(month.year, month.month, 1) - timedelta(microseconds=1))
    following = month_after(month)
    record(workspace, "9", at=utc(following.year, following.month, 1))
    body = usage(api_client)
    assert body["totals"]["costUsd"] == Decimal("0.25")
    assert body["totals"]["calls"] == 1


def test_rows_add_up_to_the_total_after_rounding_down(api_client, workspace):
    # One run's calls over three days: the run shows 0.000002 (0.0000021 rounded down), split
    # over its days so that they add up to it.
    for day in (1, 2, 3):
        record(workspace, "0.0000007", at=utc(2026, 1, day, 12), run_id="run_split")
    body = usage(api_client, **JANUARY)
    assert body["totals"]["costUsd"] == Decimal("0.000002")
    assert sum(row["costUsd"] for row in body["data"]) == body["totals"]["costUsd"]
    assert sorted(row["costUsd"] for row in body["data"]) == [0, Decimal("0.000001"),
                                                               Decimal("0.000001")]  # fmt: skip


def test_the_total_is_the_sum_of_the_runs_shown_costs(api_client, workspace):
    # Three runs of 0.0000007 each show 0.000000: so does their total, whatever the grouping.
    for day in (1, 2, 3):
        record(workspace, "0.0000007", at=utc(2026, 1, day, 12))
    for group_by in ("day", "template"):
        body = usage(api_client, group_by=group_by, **JANUARY)
        assert body["totals"]["costUsd"] == 0
        assert [row["costUsd"] for row in body["data"]] == [0] * len(body["data"])


def test_a_range_of_366_days_is_allowed(api_client, january):
    body = usage(api_client, **{"from": "2025-06-01", "to": "2026-06-02"})
    assert body["totals"]["calls"] == 6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-01-05", "to": "2026-01-05"}, "to"),
        ({"from": "2026-01-05", "to": "2026-01-01"}, "to"),
        ({"from": "2025-06-01", "to": "2026-06-03"}, "to"),
        ({"from": "2026-01-32"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-01T00:00:00Z"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": ""}, "from"),
        ({"group_by": "week"}, "group_by"),
        ({"group_by": ""}, "group_by"),
    ],
)
def test_bad_ranges_and_groupings_are_400s_naming_the_parameter(api_client, params, field):
    body = assert_problem(api_client.get("/api/usage", params), 400, "invalid_request")
    assert [error["field"] for error in body["errors"]] == [field]
    assert f"{field}:" in body["detail"]


def test_the_default_to_is_checked_against_an_early_from(api_client):
    body = assert_problem(api_client.get("/api/usage", {"from": "2020-01-01"}), 400,
                          "invalid_request")  # fmt: skip
    assert "366 days" in body["detail"]


# ---------------------------------------------------------------------------------------------
# Tenancy and roles
# ---------------------------------------------------------------------------------------------
def test_a_foreign_workspace_id_is_404(api_client, other_workspace):
    record(other_workspace, "5")
    response = api_client.get("/api/usage", {"workspace_id": other_workspace.pk})
    assert_problem(response, 404, "not_found")
    assert_problem(api_client.get("/api/usage", {"workspace_id": "wsp_nope"}), 404, "not_found")


def test_without_workspace_id_only_the_callers_workspaces_count(
    api_client, user, workspace, other_workspace
):
    second = workspace_create(name="Second", owner=user)
    record(workspace, "1")
    record(second, "2")
    record(other_workspace, "4")
    assert usage(api_client)["totals"]["costUsd"] == Decimal("3")
    narrowed = usage(api_client, workspace_id=second.pk)
    assert (narrowed["totals"]["costUsd"], narrowed["totals"]["calls"]) == (Decimal("2"), 1)


def test_a_viewer_may_read_and_staff_see_every_workspace(
    member_of, make_user, workspace, other_workspace
):
    record(workspace, "1")
    record(other_workspace, "4")
    viewer = jwt_client(member_of(workspace, Role.VIEWER))
    assert usage(viewer, workspace_id=workspace.pk)["totals"]["costUsd"] == Decimal("1")
    staff = jwt_client(make_user(is_staff=True))
    assert usage(staff)["totals"]["costUsd"] == Decimal("5")


def test_an_api_key_reads_its_own_workspace(key_client, workspace, other_workspace):
    record(workspace, "1")
    record(other_workspace, "4")
    client, _, _ = key_client(workspace, Role.VIEWER)
    assert usage(client)["totals"]["costUsd"] == Decimal("1")
    response = client.get("/api/usage", {"workspace_id": other_workspace.pk})
    assert_problem(response, 404, "not_found")


def test_anonymous_is_401(anon_client):
    assert_problem(anon_client.get("/api/usage"), 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------
def count_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        usage(client, **params)
    return len(queries)


@pytest.mark.parametrize("group_by", ["day", "model", "swarm", "template"])
def test_the_same_queries_for_one_ledger_row_and_fifty(
    api_client, workspace, group_by, django_assert_max_num_queries
):
    params = {"group_by": group_by, **JANUARY}
    record(workspace, "0.01", at=utc(2026, 1, 1))
    one = count_queries(api_client, **params)
    for number in range(49):
        record(workspace, "0.01", at=utc(2026, 1, 1 + number % 28, number % 24),
               model=f"model-{number % 5}", swarm_id=f"swm_{number % 3}",
               swarm_type=f"type-{number % 4}", run_id=f"run_{number % 6}")  # fmt: skip
    assert count_queries(api_client, **params) == one
    # the user, their memberships, the groups, the totals
    with django_assert_max_num_queries(4):
        body = usage(api_client, workspace_id=workspace.pk, **params)
    assert body["totals"]["calls"] == 50
    assert body["totals"]["costUsd"] == Decimal("0.5")

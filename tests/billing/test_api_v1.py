"""`GET /v1/usage` (seed 002): the exact shape, figures read from the rollup, `?month=` and UTC
month boundaries, validation, the workspace a call acts in, and a fixed number of queries."""

from datetime import timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone as django_timezone

from accounts.roles import Role
from billing.periods import current_month, month_after
from tests.billing.conftest import record, started, utc
from tests.conftest import assert_v1_error, jwt_client
from tests.runs.conftest import decimal_json, is_json_number

pytestmark = pytest.mark.django_db

SEED_KEYS = {"current_month", "month"}
MONTH_KEYS = {"total_usd", "total_swarms", "total_tokens", "by_swarm_type"}
TYPE_KEYS = {"count", "total_usd"}


@pytest.fixture
def viewer(key_client, workspace):
    client, _, _ = key_client(workspace, Role.VIEWER)
    return client


def usage(client, **params) -> dict:
    response = client.get("/v1/usage", params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = decimal_json(response)
    assert set(body) == SEED_KEYS
    assert set(body["current_month"]) == MONTH_KEYS
    for figures in body["current_month"]["by_swarm_type"].values():
        assert set(figures) == TYPE_KEYS
    return body


def test_the_seed_shape_exactly_with_the_rollups_figures(viewer, workspace):
    now = django_timezone.now()
    started(workspace, "research-swarm-v1", now, count=2)
    started(workspace, "code-review-swarm-v1", now, count=3)
    record(workspace, "1.25", swarm_type="research-swarm-v1", tokens=(1000, 500))
    record(workspace, "0.50", swarm_type="research-swarm-v1", tokens=(200, 100))
    record(workspace, "2.10", swarm_type="code-review-swarm-v1", tokens=(3000, 1))

    body = usage(viewer)
    month = body["current_month"]
    assert body["month"] == f"{current_month():%Y-%m}"
    assert month["total_usd"] == Decimal("3.85")
    assert month["total_swarms"] == 5
    assert month["total_tokens"] == 1000 + 500 + 200 + 100 + 3000 + 1
    assert month["by_swarm_type"] == {
        "code-review-swarm-v1": {"count": 3, "total_usd": Decimal("2.1")},
        "research-swarm-v1": {"count": 2, "total_usd": Decimal("1.75")},
    }
    # busiest type first, as the seed lists them
    assert list(month["by_swarm_type"]) == ["code-review-swarm-v1", "research-swarm-v1"]
    for value in (month["total_usd"], month["by_swarm_type"]["research-swarm-v1"]["total_usd"]):
        assert is_json_number(value)
    assert isinstance(month["total_swarms"], int) and isinstance(month["total_tokens"], int)


def test_a_workspace_without_usage_answers_zeros(viewer):
    body = usage(viewer)
    assert body["current_month"] == {
        "total_usd": 0, "total_swarms": 0, "total_tokens": 0, "by_swarm_type": {}
    }  # fmt: skip


def test_a_run_started_without_calls_counts_with_no_cost(viewer, workspace):
    started(workspace, "custom", django_timezone.now())
    month = usage(viewer)["current_month"]
    assert month["by_swarm_type"] == {"custom": {"count": 1, "total_usd": 0}}
    assert (month["total_swarms"], month["total_usd"], month["total_tokens"]) == (1, 0, 0)


def test_money_is_rounded_down_and_the_types_add_up_to_the_total(viewer, workspace):
    # Two runs of 0.0000019 each show 0.000001: their types too, and the month the sum of
    # its types (not 0.0000038 rounded down, which no client adding up the runs would find).
    record(workspace, "0.0000019", swarm_type="a-swarm")
    record(workspace, "0.0000019", swarm_type="b-swarm")
    month = usage(viewer)["current_month"]
    assert month["total_usd"] == Decimal("0.000002")
    shown = [figures["total_usd"] for figures in month["by_swarm_type"].values()]
    assert shown == [Decimal("0.000001"), Decimal("0.000001")]
    assert sum(shown) == month["total_usd"]


# ---------------------------------------------------------------------------------------------
# ?month= and UTC boundaries
# ---------------------------------------------------------------------------------------------
def test_month_selects_a_past_month_and_keeps_the_seed_key(viewer, workspace):
    this_month = current_month()
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    started(workspace, "research-swarm-v1", utc(last_month.year, last_month.month, 3))
    record(workspace, "0.40", at=utc(last_month.year, last_month.month, 3, 12))
    record(workspace, "9.00")  # now: this month

    past = usage(viewer, month=f"{last_month:%Y-%m}")
    assert past["month"] == f"{last_month:%Y-%m}"
    assert past["current_month"]["total_usd"] == Decimal("0.4")
    assert past["current_month"]["total_swarms"] == 1
    assert usage(viewer)["current_month"]["total_usd"] == Decimal("9")
    assert usage(viewer)["current_month"]["total_swarms"] == 0
    upcoming = usage(viewer, month=f"{month_after(this_month):%Y-%m}")
    assert upcoming["current_month"]["total_usd"] == 0


def test_months_end_at_midnight_utc(viewer, workspace):
    record(workspace, "1", at=utc(2026, 1, 31, 23, 59, 59))
    record(workspace, "2", at=utc(2026, 1, 31, 23, 59, 59, 999999))
    record(workspace, "4", at=utc(2026, 2, 1, 0, 0, 0))
    # 00:30 on Feb 1st in UTC+1 is still January 31st in UTC
    plus_one = timezone(timedelta(hours=1))
    record(workspace, "8", at=utc(2026, 2, 1, 0, 30).replace(tzinfo=plus_one))
    started(workspace, "research-swarm-v1", utc(2026, 1, 31, 23, 59, 59))
    started(workspace, "research-swarm-v1", utc(2026, 2, 1))

    january = usage(viewer, month="2026-01")["current_month"]
    february = usage(viewer, month="2026-02")["current_month"]
    assert (january["total_usd"], january["total_swarms"]) == (Decimal("11"), 1)
    assert (february["total_usd"], february["total_swarms"]) == (Decimal("4"), 1)
    assert usage(viewer, month="2026-03")["current_month"]["total_usd"] == 0


@pytest.mark.parametrize(
    "month",
    ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "2026-01-01", "abc", "", "1969-12"],
)
def test_an_invalid_month_is_a_400_naming_it(viewer, month):
    error = assert_v1_error(viewer.get("/v1/usage", {"month": month}), 400, "invalid_request")
    assert "month" in error["message"]
    assert "month" in error["details"]["fields"]


# ---------------------------------------------------------------------------------------------
# The workspace a call acts in
# ---------------------------------------------------------------------------------------------
def test_a_key_sees_only_its_own_workspace(key_client, workspace, other_workspace):
    record(workspace, "1")
    record(other_workspace, "5")
    started(other_workspace, "research-swarm-v1", django_timezone.now())
    mine, _, _ = key_client(workspace, Role.VIEWER)
    assert usage(mine)["current_month"]["total_usd"] == Decimal("1")
    assert usage(mine)["current_month"]["total_swarms"] == 0
    response = mine.get("/v1/usage", HTTP_SVERM_WORKSPACE=other_workspace.pk)
    assert_v1_error(response, 404, "not_found")


def test_a_jwt_picks_the_workspace_with_the_header(api_client, workspace, other_workspace):
    record(workspace, "1")
    record(other_workspace, "5")
    assert usage(api_client)["current_month"]["total_usd"] == Decimal("1")
    response = api_client.get("/v1/usage", HTTP_SVERM_WORKSPACE=other_workspace.pk)
    assert_v1_error(response, 404, "not_found")


def test_a_viewer_member_reads_usage_with_the_header(member_of, other_workspace, workspace):
    record(other_workspace, "5")
    client = jwt_client(member_of(other_workspace, Role.VIEWER))
    body = decimal_json(client.get("/v1/usage", HTTP_SVERM_WORKSPACE=other_workspace.pk))
    assert body["current_month"]["total_usd"] == Decimal("5")


def test_anonymous_is_401(anon_client):
    assert_v1_error(anon_client.get("/v1/usage"), 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------
def count_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        usage(client, **params)
    return len(queries)


def test_the_same_queries_for_one_ledger_row_and_fifty(
    viewer, workspace, django_assert_max_num_queries
):
    record(workspace, "0.01")
    usage(viewer)  # the key's first use also records last_used_at
    one = count_queries(viewer)
    for number in range(49):
        record(workspace, "0.01", swarm_type=f"type-{number % 7}")
    started(workspace, "type-1", django_timezone.now(), count=5)
    assert count_queries(viewer) == one
    # the key, the rollup rows
    with django_assert_max_num_queries(2):
        body = usage(viewer)
    assert body["current_month"]["total_usd"] == Decimal("0.5")
    assert len(body["current_month"]["by_swarm_type"]) == 8

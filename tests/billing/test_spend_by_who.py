"""Spend by who: a run records the API key that started it (and its creator), the ledger copies
both onto every call, and `GET /api/usage?group_by=api_key|user` shows each one's spend, named
for a human, with rows that add up to the totals; as CSV too, the same rows and columns."""

import csv
import io
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from accounts.services import api_key_create
from batches.services import batch_advance
from billing.models import MonthlyUsage, UsageRecord
from swarms.models import Run
from tests.batches.factories import make_batch
from tests.billing.conftest import record
from tests.billing.spending import spend
from tests.conftest import assert_problem, jwt_client
from tests.factories import make_swarm
from tests.runs.conftest import decimal_json

pytestmark = pytest.mark.usefixtures("not_executing")

TASK = {"task": "Compare heat pumps and district heating in Oslo"}
COSTS = {  # each run's calls; its shown cost; sub-micro-dollar parts that round differently
    "a": (("0.0000019", "0.0010004"), Decimal("0.001002")),
    "b": (("0.0123456789",), Decimal("0.012345")),
    "c": (("0.0000009",), Decimal("0")),
}


def client_with(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def spenders(workspace, user, member_of):
    """Three runs of `workspace`, started three ways: by key A (owner's) through `/v1/swarms`,
    by key B (an operator's) through `/api/swarms/{id}/runs`, and by an analyst signed in with
    a JWT through `/v1/swarms`; each then spends COSTS."""
    ops = member_of(workspace, Role.OPERATOR)
    analyst = member_of(workspace, Role.OPERATOR)
    key_a, raw_a = api_key_create(workspace=workspace, name="CI deploys", role=Role.OPERATOR,
                                  created_by=user)  # fmt: skip
    key_b, raw_b = api_key_create(workspace=workspace, name="Nightly", role=Role.OPERATOR,
                                  created_by=ops)  # fmt: skip
    swarm = make_swarm(workspace, user)

    def started(response) -> str:
        assert response.status_code == 201, response.content
        body = response.json()
        return body.get("swarm_id") or body["id"]

    runs = {}
    runs["a"] = started(client_with(raw_a).post(
        "/v1/swarms", {"template": "research-swarm-v1", **TASK}, format="json"))  # fmt: skip
    spend(runs["a"], *COSTS["a"][0])
    runs["b"] = started(client_with(raw_b).post(
        f"/api/swarms/{swarm.pk}/runs", TASK, format="json"))  # fmt: skip
    spend(runs["b"], *COSTS["b"][0])
    runs["c"] = started(jwt_client(analyst).post(
        "/v1/swarms", {"template": "research-swarm-v1", **TASK}, format="json"))  # fmt: skip
    spend(runs["c"], *COSTS["c"][0])
    return {"runs": runs, "key_a": key_a, "key_b": key_b, "owner": user, "ops": ops,
            "analyst": analyst}  # fmt: skip


def usage(client, **params) -> dict:
    response = client.get("/api/usage", params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return decimal_json(response)


def adds_up(body: dict) -> None:
    data, totals = body["data"], body["totals"]
    assert sum(row["costUsd"] for row in data) == totals["costUsd"]
    for name in ("runs", "tokensIn", "tokensOut", "calls"):
        assert sum(row[name] for row in data) == totals[name], name


# ---------------------------------------------------------------------------------------------
# Runs and the ledger record who started them
# ---------------------------------------------------------------------------------------------
def test_a_run_records_its_key_and_creator_and_the_ledger_copies_them(spenders):
    runs = spenders["runs"]
    expected = {
        "a": (spenders["owner"].pk, spenders["key_a"].pk),  # a key acts as its creator
        "b": (spenders["ops"].pk, spenders["key_b"].pk),
        "c": (spenders["analyst"].pk, None),  # signed in: no key
    }
    for name, (user_id, key_id) in expected.items():
        run = Run.objects.get(pk=runs[name])
        assert (run.created_by_id, run.api_key_id) == (user_id, key_id), name
        calls = UsageRecord.objects.filter(run_id=run.pk)
        assert calls.count() == len(COSTS[name][0])
        assert set(calls.values_list("user_id", "api_key_id")) == {(user_id, key_id or "")}


# ---------------------------------------------------------------------------------------------
# /api/usage grouped by key and by user
# ---------------------------------------------------------------------------------------------
def test_grouped_by_api_key_each_key_shows_its_spend(api_client, workspace, spenders):
    body = usage(api_client, workspace_id=workspace.pk, group_by="api_key")
    key_a, key_b = spenders["key_a"], spenders["key_b"]
    rows = [(r["key"], r["name"], r["prefix"], r["runs"], r["calls"], r["costUsd"])
            for r in body["data"]]  # fmt: skip
    assert rows == [  # costliest first
        (key_b.pk, "Nightly", key_b.prefix, 1, 1, COSTS["b"][1]),
        (key_a.pk, "CI deploys", key_a.prefix, 1, 2, COSTS["a"][1]),
        (None, None, None, 1, 1, COSTS["c"][1]),  # runs no key started
    ]
    assert key_a.prefix.startswith("sk-sverm-")
    adds_up(body)
    # each run's shown cost, summed: not the exact total rounded down (0.013348)
    assert body["totals"]["costUsd"] == Decimal("0.013347")
    assert body["totals"]["runs"] == 3


def test_grouped_by_user_each_user_shows_their_spend(api_client, workspace, spenders):
    body = usage(api_client, workspace_id=workspace.pk, group_by="user")
    by_email = {row["email"]: row for row in body["data"]}
    owner, ops, analyst = spenders["owner"], spenders["ops"], spenders["analyst"]
    assert set(by_email) == {owner.email, ops.email, analyst.email}
    assert by_email[owner.email]["key"] == owner.pk
    assert by_email[owner.email]["name"] == "Owner"
    assert by_email[owner.email]["costUsd"] == COSTS["a"][1]  # key A's run: its creator's
    assert by_email[ops.email]["costUsd"] == COSTS["b"][1]
    assert by_email[analyst.email]["costUsd"] == COSTS["c"][1]
    assert all(row["runs"] == 1 and "prefix" not in row for row in body["data"])
    adds_up(body)
    by_key = usage(api_client, workspace_id=workspace.pk, group_by="api_key")
    assert body["totals"] == by_key["totals"]


def test_the_total_is_the_same_whatever_the_grouping(api_client, workspace, spenders):
    totals = [
        usage(api_client, workspace_id=workspace.pk, group_by=group_by)["totals"]["costUsd"]
        for group_by in ("day", "model", "swarm", "template", "api_key", "user")
    ]
    assert totals == [Decimal("0.013347")] * 6


def test_calls_recorded_before_the_ledger_kept_who_fall_in_the_null_rows(api_client, workspace):
    record(workspace, "0.25")  # no user, no key: as rows written before this version
    for group_by in ("api_key", "user"):
        body = usage(api_client, workspace_id=workspace.pk, group_by=group_by)
        (row,) = body["data"]
        assert row["key"] is None and row["costUsd"] == Decimal("0.25")
        assert {k: v for k, v in row.items() if k in ("name", "prefix", "email")} == (
            {"name": None, "prefix": None} if group_by == "api_key" else
            {"email": None, "name": None}
        )  # fmt: skip


def test_a_deleted_key_and_user_keep_their_rows_without_names(api_client, workspace, spenders):
    key_id, user_id = spenders["key_b"].pk, spenders["analyst"].pk
    spenders["key_b"].delete()
    spenders["analyst"].delete()
    by_key = usage(api_client, workspace_id=workspace.pk, group_by="api_key")
    row = next(row for row in by_key["data"] if row["key"] == key_id)
    assert (row["name"], row["prefix"], row["costUsd"]) == (None, None, COSTS["b"][1])
    by_user = usage(api_client, workspace_id=workspace.pk, group_by="user")
    row = next(row for row in by_user["data"] if row["key"] == user_id)
    assert (row["email"], row["name"], row["costUsd"]) == (None, None, COSTS["c"][1])
    assert by_key["totals"] == by_user["totals"]


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["apiKey", "key", "users", "API_KEY", " user"])
def test_a_bad_group_by_is_a_400_naming_it_and_changes_nothing(api_client, workspace, value):
    record(workspace, "0.5")
    ledger = list(UsageRecord.objects.values_list("pk", "cost_usd"))
    rollup = list(MonthlyUsage.objects.values_list("pk", "cost_usd", "shown_cost_usd"))
    response = api_client.get("/api/usage", {"group_by": value})
    body = assert_problem(response, 400, "invalid_request")
    assert [error["field"] for error in body["errors"]] == ["group_by"]
    assert "group_by:" in body["detail"] and "api_key" in body["detail"]
    assert list(UsageRecord.objects.values_list("pk", "cost_usd")) == ledger
    assert list(MonthlyUsage.objects.values_list("pk", "cost_usd", "shown_cost_usd")) == rollup


# ---------------------------------------------------------------------------------------------
# Who may read it (the roles matrix: usage is a viewer's)
# ---------------------------------------------------------------------------------------------
def test_a_viewer_reads_spend_by_key_and_by_user(member_of, workspace, spenders):
    viewer = jwt_client(member_of(workspace, Role.VIEWER))
    for group_by in ("api_key", "user"):
        body = usage(viewer, workspace_id=workspace.pk, group_by=group_by)
        assert body["totals"]["costUsd"] == Decimal("0.013347")
    response = viewer.get("/api/usage.csv", {"group_by": "api_key"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")


def test_a_viewer_key_reads_its_own_workspace_only(key_client, workspace, other_workspace,
                                                   spenders):  # fmt: skip
    record(other_workspace, "4", api_key_id="key_elsewhere", user_id="usr_elsewhere")
    client, _, _ = key_client(workspace, Role.VIEWER)
    body = usage(client, group_by="api_key")
    assert "key_elsewhere" not in {row["key"] for row in body["data"]}
    assert body["totals"]["costUsd"] == Decimal("0.013347")
    response = client.get("/api/usage", {"workspace_id": other_workspace.pk, "group_by": "user"})
    assert_problem(response, 404, "not_found")
    response = client.get("/api/usage.csv", {"workspace_id": other_workspace.pk})
    assert_problem(response, 404, "not_found")


def test_another_workspaces_member_and_anonymous_are_refused(
    client_for, other_user, anon_client, workspace, spenders
):
    stranger = client_for(other_user)
    response = stranger.get("/api/usage", {"workspace_id": workspace.pk, "group_by": "api_key"})
    assert_problem(response, 404, "not_found")
    body = usage(stranger, group_by="user")  # their own workspaces: nothing of this one
    assert body["data"] == [] and body["totals"]["costUsd"] == 0
    assert_problem(anon_client.get("/api/usage", {"group_by": "user"}), 401, "unauthorized")
    response = anon_client.get("/api/usage", {"group_by": "user", "format": "csv"})
    assert_problem(response, 401, "unauthorized")
    assert_problem(anon_client.get("/api/usage.csv"), 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------
def csv_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.content.decode("utf-8"))))


def typed(column: str, cell: str):
    """A CSV cell read back as the JSON value it stands for."""
    if cell == "":
        return None
    if column == "costUsd":
        return Decimal(cell)
    if column in ("runs", "tokensIn", "tokensOut", "calls"):
        return int(cell)
    return cell


def assert_csv_is_the_json(lines: list[list[str]], body: dict) -> None:
    header, *rows = lines
    assert header[0] == "row"
    columns = header[1:]
    assert [row[0] for row in rows] == ["group"] * len(body["data"]) + ["total"]
    for line, group in zip(rows, body["data"], strict=False):
        assert set(columns) == set(group) | {"runs"}  # by day or model, rows have no runs
        values = {c: typed(c, cell) for c, cell in zip(columns, line[1:], strict=True)}
        if "runs" not in group:
            assert values.pop("runs") is None
        assert values == group
    totals = {c: typed(c, cell) for c, cell in zip(columns, rows[-1][1:], strict=True)}
    assert {c: v for c, v in totals.items() if v is not None} == body["totals"]
    for line in rows:  # money in fixed point with 6 decimals, never a float's text
        cost = line[1 + columns.index("costUsd")]
        assert len(cost.split(".")[1]) == 6 and "e" not in cost.lower(), cost


@pytest.mark.parametrize("group_by", ["api_key", "user", "day", "model", "swarm", "template"])
def test_csv_has_the_same_rows_and_columns_as_the_json(api_client, workspace, spenders,
                                                       group_by):  # fmt: skip
    params = {"workspace_id": workspace.pk, "group_by": group_by}
    body = usage(api_client, **params)
    response = api_client.get("/api/usage", {**params, "format": "csv"})
    assert_csv_is_the_json(csv_of(response), body)
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="usage_')
    assert f"usage_{workspace.pk}_" in disposition and f"_by-{group_by}.csv" in disposition
    # /api/usage.csv, and Accept: text/csv on /api/usage, give the same bytes as ?format=csv
    for same in (api_client.get("/api/usage.csv", params),
                 api_client.get("/api/usage", params, HTTP_ACCEPT="text/csv")):  # fmt: skip
        assert csv_of(same) and same.content == response.content
        assert same["Content-Disposition"] == disposition


def test_csv_by_key_reads_as_a_human_would(api_client, workspace, spenders):
    response = api_client.get(
        "/api/usage", {"workspace_id": workspace.pk, "group_by": "api_key"}, HTTP_ACCEPT="text/csv"
    )
    header, *rows = csv_of(response)
    assert header == ["row", "key", "name", "prefix", "runs", "costUsd", "tokensIn",
                      "tokensOut", "calls"]  # fmt: skip
    assert rows[0][:6] == ["group", spenders["key_b"].pk, "Nightly", spenders["key_b"].prefix,
                           "1", "0.012345"]  # fmt: skip
    assert rows[-1][:6] == ["total", "", "", "", "3", "0.013347"]


def test_csv_quotes_names_a_spreadsheet_would_run(api_client, workspace, user):
    key, _raw = api_key_create(workspace=workspace, name="=HYPERLINK(\"http://x\")",
                               role=Role.OPERATOR, created_by=user)  # fmt: skip
    record(workspace, "0.1", api_key_id=key.pk)
    response = api_client.get("/api/usage", {"group_by": "api_key", "format": "csv"})
    _header, group, _total = csv_of(response)
    assert group[2] == '\'=HYPERLINK("http://x")'


def test_json_stays_the_default_and_a_bad_format_is_a_400_naming_it(api_client, workspace):
    record(workspace, "0.1")
    assert usage(api_client, format="json")["totals"]["calls"] == 1
    body = assert_problem(api_client.get("/api/usage", {"format": "xlsx"}), 400,
                          "invalid_request")  # fmt: skip
    assert [error["field"] for error in body["errors"]] == ["format"]
    assert "`csv`" in body["detail"] and "`json`" in body["detail"]
    response = api_client.get("/api/usage", HTTP_ACCEPT="application/xml")
    assert_problem(response, 406, "not_acceptable")


def test_a_bad_query_asking_for_csv_is_still_a_problem_document(api_client):
    for response in (api_client.get("/api/usage", {"group_by": "week", "format": "csv"}),
                     api_client.get("/api/usage.csv", {"group_by": "week"})):  # fmt: skip
        body = assert_problem(response, 400, "invalid_request")
        assert [error["field"] for error in body["errors"]] == ["group_by"]


def test_the_csv_operation_answers_csv_whatever_accept_says(api_client, workspace):
    record(workspace, "0.1")
    response = api_client.get("/api/usage.csv", HTTP_ACCEPT="application/json")
    header, group, total = csv_of(response)
    assert header[:2] == ["row", "key"] and group[0] == "group" and total[0] == "total"
    assert response["Content-Disposition"].startswith('attachment; filename="usage_all_')


def test_a_batchs_runs_carry_its_creator_and_no_key(api_client, workspace, user):
    """Batches (and schedules) keep no API key: their runs are their creator's, keyless."""
    batch = make_batch(make_swarm(workspace, user), tasks=2, user=user)
    batch_advance(batch_id=batch.pk)
    runs = list(Run.objects.filter(workspace=workspace))
    assert len(runs) == 2
    assert {(run.created_by_id, run.api_key_id) for run in runs} == {(user.pk, None)}
    spend(runs[0].pk, "0.0200009")
    (row,) = usage(api_client, workspace_id=workspace.pk, group_by="api_key")["data"]
    assert (row["key"], row["costUsd"]) == (None, Decimal("0.020000"))
    (row,) = usage(api_client, workspace_id=workspace.pk, group_by="user")["data"]
    assert (row["key"], row["email"], row["costUsd"]) == (user.pk, user.email, Decimal("0.02"))

"""`/api` runs (camelCase): starting a swarm's run, integrations, the run list with its filters,
one run, its result, and its events paged by sequence number."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from accounts.roles import Role
from accounts.services import integration_install
from billing.models import MonthlyUsage
from swarms import services
from swarms.models import Run, RunStatus
from tests.conftest import assert_problem
from tests.factories import add_events, create_run, make_swarm
from tests.runs.conftest import (
    decimal_json,
    is_json_number,
    seqs,
)

pytestmark = pytest.mark.usefixtures("not_executing")

RUN_KEYS = {
    "id", "workspaceId", "swarmId", "versionId", "templateId", "task", "status", "progress",
    "maxBudgetUsd", "estimatedCostUsd", "currentCostUsd", "agentsActive", "agentsTotal",
    "simulated", "output", "errorCode", "errorMessage", "webhookUrl", "createdBy", "createdAt",
    "startedAt", "completedAt", "pauseOnBudget", "budgetNeededUsd", "pauseDeadlineAt",
}  # fmt: skip
RESULT_KEYS = {
    "runId", "status", "output", "costReport", "agentLogs", "errorCode", "errorMessage",
    "simulated", "elapsedSeconds", "createdAt", "completedAt",
}  # fmt: skip
EVENT_KEYS = {"seq", "type", "runId", "agentId", "data", "createdAt"}
PAGE_INFO_KEYS = {"total", "hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}
TASK = "Compare heat pumps and district heating"


@pytest.fixture
def swarm(workspace, user):
    return make_swarm(workspace, user, name="Alpha", models=["gpt-4o-mini", "deepseek-chat"])


def start(client, swarm, **body):
    return client.post(f"/api/swarms/{swarm.pk}/runs", {"task": TASK, **body}, format="json")


def listed(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data", "pageInfo"}
    assert set(body["pageInfo"]) == PAGE_INFO_KEYS
    for item in body["data"]:
        assert set(item) == RUN_KEYS
    return [item["id"] for item in body["data"]]


def runs_url(**params) -> str:
    return "/api/runs?" + urlencode(params, doseq=True)


# ---------------------------------------------------------------------------------------------
# POST /api/swarms/{id}/runs
# ---------------------------------------------------------------------------------------------
def test_starting_a_run_answers_the_run(api_client, swarm, workspace, user):
    response = start(api_client, swarm, maxBudgetUsd="2.5",
                     webhookUrl="https://example.com/hook")  # fmt: skip
    assert response.status_code == 201, response.content
    body = decimal_json(response)
    assert set(body) == RUN_KEYS
    run = Run.objects.get(pk=body["id"])
    assert body["id"].startswith("run_")
    assert body["workspaceId"] == workspace.pk == run.workspace_id
    assert body["swarmId"] == swarm.pk
    assert body["versionId"] == swarm.default_version_id == run.version_id
    assert body["templateId"] == ""
    assert (body["task"], body["status"], body["progress"]) == (TASK, "queued", 0)
    for key in ("maxBudgetUsd", "estimatedCostUsd", "currentCostUsd"):
        assert is_json_number(body[key]), key
    assert body["maxBudgetUsd"] == Decimal("2.5")
    assert 0 < body["estimatedCostUsd"] <= body["maxBudgetUsd"]
    assert body["currentCostUsd"] == 0
    assert (body["agentsActive"], body["agentsTotal"]) == (0, 4)  # manager, 2 researchers, writer
    assert body["simulated"] is True
    assert (body["output"], body["errorCode"], body["errorMessage"]) == ("", "", "")
    assert body["webhookUrl"] == "https://example.com/hook"
    assert body["createdBy"] == user.pk
    assert datetime.fromisoformat(body["createdAt"]) == run.created_at
    assert body["startedAt"] is None and body["completedAt"] is None
    assert run.definition == swarm.default_version.definition
    assert run.swarm_type == "custom"
    assert MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom").runs == 1


def test_a_given_version_is_the_one_that_runs(api_client, swarm, user):
    second = services.swarm_version_create(swarm=swarm, created_by=user, models=["gpt-4o"])
    response = start(api_client, swarm, versionId=second.pk)
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.version_id == second.pk
    assert run.definition == second.definition
    assert {agent["model"] for agent in run.definition["agents"]} == {"gpt-4o"}
    assert run.max_budget_usd == Decimal("5.00")


def test_a_version_of_another_swarm_is_400_and_an_unknown_one_404(api_client, swarm, workspace,
                                                                   user):  # fmt: skip
    other = make_swarm(workspace, user, name="Other")
    problem = assert_problem(start(api_client, swarm, versionId=other.default_version_id), 400,
                             "invalid_request")  # fmt: skip
    assert "versionId" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["versionId"]
    assert_problem(start(api_client, swarm, versionId="swv_nope"), 404, "not_found")
    assert not Run.objects.exists()


def test_a_soft_deleted_swarm_cannot_run(api_client, swarm):
    services.swarm_soft_delete(swarm=swarm)
    problem = assert_problem(start(api_client, swarm), 409, "conflict")
    assert "restore" in problem["detail"]
    assert not Run.objects.exists()
    services.swarm_restore(swarm=swarm)
    assert start(api_client, swarm).status_code == 201


def test_viewers_cannot_start_runs_and_strangers_get_404(client_for, member_of, swarm,
                                                         other_user):  # fmt: skip
    viewer = client_for(member_of(swarm.workspace, Role.VIEWER))
    problem = assert_problem(start(viewer, swarm), 403, "forbidden")
    assert "operator" in problem["detail"]
    assert_problem(start(client_for(other_user), swarm), 404, "not_found")
    operator = client_for(member_of(swarm.workspace, Role.OPERATOR))
    assert start(operator, swarm).status_code == 201
    assert Run.objects.count() == 1


def test_the_budget_check_answers_a_problem(api_client, swarm):
    problem = assert_problem(start(api_client, swarm, maxBudgetUsd="0.000001"), 422,
                             "budget_exceeded")  # fmt: skip
    assert problem["detail"].startswith("Swarm cost would exceed maximum budget of $")
    assert problem["budget"] == 0.000001
    assert problem["estimated_cost"] > problem["budget"]
    assert not Run.objects.exists()
    assert not MonthlyUsage.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": None}, "task"),
        ({"maxBudgetUsd": "0"}, "maxBudgetUsd"),
        ({"maxBudgetUsd": "-3"}, "maxBudgetUsd"),
        ({"maxBudgetUsd": "10000.5"}, "maxBudgetUsd"),
        ({"webhookUrl": "nope"}, "webhookUrl"),
        ({"max_budget_usd": "1"}, "max_budget_usd"),
    ],
)
def test_bad_run_bodies_are_400(api_client, swarm, body, field):
    data = {key: value for key, value in {"task": TASK, **body}.items() if value is not None}
    response = api_client.post(f"/api/swarms/{swarm.pk}/runs", data, format="json")
    problem = assert_problem(response, 400, "invalid_request")
    assert field in [error["field"] for error in problem["errors"]]
    assert not Run.objects.exists()


# ---------------------------------------------------------------------------------------------
# Swarms shared through an integration
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def shared(other_workspace, other_user, workspace):
    """A swarm of `other_workspace` that `workspace` sees through an installed integration."""
    integration_install(installer=workspace, publisher=other_workspace, installed_by=other_user)
    return make_swarm(other_workspace, other_user, name="Shared")


def test_an_installer_operator_runs_a_shared_swarm_in_their_workspace(
    client_for, member_of, workspace, other_workspace, other_user, shared
):
    operator_user = member_of(workspace, Role.OPERATOR)
    client = client_for(operator_user)
    response = start(client, shared, workspaceId=workspace.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["workspaceId"], body["swarmId"]) == (workspace.pk, shared.pk)
    assert body["createdBy"] == operator_user.pk
    run = Run.objects.get(pk=body["id"])
    assert run.workspace_id == workspace.pk
    assert run.version_id == shared.default_version_id
    assert MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom").runs == 1
    assert not MonthlyUsage.objects.filter(workspace=other_workspace).exists()
    # It is the installer's run: listed and readable there, not in the publisher's workspace.
    assert listed(client.get("/api/runs")) == [run.pk]
    assert client.get(f"/api/runs/{run.pk}").status_code == 200
    publisher = client_for(other_user)
    assert listed(publisher.get("/api/runs")) == []
    assert_problem(publisher.get(f"/api/runs/{run.pk}"), 404, "not_found")


def test_a_shared_swarm_needs_the_workspace_to_run_in(client_for, member_of, workspace, shared):
    client = client_for(member_of(workspace, Role.OPERATOR))
    problem = assert_problem(start(client, shared), 400, "invalid_request")
    assert "workspaceId" in problem["detail"]
    assert not Run.objects.exists()


def test_a_shared_swarm_needs_an_operator_of_the_installer(client_for, member_of, workspace,
                                                           shared):  # fmt: skip
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert_problem(start(viewer, shared, workspaceId=workspace.pk), 403, "forbidden")
    assert not Run.objects.exists()


def test_a_workspace_without_the_integration_cannot_run_it(api_client, user, shared):
    from accounts.services import workspace_create

    unrelated = workspace_create(name="Unrelated", owner=user)
    assert_problem(start(api_client, shared, workspaceId=unrelated.pk), 404, "not_found")
    assert_problem(start(api_client, shared, workspaceId="wsp_nope"), 404, "not_found")
    assert not Run.objects.exists()


# ---------------------------------------------------------------------------------------------
# GET /api/runs
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def fleet(workspace, other_workspace, user, swarm):
    """Five runs of `workspace` (two swarms, four statuses, one day apart) and one elsewhere."""
    beta = make_swarm(workspace, user, name="Beta")
    base = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    plan = [
        ("q", swarm, RunStatus.QUEUED),
        ("c1", swarm, RunStatus.COMPLETED),
        ("f", beta, RunStatus.FAILED),
        ("c2", beta, RunStatus.COMPLETED),
        ("x", swarm, RunStatus.CANCELLED),
    ]
    runs = {}
    for day, (name, owner, status) in enumerate(plan):
        run = create_run(workspace, swarm=owner, created_by=user, task=name, status=status)
        Run.objects.filter(pk=run.pk).update(created_at=base + timedelta(days=day))
        runs[name] = run.pk
    runs["theirs"] = create_run(other_workspace, task="theirs", status=RunStatus.COMPLETED).pk
    runs["beta"] = beta.pk
    runs["base"] = base
    return runs


def test_the_list_is_newest_first_and_only_the_callers(api_client, fleet):
    assert listed(api_client.get("/api/runs")) == [fleet[n] for n in ("x", "c2", "f", "c1", "q")]
    body = api_client.get("/api/runs").json()
    assert body["pageInfo"]["total"] == 5
    assert body["pageInfo"]["hasNextPage"] is False


def test_the_list_pages_with_cursors(api_client, fleet):
    first = api_client.get("/api/runs?limit=2").json()
    assert [r["id"] for r in first["data"]] == [fleet["x"], fleet["c2"]]
    assert first["pageInfo"]["hasNextPage"] is True
    second = api_client.get(runs_url(limit=2, after=first["pageInfo"]["endCursor"])).json()
    assert [r["id"] for r in second["data"]] == [fleet["f"], fleet["c1"]]
    assert second["pageInfo"]["hasPreviousPage"] is True


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "completed"}, ["c2", "c1"]),
        ({"status": ["completed", "failed"]}, ["c2", "f", "c1"]),
        ({"status": "queued"}, ["q"]),
        ({"swarm_id": "beta"}, ["c2", "f"]),
        ({"swarm_id": "beta", "status": "failed"}, ["f"]),
        ({"created_after": "2026-01-12T12:00:00Z"}, ["x", "c2", "f"]),
        ({"created_before": "2026-01-12T12:00:00Z"}, ["c1", "q"]),
        ({"filter": '{"status": {"in": ["completed"]}}'}, ["c2", "c1"]),
        ({"filter": '{"NOT": {"status": {"eq": "completed"}}}'}, ["x", "f", "q"]),
        ({"filter": '{"swarm": {"name": {"eq": "Beta"}}}'}, ["c2", "f"]),
        ({"orderBy": '[{"createdAt": "asc"}]'}, ["q", "c1", "f", "c2", "x"]),
        ({"orderBy": '[{"status": "asc"}, {"createdAt": "desc"}]'}, ["x", "c2", "c1", "f", "q"]),
    ],
)
def test_the_list_filters(api_client, fleet, params, expected):
    params = {k: fleet["beta"] if v == "beta" else v for k, v in params.items()}
    assert listed(api_client.get(runs_url(**params))) == [fleet[name] for name in expected]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "sleeping"},
        {"created_after": "yesterday"},
        {"created_after": "0001-01-01T00:10:04+19:04"},  # before year 1 in UTC
        {"filter": '{"status": {"in": ["sleeping"]}}'},
        {"filter": '{"createdAt": {"gt": "0001-01-01T00:00:00+01:00"}}'},
        {"filter": '{"task": {"eq": "q"}}'},
        {"filter": "{not json"},
        {"orderBy": '[{"cost": "asc"}]'},
        {"limit": "0"},
        {"after": "not-a-cursor"},
    ],
)
def test_the_list_refuses_bad_parameters(api_client, fleet, params):
    assert_problem(api_client.get(runs_url(**params)), 400, "invalid_request")


@pytest.mark.parametrize(
    "params",
    [
        # Offsets past ±15:59 are ISO 8601 and Python, but PostgreSQL refuses them: UTC first.
        {"created_after": "0299-01-14T00:10:04+19:04"},
        {"filter": '{"createdAt": {"gte": "0299-01-14T00:10:04+19:04"}}'},
    ],
)
def test_date_times_with_any_offset_are_compared_in_utc(api_client, fleet, params):
    response = api_client.get(runs_url(**params))
    assert response.status_code == 200, response.content
    assert len(response.json()["data"]) == 5  # every run of the workspace


def test_the_list_narrows_to_a_workspace_the_caller_belongs_to(api_client, fleet, workspace,
                                                              other_workspace):  # fmt: skip
    assert len(listed(api_client.get(runs_url(workspace_id=workspace.pk)))) == 5
    assert_problem(api_client.get(runs_url(workspace_id=other_workspace.pk)), 404, "not_found")


def test_a_viewer_lists_and_reads_runs(client_for, member_of, workspace, fleet):
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert len(listed(viewer.get("/api/runs"))) == 5
    assert viewer.get(f"/api/runs/{fleet['c1']}").status_code == 200


def test_an_api_key_lists_only_its_workspace(key_client, workspace, fleet):
    client, _, _ = key_client(workspace, Role.VIEWER)
    assert len(listed(client.get("/api/runs"))) == 5


# ---------------------------------------------------------------------------------------------
# GET /api/runs/{id} and /result
# ---------------------------------------------------------------------------------------------
def test_one_run_and_its_result(api_client, workspace, swarm, user):
    run = create_run(workspace, swarm=swarm, created_by=user)
    response = api_client.get(f"/api/runs/{run.pk}")
    assert response.status_code == 200, response.content
    body = decimal_json(response)
    assert set(body) == RUN_KEYS
    assert (body["id"], body["status"], body["swarmId"]) == (run.pk, "queued", swarm.pk)
    assert body["estimatedCostUsd"] == run.estimated_cost_usd.quantize(
        Decimal("0.000001"), rounding="ROUND_DOWN"
    )
    response = api_client.get(f"/api/runs/{run.pk}/result")
    assert response.status_code == 200, response.content
    result = decimal_json(response)
    assert set(result) == RESULT_KEYS
    assert (result["runId"], result["status"], result["output"]) == (run.pk, "queued", "")
    assert result["costReport"] == {"totalUsd": 0, "totalTokens": 0, "agents": [], "tools": []}
    assert result["agentLogs"] == []
    assert (result["errorCode"], result["errorMessage"]) == ("", "")
    assert result["simulated"] is True
    assert result["elapsedSeconds"] is None and result["completedAt"] is None


def test_another_workspaces_run_is_404(api_client, other_workspace):
    run = create_run(other_workspace)
    for suffix in ("", "/result", "/events"):
        assert_problem(api_client.get(f"/api/runs/{run.pk}{suffix}"), 404, "not_found")
    assert_problem(api_client.get("/api/runs/run_nope"), 404, "not_found")
    assert_problem(api_client.get("/api/runs/run_nope/events"), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# GET /api/runs/{id}/events
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def seven(workspace):
    run = create_run(workspace)
    add_events(run, ["agent.message"] * 7)
    return run


def events_page(client, run, **params) -> dict:
    response = client.get(f"/api/runs/{run.pk}/events?" + urlencode(params))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data", "pageInfo"}
    assert set(body["pageInfo"]) == PAGE_INFO_KEYS
    return body


def test_events_come_in_seq_order_with_their_fields(api_client, seven):
    body = events_page(api_client, seven)
    assert seqs(body["data"]) == [1, 2, 3, 4, 5, 6, 7]
    first = body["data"][0]
    assert set(first) == EVENT_KEYS
    assert (first["runId"], first["type"], first["agentId"]) == (seven.pk, "agent.message",
                                                                 "agent-0")  # fmt: skip
    assert first["data"] == {"n": 0}
    assert body["pageInfo"] == {"total": 7, "hasNextPage": False, "hasPreviousPage": False,
                                "startCursor": "1", "endCursor": "7"}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected", "has_next", "has_previous"),
    [
        ({"limit": 3}, [1, 2, 3], True, False),
        ({"after": 3}, [4, 5, 6, 7], False, True),
        ({"after": 3, "limit": 2}, [4, 5], True, True),
        ({"after": 0}, [1, 2, 3, 4, 5, 6, 7], False, False),
        ({"after": 7}, [], False, True),
        ({"before": 3}, [1, 2], True, False),
        ({"before": 7, "limit": 2}, [5, 6], True, True),
        ({"before": 1}, [], True, False),
    ],
)
def test_events_page_by_seq(api_client, seven, params, expected, has_next, has_previous):
    body = events_page(api_client, seven, **params)
    assert seqs(body["data"]) == expected
    info = body["pageInfo"]
    assert (info["hasNextPage"], info["hasPreviousPage"]) == (has_next, has_previous)
    assert info["total"] == 7
    if expected:
        assert (info["startCursor"], info["endCursor"]) == (str(expected[0]), str(expected[-1]))
    else:
        assert info["startCursor"] is None and info["endCursor"] is None


def test_following_end_cursors_reads_every_event_once(api_client, seven):
    seen, after = [], None
    while True:
        body = events_page(api_client, seven, limit=3, **({"after": after} if after else {}))
        seen += seqs(body["data"])
        if not body["pageInfo"]["hasNextPage"]:
            break
        after = body["pageInfo"]["endCursor"]
    assert seen == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    "query", ["after=abc", "after=-1", "after=1.5", "before=x", "after=2&before=5", "limit=0",
              "limit=101", "limit=ten"],
)  # fmt: skip
def test_bad_event_paging_is_400(api_client, seven, query):
    response = api_client.get(f"/api/runs/{seven.pk}/events?{query}")
    assert_problem(response, 400, "invalid_request")


def test_a_viewer_reads_events(client_for, member_of, workspace, seven):
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert seqs(events_page(viewer, seven)["data"]) == [1, 2, 3, 4, 5, 6, 7]

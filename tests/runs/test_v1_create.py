"""`/v1/swarms` (seed 002) without executing anything: creation from a template id or inline YAML,
every refusal with its envelope, the budget check, the list, tenancy and roles."""

from datetime import datetime
from decimal import ROUND_DOWN, Decimal

import pytest

from accounts.models import Membership
from accounts.roles import Role
from accounts.services import workspace_create
from billing.models import MonthlyUsage
from swarms.engine import Definition, estimate_cost, minimum_cost
from swarms.engine.types import MIN_OUTPUT_TOKENS
from swarms.models import Run, RunStatus
from swarms.providers import price_map
from templates_app.models import SwarmTemplate
from templates_app.services import template_create
from tests.conftest import assert_v1_error, jwt_client
from tests.factories import create_run
from tests.runs.conftest import (
    INLINE_YAML,
    V1_CREATED_KEYS,
    V1_RESULT_KEYS,
    V1_STATUS_KEYS,
    decimal_json,
    event_types,
    is_json_number,
)

pytestmark = pytest.mark.usefixtures("not_executing")

TASK = "Investigate Norwegian hydrogen economy"
SIX_PLACES = Decimal("0.000001")


def expected_cost(template_id: str, task: str) -> Decimal:
    definition = Definition.from_dict(SwarmTemplate.objects.get(pk=template_id).definition)
    return estimate_cost(definition, task, price_map())[0]


def least_cost(template_id: str, task: str) -> Decimal:
    """The cheapest completing path: every call with its output clamped to the floor."""
    definition = Definition.from_dict(SwarmTemplate.objects.get(pk=template_id).definition)
    return minimum_cost(definition, task, price_map(), MIN_OUTPUT_TOKENS)


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


def post(client, **body):
    return client.post("/v1/swarms", body, format="json")


def created(response) -> Run:
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    body = decimal_json(response)
    assert set(body) == V1_CREATED_KEYS
    return Run.objects.get(pk=body["swarm_id"])


# ---------------------------------------------------------------------------------------------
# Creating
# ---------------------------------------------------------------------------------------------
def test_create_from_a_template_id_answers_exactly_the_seed_fields(operator, workspace, user):
    response = post(
        operator, template="research-swarm-v1", task=TASK, max_budget_usd=2.50,
        webhook_url="https://my-app.com/swarm-callback",
    )  # fmt: skip
    run = created(response)
    body = decimal_json(response)
    assert body["swarm_id"].startswith("run_")
    # Seed 002's statuses are running, completed, failed, cancelled: not yet started is running.
    assert body["status"] == "running" and run.status == RunStatus.QUEUED
    assert is_json_number(body["estimated_cost_usd"])
    exact = expected_cost("research-swarm-v1", TASK)
    assert body["estimated_cost_usd"] == exact.quantize(SIX_PLACES, rounding=ROUND_DOWN)
    assert body["estimated_cost_usd"] > 0
    assert body["created_at"].endswith("Z")
    assert datetime.fromisoformat(body["created_at"]) == run.created_at
    assert run.workspace_id == workspace.pk
    assert (run.template_id, run.swarm_type) == ("research-swarm-v1", "research-swarm-v1")
    assert run.swarm_id is None and run.version_id is None
    assert run.definition == SwarmTemplate.objects.get(pk="research-swarm-v1").definition
    assert run.task == TASK
    assert run.max_budget_usd == Decimal("2.50")
    assert run.estimated_cost_usd == exact
    assert run.webhook_url == "https://my-app.com/swarm-callback"
    assert run.agents_total == 5  # manager, 3 researchers, writer
    assert run.simulated is True
    assert run.status == RunStatus.QUEUED
    assert run.created_by_id == user.pk  # the key's creator acts
    rollup = MonthlyUsage.objects.get(workspace=workspace, swarm_type="research-swarm-v1")
    assert rollup.runs == 1
    assert rollup.cost_usd == 0


def test_the_default_budget_is_five_dollars(operator):
    run = created(post(operator, template="research-swarm-v1", task=TASK))
    assert run.max_budget_usd == Decimal("5.00")
    assert run.webhook_url == ""


def test_create_from_inline_yaml_strips_the_metadata(operator, workspace):
    run = created(post(operator, template=INLINE_YAML, task=TASK))
    assert (run.template_id, run.swarm_type) == ("", "custom")
    assert "name" not in run.definition and "description" not in run.definition
    assert run.definition["topology"] == "hierarchical"
    assert [agent["id"] for agent in run.definition["agents"]] == ["lead", "digger", "scribe"]
    assert run.agents_total == 4  # lead, digger-1, digger-2, scribe
    assert MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom").runs == 1


def test_a_workspace_template_runs_by_id_but_not_from_another_workspace(
    operator, workspace, other_workspace, user, other_user
):
    template_create(workspace=workspace, template_id="ours-v1", source=INLINE_YAML,
                    created_by=user)  # fmt: skip
    template_create(workspace=other_workspace, template_id="theirs-v1", source=INLINE_YAML,
                    created_by=other_user)  # fmt: skip
    run = created(post(operator, template="ours-v1", task=TASK))
    assert (run.template_id, run.swarm_type) == ("ours-v1", "ours-v1")
    error = assert_v1_error(post(operator, template="theirs-v1", task=TASK), 404, "not_found")
    assert "theirs-v1" in error["message"]
    assert not Run.objects.filter(template_id="theirs-v1").exists()


def test_an_unknown_template_is_not_found(operator):
    error = assert_v1_error(post(operator, template="no-such-swarm-v1", task=TASK), 404,
                            "not_found")  # fmt: skip
    assert "no-such-swarm-v1" in error["message"]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("template", "field", "fragment"),
    [
        pytest.param("topology: [", "yaml", "line 1, column 12", id="yaml-syntax"),
        pytest.param("just words", "definition", "must be a mapping", id="not-a-mapping"),
        pytest.param(INLINE_YAML.replace("role: manager", "role: boss"),
                     "definition.agents[0].role", "must be one of", id="bad-role"),
        pytest.param(INLINE_YAML.replace("topology: hierarchical", "topology: mesh"),
                     "definition.topology", "must be one of", id="bad-topology"),
        pytest.param(INLINE_YAML.replace("max_tokens: 512", "max_tokens: 0"),
                     "definition.agents[2].max_tokens", "integer from 1", id="bad-max-tokens"),
        pytest.param(INLINE_YAML.replace("model: deepseek-chat", "model: gpt-99"),
                     "definition.agents[1].model", "unknown model 'gpt-99'", id="unknown-model"),
        pytest.param(INLINE_YAML + "extra: 1\n", "definition.extra", "unknown field",
                     id="unknown-definition-field"),
    ],
)  # fmt: skip
def test_invalid_inline_definitions_name_the_path(operator, template, field, fragment):
    error = assert_v1_error(post(operator, template=template, task=TASK), 400, "invalid_request")
    assert field in error["details"]["fields"], error
    assert any(fragment in detail for detail in error["details"]["fields"][field]), error
    assert field.removeprefix("definition.") in error["message"] or field == "yaml"
    assert fragment in error["message"]
    assert not Run.objects.exists()
    assert not MonthlyUsage.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"task": None}, "task", id="missing-task"),
        pytest.param({"template": None}, "template", id="missing-template"),
        pytest.param({"task": ""}, "task", id="blank-task"),
        pytest.param({"task": "x" * 20_001}, "task", id="huge-task"),
        pytest.param({"colour": "blue"}, "colour", id="unknown-field"),
        pytest.param({"max_budget_usd": -1}, "max_budget_usd", id="negative-budget"),
        pytest.param({"max_budget_usd": 0}, "max_budget_usd", id="zero-budget"),
        pytest.param({"max_budget_usd": 10_000.01}, "max_budget_usd", id="over-max-budget"),
        pytest.param({"max_budget_usd": 1e9}, "max_budget_usd", id="huge-budget"),
        pytest.param({"max_budget_usd": "lots"}, "max_budget_usd", id="text-budget"),
        pytest.param({"max_budget_usd": "NaN"}, "max_budget_usd", id="nan-budget"),
        pytest.param({"max_budget_usd": 0.0000001}, "max_budget_usd", id="sub-micro-budget"),
        pytest.param({"webhook_url": "not a url"}, "webhook_url", id="webhook-not-a-url"),
        pytest.param({"webhook_url": "javascript:alert(1)"}, "webhook_url", id="webhook-js"),
        pytest.param({"webhook_url": "https://" + "a" * 2000 + ".com/"}, "webhook_url",
                     id="webhook-too-long"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused_by_field(operator, workspace, changes, field):
    body = {"template": "research-swarm-v1", "task": TASK, **changes}
    body = {key: value for key, value in body.items() if value is not None}
    response = operator.post("/v1/swarms", body, format="json")
    error = assert_v1_error(response, 400, "invalid_request")
    assert field in error["details"]["fields"], error
    assert field in error["message"]
    assert not Run.objects.exists()
    assert not MonthlyUsage.objects.exists()


def test_a_non_http_webhook_url_is_refused(operator):
    response = post(operator, template="research-swarm-v1", task=TASK,
                    webhook_url="ftp://example.com/swarm-callback")  # fmt: skip
    assert_v1_error(response, 400, "invalid_request")


def test_a_body_that_is_not_an_object_is_refused(operator):
    response = operator.post("/v1/swarms", ["research-swarm-v1"], format="json")
    assert_v1_error(response, 400, "invalid_request")
    response = operator.post("/v1/swarms", "{nope", content_type="application/json")
    assert_v1_error(response, 400, "invalid_request")
    assert not Run.objects.exists()


# ---------------------------------------------------------------------------------------------
# The budget check at creation
# ---------------------------------------------------------------------------------------------
def test_an_estimate_above_the_budget_is_422_budget_exceeded(operator, workspace):
    response = post(operator, template="research-swarm-v1", task=TASK, max_budget_usd=0.000001)
    error = assert_v1_error(response, 422, "budget_exceeded")
    assert error["message"].startswith("Swarm cost would exceed maximum budget of $")
    details = decimal_json(response)["error"]["details"]
    assert set(details) == {"budget", "estimated_cost", "minimum_cost"}
    assert all(is_json_number(value) for value in details.values())
    assert details["budget"] == Decimal("0.000001")
    exact = expected_cost("research-swarm-v1", TASK)
    assert abs(details["estimated_cost"] - exact) <= SIX_PLACES
    assert details["estimated_cost"] > details["budget"]
    least = least_cost("research-swarm-v1", TASK)
    assert details["minimum_cost"] == least.quantize(SIX_PLACES, rounding="ROUND_UP")
    assert not Run.objects.exists()
    assert not MonthlyUsage.objects.exists()


def test_the_budget_message_names_the_budget_in_dollars(operator):
    """A budget below the research team's cheapest completing path (about $0.0103)."""
    assert least_cost("research-swarm-v1", TASK) > Decimal("0.01")
    response = post(operator, template="research-swarm-v1", task=TASK, max_budget_usd=0.01)
    error = assert_v1_error(response, 422, "budget_exceeded")
    assert error["message"] == "Swarm cost would exceed maximum budget of $0.01"
    assert decimal_json(response)["error"]["details"]["budget"] == Decimal("0.01")
    assert not Run.objects.exists()


def test_a_sub_cent_budget_is_not_misreported(operator):
    response = post(operator, template="research-swarm-v1", task=TASK, max_budget_usd=0.000001)
    error = assert_v1_error(response, 422, "budget_exceeded")
    assert error["message"] == "Swarm cost would exceed maximum budget of $0.000001"


def test_the_422_estimate_matches_the_201_estimate(operator):
    refused = post(operator, template="research-swarm-v1", task="x", max_budget_usd=0.000001)
    assert_v1_error(refused, 422, "budget_exceeded")
    accepted = post(operator, template="research-swarm-v1", task="x")
    assert accepted.status_code == 201, accepted.content
    estimate = decimal_json(accepted)["estimated_cost_usd"]
    assert decimal_json(refused)["error"]["details"]["estimated_cost"] == estimate


def test_a_budget_equal_to_the_cheapest_completing_path_is_accepted(operator):
    """Not the expected cost: a run accepted with 201 completes with its outputs clamped to
    what the budget pays, so only a budget below every call's floor is refused."""
    exact = least_cost("research-swarm-v1", TASK)
    assert exact < expected_cost("research-swarm-v1", TASK)
    budget = exact.quantize(SIX_PLACES, rounding="ROUND_UP")
    run = created(post(operator, template="research-swarm-v1", task=TASK,
                       max_budget_usd=str(budget)))  # fmt: skip
    assert run.max_budget_usd == budget
    below = (exact - SIX_PLACES).quantize(SIX_PLACES, rounding=ROUND_DOWN)
    response = post(operator, template="research-swarm-v1", task=TASK, max_budget_usd=str(below))
    assert_v1_error(response, 422, "budget_exceeded")
    assert Run.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Reading a run that has not executed, and cancelling it
# ---------------------------------------------------------------------------------------------
def test_status_of_a_queued_run_has_exactly_the_seed_fields(operator):
    run = created(post(operator, template="research-swarm-v1", task=TASK))
    response = operator.get(f"/v1/swarms/{run.pk}")
    assert response.status_code == 200, response.content
    body = decimal_json(response)
    assert set(body) == V1_STATUS_KEYS
    assert body["swarm_id"] == run.pk
    assert body["status"] == "running"  # seed 002's value; /api keeps the precise `queued`
    assert operator.get(f"/api/runs/{run.pk}").json()["status"] == "queued"
    assert body["progress"] == 0
    assert is_json_number(body["current_cost_usd"]) and body["current_cost_usd"] == 0
    assert (body["agents_active"], body["agents_total"]) == (0, 5)
    assert body["simulated"] is True
    assert datetime.fromisoformat(body["created_at"]) == run.created_at


def test_result_of_a_queued_run_is_empty_but_well_formed(operator):
    run = created(post(operator, template="research-swarm-v1", task=TASK))
    response = operator.get(f"/v1/swarms/{run.pk}/result")
    assert response.status_code == 200, response.content
    body = decimal_json(response)
    assert set(body) == V1_RESULT_KEYS
    assert body["swarm_id"] == run.pk
    assert body["status"] == "running"
    assert body["output"] == ""
    assert body["cost_report"] == {"total_usd": 0, "total_tokens": 0, "agents": []}
    assert body["agent_logs"] == []
    assert body["elapsed_seconds"] is None
    assert body["error"] is None
    assert body["completed_at"] is None
    assert body["simulated"] is True


def test_delete_cancels_a_queued_run_at_once(operator, workspace):
    run = created(post(operator, template="research-swarm-v1", task=TASK))
    response = operator.delete(f"/v1/swarms/{run.pk}")
    assert response.status_code == 200, response.content
    body = decimal_json(response)
    assert set(body) == {"swarm_id", "status", "cost_usd"}
    assert (body["swarm_id"], body["status"]) == (run.pk, "cancelled")
    assert is_json_number(body["cost_usd"]) and body["cost_usd"] == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.completed_at is not None and run.cancel_requested_at is not None
    assert event_types(run.pk) == ["run.cancelled"]
    assert run.last_seq == 1
    # Cancelling again is a no-op that still answers 200.
    again = operator.delete(f"/v1/swarms/{run.pk}")
    assert again.status_code == 200, again.content
    assert again.json()["status"] == "cancelled"
    assert event_types(run.pk) == ["run.cancelled"]
    assert operator.get(f"/v1/swarms/{run.pk}").json()["status"] == "cancelled"
    result = operator.get(f"/v1/swarms/{run.pk}/result").json()
    assert result["status"] == "cancelled" and result["completed_at"] is not None
    # Still counted in the month: it was started.
    assert MonthlyUsage.objects.get(workspace=workspace, swarm_type="research-swarm-v1").runs == 1


@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.FAILED])
def test_delete_of_a_finished_run_is_409(operator, workspace, status):
    run = create_run(workspace, status=status)
    error = assert_v1_error(operator.delete(f"/v1/swarms/{run.pk}"), 409, "conflict")
    assert status in error["message"]
    run.refresh_from_db()
    assert run.status == status
    assert event_types(run.pk) == []


def test_unknown_run_ids_are_404(operator):
    for url in ("/v1/swarms/run_nope", "/v1/swarms/run_nope/result"):
        assert_v1_error(operator.get(url), 404, "not_found")
    assert_v1_error(operator.delete("/v1/swarms/run_nope"), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# The list
# ---------------------------------------------------------------------------------------------
def test_list_is_newest_first_with_offset_pagination(operator, workspace, other_workspace):
    runs = [create_run(workspace, task=f"Task {n}") for n in range(3)]
    create_run(other_workspace, task="Not ours")
    response = operator.get("/v1/swarms")
    assert response.status_code == 200, response.content
    body = decimal_json(response)
    assert set(body) == {"items", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    assert [item["swarm_id"] for item in body["items"]] == [run.pk for run in reversed(runs)]
    for item in body["items"]:
        assert set(item) == V1_STATUS_KEYS
        assert is_json_number(item["current_cost_usd"])
    page = operator.get("/v1/swarms?limit=1&offset=1").json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [item["swarm_id"] for item in page["items"]] == [runs[1].pk]
    past = operator.get("/v1/swarms?offset=10").json()
    assert (past["items"], past["total"]) == ([], 3)
    assert operator.get("/v1/swarms?limit=1000").json()["limit"] == 1000


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=-1", "limit=abc", "offset=-1", "offset=x"]
)
def test_list_refuses_bad_limit_and_offset(operator, query):
    error = assert_v1_error(operator.get(f"/v1/swarms?{query}"), 400, "invalid_request")
    assert query.split("=")[0] in error["message"]


# ---------------------------------------------------------------------------------------------
# Tenancy and roles
# ---------------------------------------------------------------------------------------------
def test_a_run_of_another_workspace_is_404_everywhere(operator, other_workspace):
    theirs = create_run(other_workspace)
    for url in (f"/v1/swarms/{theirs.pk}", f"/v1/swarms/{theirs.pk}/result"):
        assert_v1_error(operator.get(url), 404, "not_found")
    assert_v1_error(operator.delete(f"/v1/swarms/{theirs.pk}"), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.status == RunStatus.QUEUED


def test_a_viewer_key_reads_but_cannot_start_or_cancel(key_client, workspace):
    viewer, _, _ = key_client(workspace, Role.VIEWER)
    run = create_run(workspace)
    error = assert_v1_error(post(viewer, template="research-swarm-v1", task=TASK), 403,
                            "forbidden")  # fmt: skip
    assert "operator" in error["message"]
    assert Run.objects.count() == 1
    assert_v1_error(viewer.delete(f"/v1/swarms/{run.pk}"), 403, "forbidden")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert viewer.get(f"/v1/swarms/{run.pk}").status_code == 200
    assert viewer.get(f"/v1/swarms/{run.pk}/result").status_code == 200
    assert viewer.get("/v1/swarms").json()["total"] == 1


def test_no_credentials_is_401(anon_client, workspace):
    run = create_run(workspace)
    assert_v1_error(anon_client.post("/v1/swarms", {"template": "research-swarm-v1",
                                                    "task": TASK}, format="json"),
                    401, "unauthorized")  # fmt: skip
    assert_v1_error(anon_client.get(f"/v1/swarms/{run.pk}"), 401, "unauthorized")
    assert Run.objects.count() == 1


def test_a_jwt_user_picks_the_workspace_with_the_header(user, workspace, other_workspace):
    second = workspace_create(name="Second", owner=user)
    client = jwt_client(user)
    response = client.post("/v1/swarms", {"template": "research-swarm-v1", "task": TASK},
                           format="json", HTTP_SVERM_WORKSPACE=second.pk)  # fmt: skip
    run = created(response)
    assert run.workspace_id == second.pk
    assert client.get(f"/v1/swarms/{run.pk}", HTTP_SVERM_WORKSPACE=second.pk).status_code == 200
    # Acting in the other workspace, the run is not there.
    assert_v1_error(client.get(f"/v1/swarms/{run.pk}", HTTP_SVERM_WORKSPACE=workspace.pk), 404,
                    "not_found")  # fmt: skip
    listed = client.get("/v1/swarms", HTTP_SVERM_WORKSPACE=workspace.pk).json()
    assert listed["total"] == 0
    listed = client.get("/v1/swarms", HTTP_SVERM_WORKSPACE=second.pk).json()
    assert [item["swarm_id"] for item in listed["items"]] == [run.pk]
    # A workspace the user is no member of, or none at all: 404, nothing created.
    for header in (other_workspace.pk, "wsp_doesnotexist"):
        response = client.post("/v1/swarms", {"template": "research-swarm-v1", "task": TASK},
                               format="json", HTTP_SVERM_WORKSPACE=header)  # fmt: skip
        assert_v1_error(response, 404, "not_found")
        assert_v1_error(client.get("/v1/swarms", HTTP_SVERM_WORKSPACE=header), 404, "not_found")
    assert Run.objects.count() == 1


def test_a_jwt_viewer_of_the_header_workspace_cannot_start(make_user, workspace):
    reader = make_user()
    Membership.objects.create(workspace=workspace, user=reader, role=Role.VIEWER)
    workspace_create(name="Reader's own", owner=reader)
    client = jwt_client(reader)
    response = client.post("/v1/swarms", {"template": "research-swarm-v1", "task": TASK},
                           format="json", HTTP_SVERM_WORKSPACE=workspace.pk)  # fmt: skip
    assert_v1_error(response, 403, "forbidden")
    assert not Run.objects.exists()


def test_an_api_key_cannot_act_in_another_workspace(operator, other_workspace):
    response = operator.post("/v1/swarms", {"template": "research-swarm-v1", "task": TASK},
                             format="json", HTTP_SVERM_WORKSPACE=other_workspace.pk)  # fmt: skip
    assert_v1_error(response, 404, "not_found")
    assert not Run.objects.exists()

"""Seed 002: "Status values: running, completed, failed, cancelled". Every `/v1` answer says one
of those four, whatever the run's precise state on `/api` (queued, paused for approvals or
budget): a client written from the seed, switching on those four, never meets a fifth."""

import pytest

from accounts.roles import Role
from swarms.models import RunStatus
from tests.factories import make_run
from tests.runs.conftest import decimal_json

pytestmark = pytest.mark.usefixtures("not_executing")

SEED_STATUSES = {"running", "completed", "failed", "cancelled"}


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


@pytest.mark.parametrize(
    "precise", [RunStatus.QUEUED, RunStatus.AWAITING_APPROVAL, RunStatus.AWAITING_BUDGET]
)
def test_a_run_not_started_or_paused_is_running_on_v1_and_precise_on_api(
    operator, workspace, precise
):
    extra = {"budget_needed_usd": "0.5"} if precise == RunStatus.AWAITING_BUDGET else {}
    run = make_run(workspace, status=precise, agents_total=3, **extra)
    status = decimal_json(operator.get(f"/v1/swarms/{run.pk}"))
    assert status["status"] == "running"
    result = decimal_json(operator.get(f"/v1/swarms/{run.pk}/result"))
    assert result["status"] == "running"
    listed = {item["swarm_id"]: item for item in operator.get("/v1/swarms").json()["items"]}
    assert listed[run.pk]["status"] == "running"
    assert operator.get(f"/api/runs/{run.pk}").json()["status"] == precise


def test_a_queued_run_is_running_with_nothing_done_yet(operator, workspace):
    created = operator.post(
        "/v1/swarms", {"template": "research-swarm-v1", "task": "Hydrogen"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "running"
    body = decimal_json(operator.get(f"/v1/swarms/{created.json()['swarm_id']}"))
    assert (body["status"], body["progress"], body["agents_active"]) == ("running", 0, 0)
    assert body["current_cost_usd"] == 0


@pytest.mark.parametrize("final", [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED])
def test_finished_runs_keep_their_seed_status(operator, workspace, final):
    run = make_run(workspace, status=final)
    assert operator.get(f"/v1/swarms/{run.pk}").json()["status"] == final
    assert operator.get(f"/v1/swarms/{run.pk}/result").json()["status"] == final


def test_cancelling_answers_a_seed_status(operator, workspace):
    queued = make_run(workspace, status=RunStatus.QUEUED)
    assert operator.delete(f"/v1/swarms/{queued.pk}").json()["status"] == "cancelled"
    running = make_run(workspace, status=RunStatus.RUNNING)
    assert operator.delete(f"/v1/swarms/{running.pk}").json()["status"] == "running"
    paused = make_run(workspace, status=RunStatus.AWAITING_APPROVAL)
    assert operator.delete(f"/v1/swarms/{paused.pk}").json()["status"] in SEED_STATUSES


def test_every_v1_status_in_the_schema_is_exactly_the_seed_four(client):
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]

    def statuses(node) -> list:
        """Every enum a `status` property of a /v1 response can take."""
        found = []
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                found += statuses(components[ref.rsplit("/", 1)[1]])
            for key, value in node.items():
                if key == "properties" and "status" in value:
                    found.append(resolve(value["status"]))
                if key != "$ref":
                    found += statuses(value)
        elif isinstance(node, list):
            for value in node:
                found += statuses(value)
        return found

    def resolve(prop) -> set:
        for part in [*prop.get("allOf", []), prop]:
            if "$ref" in part:
                return set(components[part["$ref"].rsplit("/", 1)[1]]["enum"])
            if "enum" in part:
                return set(part["enum"])
        return set()

    seen = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/swarms"):
            continue
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                for content in response.get("content", {}).values():
                    for enum in statuses(content.get("schema", {})):
                        if enum & {"completed"} or "running" in enum:
                            assert enum == SEED_STATUSES, (path, enum)
                            seen += 1
    assert seen >= 5  # create, list, get, result, cancel

"""Spend by who after runs really executed (thread executor, simulated provider): two API keys
and a signed-in user each start a run; `/api/usage` grouped by key and by user shows what each
run shows it cost, and `/v1/usage` adds the same runs up to the same total."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from accounts.services import api_key_create
from swarms.models import Run
from tests.conftest import jwt_client
from tests.runs.conftest import decimal_json, wait_terminal

pytestmark = pytest.mark.usefixtures("executing")


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_each_key_and_user_is_charged_what_its_runs_show(workspace, user, member_of,
                                                           api_client):  # fmt: skip
    analyst = member_of(workspace, Role.OPERATOR)
    ops = member_of(workspace, Role.OPERATOR)
    _key_a, raw_a = api_key_create(workspace=workspace, name="CI", role=Role.OPERATOR,
                                   created_by=user)  # fmt: skip
    _key_b, raw_b = api_key_create(workspace=workspace, name="Batch jobs", role=Role.OPERATOR,
                                   created_by=ops)  # fmt: skip
    starters = {"key_a": key_client(raw_a), "key_b": key_client(raw_b),
                "analyst": jwt_client(analyst)}  # fmt: skip
    shown: dict[str, Decimal] = {}
    runs: dict[str, Run] = {}
    for name, client in starters.items():  # one at a time: the free plan runs two at once
        response = client.post(
            "/v1/swarms", {"template": "research-swarm-v1", "task": f"Heat pumps, by {name}"},
            format="json",
        )  # fmt: skip
        assert response.status_code == 201, response.content
        status = wait_terminal(client, f"/v1/swarms/{response.json()['swarm_id']}")
        assert status["status"] == "completed"
        shown[name] = status["current_cost_usd"]
        runs[name] = Run.objects.get(pk=status["swarm_id"])
    assert all(cost > 0 for cost in shown.values())

    by_key = decimal_json(api_client.get("/api/usage", {"group_by": "api_key"}))
    assert {row["key"]: row["costUsd"] for row in by_key["data"]} == {
        runs["key_a"].api_key_id: shown["key_a"],
        runs["key_b"].api_key_id: shown["key_b"],
        None: shown["analyst"],
    }
    assert {row["name"] for row in by_key["data"]} == {"CI", "Batch jobs", None}
    by_user = decimal_json(api_client.get("/api/usage", {"group_by": "user"}))
    assert {row["email"]: row["costUsd"] for row in by_user["data"]} == {
        user.email: shown["key_a"], ops.email: shown["key_b"], analyst.email: shown["analyst"]
    }  # fmt: skip
    month = decimal_json(api_client.get("/v1/usage"))["current_month"]
    total = sum(shown.values())
    assert by_key["totals"]["costUsd"] == by_user["totals"]["costUsd"] == total
    assert month["by_swarm_type"]["research-swarm-v1"] == {"count": 3, "total_usd": total}
    assert month["total_usd"] == total

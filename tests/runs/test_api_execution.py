"""A swarm's run started and followed over `/api` while the thread executor runs it: the run's
status, its camelCase result and its events read page by page."""

from decimal import Decimal

import pytest

from billing.models import UsageRecord
from sverm.money import money
from swarms.models import Run
from tests.factories import make_swarm
from tests.runs.conftest import (
    decimal_json,
    events_of,
    ledger_total,
    seqs,
    wait_terminal,
)

pytestmark = pytest.mark.usefixtures("executing")

AGENT_COST_KEYS = {
    "agentId",
    "model",
    "costUsd",
    "tokensIn",
    "tokensOut",
    "toolCalls",
    "toolDurationMs",
}
AGENT_LOG_KEYS = {"agentId", "timestamp", "action", "target", "summary"}


def test_a_swarm_run_over_api_completes_with_a_camelcase_result(api_client, workspace, user):
    swarm = make_swarm(workspace, user, models=["gpt-4o-mini", "deepseek-chat"])
    response = api_client.post(f"/api/swarms/{swarm.pk}/runs",
                               {"task": "Compare heat pumps", "maxBudgetUsd": "1"},
                               format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    body = wait_terminal(api_client, f"/api/runs/{run_id}")
    assert body["status"] == "completed", body
    assert body["progress"] == 1.0
    assert body["startedAt"] is not None and body["completedAt"] is not None
    assert body["agentsActive"] == 0
    run = Run.objects.get(pk=run_id)
    assert body["output"] == run.output != ""
    assert body["currentCostUsd"] == money(run.current_cost_usd)
    assert run.current_cost_usd == ledger_total(run_id) <= Decimal(1)
    assert set(UsageRecord.objects.filter(run_id=run_id).values_list("swarm_id", flat=True)) == {
        swarm.pk
    }

    result = decimal_json(api_client.get(f"/api/runs/{run_id}/result"))
    assert (result["runId"], result["status"]) == (run_id, "completed")
    report = result["costReport"]
    assert set(report) == {"totalUsd", "totalTokens", "agents", "tools"}
    assert report["tools"] == []  # no agent of this swarm lists a tool
    assert report["totalUsd"] == body["currentCostUsd"]
    assert sum((a["costUsd"] for a in report["agents"]), Decimal(0)) == report["totalUsd"]
    assert {a["agentId"] for a in report["agents"]} == {
        "manager", "researcher-1", "researcher-2", "writer"
    }  # fmt: skip
    for agent in report["agents"]:
        assert set(agent) == AGENT_COST_KEYS
    models = {a["agentId"]: a["model"] for a in report["agents"]}
    assert (models["manager"], models["researcher-1"], models["writer"]) == (
        "gpt-4o-mini", "deepseek-chat", "deepseek-chat"
    )  # fmt: skip
    for log in result["agentLogs"]:
        assert set(log) == AGENT_LOG_KEYS
    delegations = [log for log in result["agentLogs"] if log["action"] == "delegate"]
    assert [log["target"] for log in delegations] == ["researcher-1", "researcher-2"]
    assert result["elapsedSeconds"] > 0
    assert (result["errorCode"], result["errorMessage"]) == ("", "")

    # The stored events, page by page, are exactly the run's: no gap, no duplicate.
    stored = events_of(run_id)
    seen, after = [], 0
    while True:
        page = api_client.get(f"/api/runs/{run_id}/events?limit=4&after={after}").json()
        seen += page["data"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = int(page["pageInfo"]["endCursor"])
    assert seqs(seen) == [event.seq for event in stored] == list(range(1, len(stored) + 1))
    assert [e["type"] for e in seen] == [event.type for event in stored]
    assert seen[0]["type"] == "run.started" and seen[-1]["type"] == "run.completed"
    progress = [e["data"]["progress"] for e in seen if e["type"] == "run.progress"]
    assert progress[-1] == 1.0
    tail = api_client.get(f"/api/runs/{run_id}/events?after=3").json()["data"]
    assert seqs(tail) == list(range(4, len(stored) + 1))

"""Approval gates over the API while the thread executor runs the runs: a run whose readers'
`http_fetch` calls need approval pauses (`awaiting_approval` on /api, `running` with the pending
call on /v1, no worker holding it), operators approve (with edited arguments) or deny, the run
resumes and completes without paying any call twice; a deadline denies, a cancel ends it."""

from decimal import Decimal

import pytest

from accounts.roles import Role
from billing.models import UsageRecord
from swarms.models import Approval, Run, RunStep
from swarms.periodic import stale_runs_recover
from tests.runs.conftest import events_of, wait_terminal, wait_until

pytestmark = pytest.mark.usefixtures("executing")

GATED_YAML = """\
topology: parallel
limits: {max_parallel: 2, max_steps: 6, max_tool_calls: 2}
agents:
  - {id: reader, role: worker, model: gpt-4o-mini, max_tokens: 512, replicas: 2,
     tools: [http_fetch], requires_approval: true}
  - {id: merger, role: aggregator, model: gpt-4o-mini, max_tokens: 512}
"""


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


def start(client, page) -> str:
    body = {"template": GATED_YAML, "task": f"Summarise {page.url}", "max_budget_usd": 1}
    response = client.post("/v1/swarms", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["swarm_id"]


def paused(client, run_id: str) -> dict:
    return wait_until(
        client, f"/api/runs/{run_id}", lambda body: body["status"] == "awaiting_approval"
    )


def test_a_gated_run_pauses_and_resumes_once_operators_decide(
    operator, key_client, workspace, page
):
    run_id = start(operator, page)
    body = paused(operator, run_id)
    assert body["status"] == "awaiting_approval" and body["agentsActive"] == 0
    assert page.fetched == []  # nothing ran before a decision
    v1 = operator.get(f"/v1/swarms/{run_id}").json()
    assert v1["status"] == "running"
    waiting = v1["awaiting_approval"]
    assert (waiting["tool"], waiting["pending"]) == ("http_fetch", 2)
    assert waiting["arguments"] == {"url": page.url}

    approvals = operator.get(f"/api/runs/{run_id}/approvals").json()["data"]
    assert sorted(a["agentId"] for a in approvals) == ["reader-1", "reader-2"]
    assert {a["status"] for a in approvals} == {"pending"}
    first, second = sorted(approvals, key=lambda a: a["agentId"])
    url = f"/api/runs/{run_id}/approvals"

    viewer, _, _ = key_client(workspace, Role.VIEWER)
    denied = viewer.post(f"{url}/{first['id']}", {"decision": "approve"}, format="json")
    assert denied.status_code == 403
    bad = operator.post(
        f"{url}/{first['id']}", {"decision": "approve", "arguments": {"url": 5}}, format="json"
    )
    assert bad.status_code == 400 and "url: 5 is not of type 'string'" in bad.json()["detail"]

    edited = {"url": page.url + "?edited=1"}
    answer = operator.post(
        f"{url}/{first['id']}", {"decision": "approve", "arguments": edited}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert (answer.json()["status"], answer.json()["editedArguments"]) == ("approved", edited)
    assert Run.objects.get(pk=run_id).status == "awaiting_approval"  # one still waits
    again = operator.post(f"{url}/{first['id']}", {"decision": "deny"}, format="json")
    assert again.status_code == 409

    answer = operator.post(
        f"{url}/{second['id']}", {"decision": "deny", "reason": "not this site"}, format="json"
    )
    assert answer.status_code == 200
    status = wait_terminal(operator, f"/v1/swarms/{run_id}")
    assert status["status"] == "completed", status
    assert status["awaiting_approval"] is None

    assert page.fetched == ["/hydrogen?edited=1"]  # the edited call ran; the denied one did not
    events = events_of(run_id)
    types = [e.type for e in events]
    assert types.count("approval.requested") == 2 and types.count("approval.decided") == 2
    assert types.count("run.started") == 1  # the resumed attempt did not start it again
    results = {e.agent_id: e.data for e in events if e.type == "tool.result"}
    assert results["reader-2"]["rule_source"] == "operator_denial"
    assert "not this site" in results["reader-2"]["error"]
    assert "error" not in results["reader-1"]

    run = Run.objects.get(pk=run_id)
    assert (run.attempt, run.pauses) == (2, 1)
    # No call was paid twice: every settled call has one checkpoint and one ledger row.
    settled = RunStep.objects.filter(run_id=run_id, status="settled")
    assert settled.count() == len(set(settled.values_list("key", flat=True)))
    ledger = UsageRecord.objects.filter(run_id=run_id)
    assert ledger.count() == settled.count()
    assert run.current_cost_usd == sum((r.cost_usd for r in ledger), Decimal(0)) <= Decimal(1)


def test_a_call_left_undecided_is_denied_at_its_deadline(operator, page, settings):
    run_id = start(operator, page)
    paused(operator, run_id)
    assert stale_runs_recover() == [] and Run.objects.get(pk=run_id).status == "awaiting_approval"
    settings.SVERM_APPROVAL_TIMEOUT_SECONDS = 0
    Approval.objects.filter(run_id=run_id).update(deadline_at="2000-01-01T00:00:00Z")
    stale_runs_recover()
    assert wait_terminal(operator, f"/v1/swarms/{run_id}")["status"] == "completed"
    assert set(Approval.objects.filter(run_id=run_id).values_list("status", flat=True)) == {
        "expired"
    }
    results = [e.data for e in events_of(run_id) if e.type == "tool.result"]
    assert all("no decision within" in r["error"] for r in results) and page.fetched == []


def test_cancelling_a_paused_run_ends_it_at_once(operator, page):
    run_id = start(operator, page)
    paused(operator, run_id)
    spent = Run.objects.get(pk=run_id).current_cost_usd
    answer = operator.delete(f"/v1/swarms/{run_id}")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    run = Run.objects.get(pk=run_id)
    assert run.status == "cancelled" and run.current_cost_usd == spent > 0
    assert set(Approval.objects.filter(run_id=run_id).values_list("status", flat=True)) == {
        "expired"
    }
    first = Approval.objects.filter(run_id=run_id).first()
    late = operator.post(
        f"/api/runs/{run_id}/approvals/{first.pk}", {"decision": "approve"}, format="json"
    )
    assert late.status_code == 409


STEPPED_YAML = """\
topology: sequential
agents:
  - {id: drafter, role: drafter, model: gpt-4o-mini, max_tokens: 256, approve_steps: true}
  - {id: editor, role: editor, model: gpt-4o-mini, max_tokens: 256}
"""


def test_an_agents_step_waits_for_approval_and_takes_the_operators_note(operator):
    body = {"template": STEPPED_YAML, "task": "Outline tidal power", "max_budget_usd": 1}
    run_id = operator.post("/v1/swarms", body, format="json").json()["swarm_id"]
    paused(operator, run_id)
    (waiting,) = operator.get(f"/api/runs/{run_id}/approvals").json()["data"]
    assert (waiting["tool"], waiting["agentId"]) == ("agent_step", "drafter")
    assert waiting["arguments"] == {"task": "Outline tidal power"}
    url = f"/api/runs/{run_id}/approvals/{waiting['id']}"
    bad = operator.post(url, {"decision": "approve", "arguments": {"nope": 1}}, format="json")
    assert bad.status_code == 400
    answer = operator.post(
        url, {"decision": "approve", "arguments": {"note": "Keep it short."}}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert wait_terminal(operator, f"/v1/swarms/{run_id}")["status"] == "completed"
    assert Run.objects.get(pk=run_id).attempt == 2

"""A run started with `pause_on_budget` whose next call cannot fit pauses (`awaiting_budget` on
/api, `running` with `awaiting_budget` on /v1) instead of failing; `PATCH /api/runs/{id}` raising
`maxBudgetUsd` resumes it on the executor, replaying what it paid; left alone past its deadline
it fails `budget_exceeded` with its partial output."""

from decimal import Decimal

import pytest

from accounts.roles import Role
from billing.models import UsageRecord
from swarms.models import Run, RunStep
from swarms.periodic import stale_runs_recover
from tests.runs.conftest import events_of, wait_terminal, wait_until

pytestmark = pytest.mark.usefixtures("executing")

READERS = """\
topology: parallel
agents:
  - {id: reader, role: worker, model: gpt-4o-mini, max_tokens: 512, replicas: 2,
     tools: [http_fetch]}
  - {id: merger, role: aggregator, model: gpt-4o-mini, max_tokens: 512}
"""


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


def start_at_the_minimum(client, page, **extra) -> str:
    """A run with the least budget its planned calls complete in: the readers' follow-ups,
    which read the page they fetched, are not among them."""
    body = {"template": READERS, "task": f"Summarise {page.url}", **extra}
    refused = client.post("/v1/swarms", {**body, "max_budget_usd": "0.000001"}, format="json")
    assert refused.status_code == 422, refused.content
    least = refused.json()["error"]["details"]["minimum_cost"]
    created = client.post("/v1/swarms", {**body, "max_budget_usd": least}, format="json")
    assert created.status_code == 201, created.content
    return created.json()["swarm_id"]


def test_a_run_that_cannot_pay_its_next_call_pauses_until_its_budget_is_raised(operator, page):
    run_id = start_at_the_minimum(operator, page, pause_on_budget=True)
    body = wait_until(operator, f"/api/runs/{run_id}", lambda b: b["status"] == "awaiting_budget")
    assert body["pauseOnBudget"] is True and body["budgetNeededUsd"] > 0
    assert body["currentCostUsd"] <= body["maxBudgetUsd"]
    v1 = operator.get(f"/v1/swarms/{run_id}").json()
    assert v1["status"] == "running" and v1["awaiting_approval"] is None
    assert v1["awaiting_budget"]["needed_usd"] > 0 and v1["awaiting_budget"]["deadline_at"]
    (paused,) = [e.data for e in events_of(run_id) if e.type == "run.paused"]
    assert paused["reason"] == "budget"

    lower = operator.patch(f"/api/runs/{run_id}", {"maxBudgetUsd": "0.000001"}, format="json")
    assert lower.status_code == 400 and "above the current budget" in lower.json()["detail"]
    raised = operator.patch(f"/api/runs/{run_id}", {"maxBudgetUsd": "1"}, format="json")
    assert raised.status_code == 200, raised.content
    assert raised.json()["maxBudgetUsd"] == 1 and raised.json()["budgetNeededUsd"] is None
    status = wait_terminal(operator, f"/v1/swarms/{run_id}")
    assert status["status"] == "completed", status

    run = Run.objects.get(pk=run_id)
    assert (run.attempt, run.pauses) == (2, 1) and run.max_budget_usd == 1
    settled = RunStep.objects.filter(run_id=run_id, status="settled")
    assert settled.count() == len(set(settled.values_list("key", flat=True)))
    ledger = UsageRecord.objects.filter(run_id=run_id)
    assert ledger.count() == settled.count()
    assert run.current_cost_usd == sum((r.cost_usd for r in ledger), Decimal(0))
    assert len(page.fetched) == 2  # each reader's fetch ran once across both attempts
    types = [e.type for e in events_of(run_id)]
    assert types.count("run.budget_raised") == 1 and types.count("run.started") == 1
    again = operator.patch(f"/api/runs/{run_id}", {"maxBudgetUsd": "2"}, format="json")
    assert again.status_code == 409


def test_without_opting_in_the_same_run_fails_at_its_budget(operator, page):
    run_id = start_at_the_minimum(operator, page)
    status = wait_terminal(operator, f"/v1/swarms/{run_id}")
    assert (status["status"], status["error"]["code"]) == ("failed", "budget_exceeded")


def test_a_budget_pause_left_alone_fails_at_its_deadline(operator, page):
    run_id = start_at_the_minimum(operator, page, pause_on_budget=True)
    wait_until(operator, f"/api/runs/{run_id}", lambda b: b["status"] == "awaiting_budget")
    assert run_id not in stale_runs_recover()  # not due yet
    Run.objects.filter(pk=run_id).update(pause_deadline_at="2000-01-01T00:00:00Z")
    assert run_id in stale_runs_recover()
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.error_code) == ("failed", "budget_exceeded")
    assert "paused for a bigger one" in run.error_message
    assert run.current_cost_usd > 0 and run.current_cost_usd <= run.max_budget_usd

"""Runs through a real OpenAI-compatible HTTP server (tests/llm_server.py), as a user who sets
OPENAI_API_KEY/OPENAI_BASE_URL (and DeepSeek's) gets them: every built-in template completes,
`simulated` is false, the ledger holds one row per answered request with the provider's token
counts, and each agent's reported cost adds up to its ledger rows."""

import time
from decimal import Decimal

import pytest

from accounts.roles import Role
from billing.models import ModelPrice
from sverm.money import money
from swarms.engine.budget import cost_usd
from swarms.engine.types import Price
from swarms.models import Run, RunStep
from templates_app.services import builtin_sources
from tests.llm_server import LLMServer
from tests.runs.conftest import ledger, ledger_total, wait_terminal

pytestmark = pytest.mark.usefixtures("executing")

TASK = "Investigate the Norwegian hydrogen economy"
SIX_PLACES = Decimal("0.000001")


@pytest.fixture
def llm(executing):
    with LLMServer() as server:
        executing.LLM_PROVIDERS = server.provider_settings()
        yield server


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


def run_to_end(client, template: str, **extra) -> tuple[str, dict]:
    response = client.post(
        "/v1/swarms", {"template": template, "task": TASK, **extra}, format="json"
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["swarm_id"]
    return run_id, wait_terminal(client, f"/v1/swarms/{run_id}")


@pytest.mark.parametrize("template", sorted(builtin_sources()))
def test_every_builtin_template_completes_through_the_provider(llm, operator, template):
    run_id, status = run_to_end(operator, template, max_budget_usd=5)
    assert status["status"] == "completed", status
    assert status["simulated"] is False

    rows = ledger(run_id)
    answered = [asked for asked in llm.requests if asked.answered]
    assert len(rows) == len(answered) > 0
    prices = {p.model: Price(p.input_per_million, p.output_per_million)
              for p in ModelPrice.objects.all()}  # fmt: skip
    for row in rows:
        assert row.provider in {"openai", "deepseek"}
        assert row.cost_usd == cost_usd(row.tokens_in, row.tokens_out, prices[row.model])
    assert sorted((a.prompt_tokens, a.completion_tokens) for a in answered) == sorted(
        (row.tokens_in, row.tokens_out) for row in rows
    )
    for asked in llm.requests:  # every request named a token limit the budget reserved for
        assert asked.max_tokens is not None and asked.max_tokens > 0

    result = operator.get(f"/v1/swarms/{run_id}/result").json()
    run = Run.objects.get(pk=run_id)
    assert result["output"] == run.output and "says" in run.output
    assert result["cost_report"]["total_usd"] == float(money(ledger_total(run_id)))
    for agent in result["cost_report"]["agents"]:
        share = sum(
            (row.cost_usd for row in rows
             if (row.agent_id, row.model) == (agent["agent_id"], agent["model"])),
            Decimal(0),
        )  # fmt: skip
        assert money(share) <= Decimal(str(agent["cost_usd"])) <= money(share) + SIX_PLACES
    assert run.current_cost_usd == ledger_total(run_id) <= run.max_budget_usd


# --- what a provider bills, and how long a call may take ----------------------------------------
def test_a_provider_over_reporting_tokens_never_takes_a_run_past_its_budget(llm, operator):
    """It reports 100,000 output tokens more than each request's max_tokens: charged as reported
    as far as the budget goes, never past it."""
    llm.behaviour.over_report = 100_000
    run_id, status = run_to_end(operator, "research-swarm-v1", max_budget_usd="0.50")
    assert status["status"] in ("completed", "failed"), status
    run = Run.objects.get(pk=run_id)
    rows = ledger(run_id)
    assert rows and all(row.tokens_out > 100_000 for row in rows)  # the provider's figures
    prices = {p.model: Price(p.input_per_million, p.output_per_million)
              for p in ModelPrice.objects.all()}  # fmt: skip
    reported = sum(cost_usd(r.tokens_in, r.tokens_out, prices[r.model]) for r in rows)
    assert reported > Decimal("0.50")  # what the provider claims is more than the budget...
    assert run.current_cost_usd == ledger_total(run_id) <= Decimal("0.50")  # ...charged: not


def test_failed_attempts_are_retried_and_only_answers_are_charged(llm, operator):
    llm.behaviour.fail_first = 2  # HTTP 500 twice, then answers
    run_id, status = run_to_end(operator, "pipeline-swarm-v1")
    assert status["status"] == "completed", status
    assert len(llm.requests) == len(ledger(run_id)) + 2
    statuses = list(RunStep.objects.filter(run_id=run_id).values_list("status", flat=True))
    assert statuses.count("released") == 2  # refused with a status: not billed, given back
    assert statuses.count("settled") == len(ledger(run_id))


def test_a_timed_out_attempt_stays_held_and_the_retry_answers(llm, operator, executing):
    executing.LLM_TIMEOUT_SECONDS = 0.5
    llm.behaviour.slow_first, llm.behaviour.slow_seconds = 1, 3.0
    run_id, status = run_to_end(operator, "pipeline-swarm-v1")
    assert status["status"] == "completed", status
    interrupted = RunStep.objects.get(run_id=run_id, status="interrupted")
    # It may have been billed: its reservation stayed against the budget, the retry was new.
    assert interrupted.reserved_usd > 0
    assert RunStep.objects.filter(run_id=run_id, key=f"{interrupted.key}~2",
                                  status="settled").exists()  # fmt: skip


def test_a_frozen_provider_fails_the_run_at_the_calls_deadline(llm, operator, executing):
    """It never answers: each attempt times out, and the call gives up at its deadline
    (LLM_CALL_DEADLINE_SECONDS) instead of holding the run for minutes."""
    executing.LLM_TIMEOUT_SECONDS = 0.4
    executing.LLM_CALL_DEADLINE_SECONDS = 1.0
    llm.behaviour.freeze = True
    started = time.monotonic()
    _, status = run_to_end(operator, "pipeline-swarm-v1")
    assert time.monotonic() - started < 1.0 + 5  # the deadline, plus generous slack
    assert (status["status"], status["error"]["code"]) == ("failed", "provider_error")
    assert "gave no answer within" in status["error"]["message"]
    assert 2 <= len(llm.requests) <= 3  # attempts fit in the deadline, none after it

"""Runs through a real OpenAI-compatible HTTP server (tests/llm_server.py), as a user who sets
OPENAI_API_KEY/OPENAI_BASE_URL (and DeepSeek's) gets them: every built-in template completes,
`simulated` is false, the ledger holds one row per answered request with the provider's token
counts, and each agent's reported cost adds up to its ledger rows."""

from decimal import Decimal

import pytest

from accounts.roles import Role
from billing.models import ModelPrice
from swarms.engine.budget import cost_usd
from swarms.engine.types import Price
from swarms.models import Run
from swarms.selectors import money
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

"""LLM call latency and errors by provider and model, measured around the provider adapter: runs
through a real OpenAI-compatible HTTP server (tests/llm_server.py) that fails or stalls."""

import pytest
from django.db.models import Sum

from billing.models import UsageRecord
from tests.llm_server import LLMServer
from tests.metrics.conftest import increase, scrape
from tests.runs.conftest import wait_terminal

TEMPLATE = "pipeline-swarm-v1"


@pytest.fixture
def llm(executing):
    with LLMServer() as server:
        executing.LLM_PROVIDERS = server.provider_settings()
        yield server


def run_to_end(client) -> tuple[str, dict]:
    response = client.post(
        "/v1/swarms", {"template": TEMPLATE, "task": "Grid storage"}, format="json"
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["swarm_id"]
    return run_id, wait_terminal(client, f"/v1/swarms/{run_id}")


def test_failed_attempts_count_as_errors_of_their_provider_and_model(llm, api_client, workspace):
    llm.behaviour.fail_first = 2  # HTTP 500 twice (retried), then answers
    before = scrape()
    run_id, status = run_to_end(api_client)
    assert status["status"] == "completed", status
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return increase(before, after, name, **labels)

    rows = UsageRecord.objects.filter(run_id=run_id)
    [(provider, model)] = {(row.provider, row.model) for row in rows[:1]}
    first_model = llm.requests[0].model
    assert grew("sverm_llm_call_errors_total", error="retryable") == 2
    # The two failures were the run's first two requests, to its first agent's model.
    assert grew("sverm_llm_call_errors_total", model=first_model, error="retryable") == 2
    assert grew("sverm_llm_call_errors_total", provider="simulated") == 0
    # Every attempt is timed: the answered ones (a ledger row each) and the two failures.
    assert grew("sverm_llm_call_duration_seconds_count") == rows.count() + 2
    assert grew("sverm_llm_call_duration_seconds_count", provider=provider, model=model) >= 1
    tokens_in = rows.aggregate(total=Sum("tokens_in"))["total"]
    assert grew("sverm_llm_tokens_total", direction="in") == tokens_in


def test_an_attempt_that_outlives_its_time_limit_is_a_timeout(
    llm, api_client, workspace, executing
):
    executing.LLM_TIMEOUT_SECONDS = 0.5
    llm.behaviour.slow_first, llm.behaviour.slow_seconds = 1, 3.0
    before = scrape()
    _run_id, status = run_to_end(api_client)
    assert status["status"] == "completed", status
    after = scrape()
    assert increase(before, after, "sverm_llm_call_errors_total", error="timeout") == 1
    assert increase(before, after, "sverm_llm_call_errors_total") == 1
    # Its latency is the time limit's, not the server's 3 s.
    [model] = {asked.model for asked in llm.requests[:1]}
    bucket = "sverm_llm_call_duration_seconds_bucket"
    assert increase(before, after, bucket, model=model, le="1.0") >= 1

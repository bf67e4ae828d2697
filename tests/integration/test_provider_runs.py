"""docker-compose.yml's layout (Uvicorn workers, a Celery worker with its thread pool, beat) on
PostgreSQL and Redis, with OpenAI's and DeepSeek's endpoints pointing at a real
OpenAI-compatible HTTP server: every built-in template completes over the HTTP API, with
`simulated: false` and a cost report equal to the ledger the worker wrote. On 52531cc every
such run failed at once (a database query on the run's event loop). The web-research template
then runs with the provider asking for `http_fetch` of a real page on loopback."""

import httpx
import pytest

from billing.models import UsageRecord
from tests.llm_server import LLMServer
from tests.provider_runs import LedgerRow, check_every_template, check_tool_run
from tests.web_page import PageServer

pytestmark = pytest.mark.integration


def ledger(run_id: str) -> list[LedgerRow]:
    rows = UsageRecord.objects.filter(run_id=run_id).values_list(
        "agent_id", "model", "provider", "tokens_in", "tokens_out", "cost_usd"
    )
    return [LedgerRow(*row) for row in rows]


def test_every_builtin_template_runs_through_a_real_provider(start_production_stack):
    with LLMServer() as llm:
        stack = start_production_stack(
            SVERM_TOOL_FETCH_ALLOWED_HOSTS="127.0.0.1", **llm.provider_env()
        )
        headers = stack.api_key(email="llm@example.com")
        with (
            httpx.Client(base_url=stack.base, headers=headers, timeout=10) as http,
            PageServer() as page,
        ):
            check_every_template(http, llm, ledger)
            check_tool_run(http, llm, page.url, ledger)
        assert "Traceback" not in stack.log("worker")

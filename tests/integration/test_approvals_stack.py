"""Approval gates in docker-compose's layout (Uvicorn workers, a Celery worker and beat on
PostgreSQL and Redis), with a real OpenAI-compatible provider asking for `http_fetch` of a real
page: the run pauses holding no worker, the worker is SIGKILLed while it waits and a new one
started, operators decide over HTTP, and the run resumes on the new worker and completes with
every provider request charged once and only the approved fetch made."""

import os
import signal
from decimal import Decimal

import httpx
import pytest

from billing.models import UsageRecord
from swarms.models import Run, RunStep
from tests.llm_server import LLMServer
from tests.waiting import wait_for
from tests.web_page import PageServer

pytestmark = pytest.mark.integration

GATED = """\
topology: parallel
agents:
  - {id: reader, role: worker, model: gpt-4o-mini, max_tokens: 256, replicas: 2,
     tools: [http_fetch], requires_approval: true}
  - {id: merger, role: aggregator, model: gpt-4o-mini, max_tokens: 256}
"""


def test_a_paused_run_survives_its_worker_and_resumes_on_another_once_decided(
    start_production_stack,
):
    with LLMServer() as llm, PageServer() as page:
        llm.behaviour.tool_call = {"name": "http_fetch", "arguments": {"url": page.url}}
        stack = start_production_stack(
            SVERM_TOOL_FETCH_ALLOWED_HOSTS="127.0.0.1", **llm.provider_env()
        )
        headers = stack.api_key(email="gates@example.com")
        with httpx.Client(base_url=stack.base, headers=headers, timeout=30) as http:
            body = {"template": GATED, "task": f"Summarise {page.url}", "max_budget_usd": 2}
            created = http.post("/v1/swarms", json=body)
            assert created.status_code == 201, created.text
            run_id = created.json()["swarm_id"]
            wait_for(
                lambda: http.get(f"/api/runs/{run_id}").json()["status"] == "awaiting_approval",
                timeout=60,
            )
            asked_before = [a for a in llm.requests if a.answered]
            assert len(asked_before) == 2 and page.fetched == []

            worker = stack.processes["worker"]
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            stack.start("worker")

            approvals = http.get(f"/api/runs/{run_id}/approvals").json()["data"]
            first, second = sorted(approvals, key=lambda a: a["agentId"])
            approved = http.post(
                f"/api/runs/{run_id}/approvals/{first['id']}", json={"decision": "approve"}
            )
            assert approved.status_code == 200, approved.text
            denied = http.post(
                f"/api/runs/{run_id}/approvals/{second['id']}",
                json={"decision": "deny", "reason": "one page is enough"},
            )
            assert denied.status_code == 200, denied.text
            wait_for(
                lambda: http.get(f"/v1/swarms/{run_id}").json()["status"] == "completed",
                timeout=60,
            )

        assert page.fetched == ["/hydrogen"]
        answered = [a for a in llm.requests if a.answered]
        # The readers' first calls were not asked again: two follow-ups and the merger.
        assert len(answered) == 5
        rows = UsageRecord.objects.filter(run_id=run_id)
        assert rows.exclude(provider="tool").count() == len(answered)
        settled = RunStep.objects.filter(run_id=run_id, status="settled")
        assert settled.count() == len(set(settled.values_list("key", flat=True))) == rows.count()
        run = Run.objects.get(pk=run_id)
        assert (run.attempt, run.pauses) == (2, 1)
        assert run.current_cost_usd == sum((r.cost_usd for r in rows), Decimal(0))

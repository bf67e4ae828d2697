"""Every built-in template run over HTTP against a real sverm process whose providers point at
the tests' OpenAI-compatible server (tests/llm_server.py), checked as a user would read it: the
run completes, says `simulated: false`, and its cost report agrees with the ledger row by row.
Shared by the embedded-mode test and the production-layout test."""

import json
import time
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

import httpx
import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from swarms.engine.types import Usage as LedgerRow  # a ledger row's fields, as the engine's
from tests.llm_server import LLMServer

TASK = "Investigate the Norwegian hydrogen economy"
TEMPLATES = (
    "brainstorm-swarm-v1", "code-review-swarm-v1", "debate-swarm-v1", "pipeline-swarm-v1",
    "research-swarm-v1", "web-research-swarm-v1", "writing-swarm-v1",
)  # fmt: skip
SIX_PLACES = Decimal("0.000001")


def wait_terminal(http: httpx.Client, run_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while (status := http.get(f"/v1/swarms/{run_id}").json())["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} did not end: {status}")
        time.sleep(0.2)
    return status


def check_every_template(
    http: httpx.Client, llm: LLMServer, ledger: Callable[[str], list[LedgerRow]]
) -> None:
    """Start every built-in template at once, then check each run's status, result and ledger."""
    started = {}
    for template in TEMPLATES:
        response = http.post(
            "/v1/swarms", json={"template": template, "task": TASK, "max_budget_usd": 5}
        )
        assert response.status_code == 201, response.text
        started[template] = response.json()["swarm_id"]
    rows_seen = 0
    for template, run_id in started.items():
        status = wait_terminal(http, run_id)
        assert status["status"] == "completed", (template, status)
        assert status["simulated"] is False, template
        result = http.get(f"/v1/swarms/{run_id}/result").json()
        assert " says " in result["output"], result["output"][:200]
        rows = ledger(run_id)
        assert rows, template
        rows_seen += len(rows)
        assert {row.provider for row in rows} <= {"openai", "deepseek"}
        total = sum((row.cost_usd for row in rows), Decimal(0))
        report = result["cost_report"]
        assert Decimal(str(report["total_usd"])) == total.quantize(SIX_PLACES, ROUND_DOWN)
        assert report["total_tokens"] == sum(row.tokens_in + row.tokens_out for row in rows)
        assert total <= Decimal(5)
        for agent in report["agents"]:
            mine = [r for r in rows if (r.agent_id, r.model) == (agent["agent_id"], agent["model"])]
            share = sum((row.cost_usd for row in mine), Decimal(0)).quantize(SIX_PLACES, ROUND_DOWN)
            assert share <= Decimal(str(agent["cost_usd"])) <= share + SIX_PLACES
            assert agent["tokens_out"] == sum(row.tokens_out for row in mine)
    answered = [asked for asked in llm.requests if asked.answered]
    # One ledger row per request the provider answered (and so billed), none missing.
    assert rows_seen == len(answered)


def check_tool_run(
    http: httpx.Client, llm: LLMServer, page_url: str, ledger: Callable[[str], list[LedgerRow]]
) -> None:
    """The web-research template with the provider asking for `http_fetch` of `page_url` (a
    real page on loopback, allowed by the server's SVERM_TOOL_FETCH_ALLOWED_HOSTS): each
    researcher's turn is a tool call, the page's text sent back as the call's answer, and an
    answer; every request the provider answered is one ledger row; the events say it all."""
    llm.behaviour.tool_call = {"name": "http_fetch", "arguments": {"url": page_url}}
    before = len(llm.requests)
    body = {"template": "web-research-swarm-v1", "task": f"Read {page_url}", "max_budget_usd": 2}
    response = http.post("/v1/swarms", json=body)
    assert response.status_code == 201, response.text
    run_id = response.json()["swarm_id"]
    status = wait_terminal(http, run_id)
    assert status["status"] == "completed", status
    asked = llm.requests[before:]
    offered = [a for a in asked if a.tools == ["http_fetch"]]
    assert len(offered) == 6  # three researchers, each asking for the page and then answering
    answers = [m for a in offered for m in a.messages if m.get("role") == "tool"]
    assert len(answers) == 3
    for answer in answers:
        assert "Title: Hydrogen in Norway" in answer["content"]
        assert (
            "2 GW of electrolysers" in answer["content"] and "var secret" not in answer["content"]
        )
    rows = ledger(run_id)
    # One ledger row per request the provider answered, and one per fetch, at no cost.
    assert len([r for r in rows if r.provider != "tool"]) == sum(1 for a in asked if a.answered)
    fetches = [r for r in rows if r.provider == "tool"]
    assert [(r.model, r.cost_usd) for r in fetches] == [("tool:http_fetch", 0)] * 3
    events = http.get(f"/api/runs/{run_id}/events", params={"limit": 100}).json()["data"]
    results = [e["data"] for e in events if e["type"] == "tool.result"]
    assert len(results) == 3 and all("error" not in r for r in results), results
    report = http.get(f"/api/runs/{run_id}/result").json()["costReport"]
    assert [(t["tool"], t["calls"], t["errors"]) for t in report["tools"]] == [("http_fetch", 3, 0)]
    # The run's stream carries the tool events too (a finished run replays, then closes).
    streamed = stream_types(http, run_id)
    assert streamed.count("tool.called") == streamed.count("tool.result") == 3
    assert streamed[-1] == "run.completed"
    llm.behaviour.tool_call = None


def stream_types(http: httpx.Client, run_id: str) -> list[str]:
    """The types of what `/v1/swarms/{id}/stream` sends for a finished run, over a real
    WebSocket to the same server, with the client's API key."""
    url = str(http.base_url).replace("http://", "ws://").rstrip("/")
    headers = {"Authorization": http.headers["Authorization"]}
    types = []
    with connect(f"{url}/v1/swarms/{run_id}/stream", additional_headers=headers) as socket:
        try:
            while True:
                types.append(json.loads(socket.recv(timeout=10))["type"])
        except ConnectionClosedOK:
            return [t for t in types if t != "run.status"]

"""`GET /api/runs/{id}/wait`: a script's one call that answers when the run has finished (or waits
for an operator), or when its timeout passes, with the run as `GET /api/runs/{id}` shows it."""

import threading
import time

import pytest

from accounts.roles import Role
from swarms import selectors
from swarms.models import Run
from tests.runs.conftest import wait_until

pytestmark = pytest.mark.usefixtures("executing")

GATED_YAML = """\
topology: parallel
limits: {max_parallel: 2, max_steps: 6, max_tool_calls: 2}
agents:
  - {id: reader, role: worker, model: gpt-4o-mini, max_tokens: 512,
     tools: [http_fetch], requires_approval: true}
  - {id: merger, role: aggregator, model: gpt-4o-mini, max_tokens: 512}
"""


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


@pytest.fixture
def viewer(key_client, workspace):
    client, _, _ = key_client(workspace, Role.VIEWER)
    return client


def start(client, template="research-swarm-v1", **extra) -> str:
    body = {"template": template, "task": "Wind power in Norway", "max_budget_usd": 2, **extra}
    response = client.post("/v1/swarms", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["swarm_id"]


def test_a_viewer_waits_until_the_run_has_finished(operator, viewer, executing):
    executing.SVERM_SIMULATED_LATENCY = 0.05
    run_id = start(operator)
    response = viewer.get(f"/api/runs/{run_id}/wait", {"timeout": 60})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed", body
    assert body["completedAt"] and body["progress"] == 1
    assert body == viewer.get(f"/api/runs/{run_id}").json()


def test_the_timeout_answers_with_the_run_as_it_is(operator, executing):
    executing.SVERM_SIMULATED_LATENCY = 0.5
    run_id = start(operator)
    started = time.monotonic()
    response = operator.get(f"/api/runs/{run_id}/wait", {"timeout": "0.3"})
    waited = time.monotonic() - started
    assert response.status_code == 200, response.content
    assert response.json()["status"] in ("queued", "running")
    assert waited >= 0.3
    at_once = operator.get(f"/api/runs/{run_id}/wait", {"timeout": 0})
    assert at_once.json()["status"] in ("queued", "running")
    operator.post(f"/api/runs/{run_id}/cancel")
    ended = operator.get(f"/api/runs/{run_id}/wait").json()
    assert ended["status"] == "cancelled"


def test_a_run_waiting_for_an_operator_answers_at_once(operator, page):
    run_id = start(operator, GATED_YAML, task=f"Summarise {page.url}")
    wait_until(operator, f"/api/runs/{run_id}", lambda b: b["status"] == "awaiting_approval")
    started = time.monotonic()
    body = operator.get(f"/api/runs/{run_id}/wait", {"timeout": 60}).json()
    assert body["status"] == "awaiting_approval"
    assert time.monotonic() - started < 30  # not the timeout
    operator.post(f"/api/runs/{run_id}/cancel")
    assert operator.get(f"/api/runs/{run_id}/wait").json()["status"] == "cancelled"


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "301", "soon", ""])
def test_a_bad_timeout_is_a_400_naming_it(operator, timeout):
    run_id = start(operator)
    response = operator.get(f"/api/runs/{run_id}/wait", {"timeout": timeout})
    assert response.status_code == 400, response.content
    body = response.json()
    assert [error["field"] for error in body["errors"]] == ["timeout"], body


def test_an_unknown_or_foreign_run_is_a_404(operator, key_client, other_workspace):
    run_id = start(operator)
    stranger, _, _ = key_client(other_workspace, Role.ADMIN)
    assert stranger.get(f"/api/runs/{run_id}/wait", {"timeout": 0}).status_code == 404
    assert operator.get("/api/runs/run_00000000000000000000000000/wait").status_code == 404


def test_past_the_waiters_a_process_allows_the_next_gets_a_503_to_retry(
    operator, executing, monkeypatch
):
    executing.SVERM_SIMULATED_LATENCY = 0.2
    monkeypatch.setattr(selectors, "_WAITERS", threading.BoundedSemaphore(1))
    run_id = start(operator)
    assert selectors._WAITERS.acquire(blocking=False)  # one request waits already
    try:
        refused = operator.get(f"/api/runs/{run_id}/wait", {"timeout": 5})
    finally:
        selectors._WAITERS.release()
    assert refused.status_code == 503, refused.content
    assert refused["Retry-After"] == "1"
    assert refused.json()["code"] == "service_unavailable"
    assert operator.get(f"/api/runs/{run_id}/wait", {"timeout": 60}).json()["status"] in (
        "completed",
        "failed",
    )
    assert Run.objects.get(pk=run_id).status == "completed"

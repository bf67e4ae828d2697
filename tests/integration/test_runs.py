"""Runs over the real stack: Daphne takes the request, a Celery worker on Redis executes it,
PostgreSQL holds the run, its events and the ledger."""

import re
import time
from decimal import Decimal

import httpx
import pytest

from tests.processes import manage

pytestmark = pytest.mark.integration

TERMINAL = {"completed", "failed", "cancelled"}


def api_key(stack_env) -> dict[str, str]:
    # The team plan's 300 requests a minute leave room for polling; limits stay on.
    out = manage(
        stack_env, "bootstrap", "--email", "runs@example.com", "--password", "Pa55-word!x",
        "--plan", "team",
    )  # fmt: skip
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    return {"Authorization": f"Bearer {key}"}


def wait_for_status(http, url, headers, statuses, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get(url, headers=headers).json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_a_celery_worker_runs_a_swarm_to_completion_and_cancels_another(
    server, celery_worker, stack_env
):
    headers = api_key(stack_env)
    with httpx.Client(base_url=server, timeout=30) as http:
        started = http.post(
            "/v1/swarms",
            json={"template": "research-swarm-v1", "task": "Norwegian hydrogen economy",
                  "max_budget_usd": 2.50},
            headers=headers,
        )  # fmt: skip
        assert started.status_code == 201, started.text
        run_id = started.json()["swarm_id"]

        doomed = http.post(
            "/v1/swarms",
            json={"template": "research-swarm-v1", "task": "Something to abandon"},
            headers=headers,
        ).json()["swarm_id"]
        running = wait_for_status(http, f"/v1/swarms/{doomed}", headers, {"running", *TERMINAL})
        assert running["status"] == "running", running
        cancelled = http.delete(f"/v1/swarms/{doomed}", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] in {"running", "cancelled"}  # as it stands: no wait
        stopped = wait_for_status(http, f"/v1/swarms/{doomed}", headers, TERMINAL)
        assert stopped["status"] == "cancelled"

        done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL)
        assert done["status"] == "completed", done
        assert done["progress"] == 1.0 and done["simulated"] is True
        result = http.get(f"/v1/swarms/{run_id}/result", headers=headers).json()
        report = result["cost_report"]
        total = Decimal(str(report["total_usd"]))
        assert 0 < total <= Decimal("2.50")
        assert sum(Decimal(str(a["cost_usd"])) for a in report["agents"]) == total
        assert {a["agent_id"] for a in report["agents"]} >= {"manager", "writer"}
        assert result["output"] and result["completed_at"]

        events = http.get(f"/api/runs/{run_id}/events", headers=headers).json()["data"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.completed"

        stopped = http.get(f"/v1/swarms/{doomed}/result", headers=headers).json()
        assert stopped["status"] == "cancelled"
        assert Decimal(str(stopped["cost_report"]["total_usd"])) <= Decimal("5.00")

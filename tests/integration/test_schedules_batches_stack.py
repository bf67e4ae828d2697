"""Schedules and batches in docker-compose's layout (Uvicorn x2, a Celery worker, Celery beat, on
PostgreSQL and Redis): beat's one-second tick fires a schedule created over HTTP once per slot
(each firing's run made by the worker's claim in the database, never twice), and a batch over
a template completes every item within its total budget, its results downloadable as JSONL.

The schedule fires every 2 seconds through cron's sixth (seconds) field, which the stack allows
only because this test sets SVERM_SCHEDULE_SECONDS_FIELD (production keeps minute granularity)."""

import json
import time
from decimal import Decimal

import httpx
import pytest

from swarms.models import Run

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 60


def wait_for(http: httpx.Client, url: str, done) -> dict:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        body = http.get(url).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.5)


def test_beat_fires_a_schedule_once_per_slot_and_a_batch_completes(start_production_stack):
    stack = start_production_stack(
        SVERM_SCHEDULE_TICK_SECONDS="1", SVERM_SCHEDULE_SECONDS_FIELD="1",
        SVERM_SIMULATED_LATENCY="0.05",
    )  # fmt: skip
    headers = stack.api_key(email="cron@example.com")
    with httpx.Client(base_url=stack.base, headers=headers, timeout=30) as http:
        workspace_id = http.get("/api/workspaces").json()["data"][0]["id"]
        swarm = http.post("/api/swarms", json={"workspaceId": workspace_id, "name": "Tick"})
        assert swarm.status_code == 201, swarm.text
        made = http.post("/api/schedules", json={
            "workspaceId": workspace_id, "name": "Every 2 s", "swarmId": swarm.json()["id"],
            "task": "Say the time", "cron": "* * * * * */2", "maxBudgetUsd": "1",
            "overlapPolicy": "queue", "maxRuns": 3,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        schedule_id = made.json()["id"]

        batch = http.post("/api/batches", json={
            "templateId": "pipeline-swarm-v1", "totalBudgetUsd": "1", "concurrency": 2,
            "inputs": [f"Brief {n}" for n in range(5)],
        })  # fmt: skip
        assert batch.status_code == 201, batch.text
        batch_id = batch.json()["id"]

        shown = wait_for(http, f"/api/schedules/{schedule_id}", lambda b: b["state"] == "ended")
        assert (shown["runsMade"], shown["nextRunAt"]) == (3, None)
        firings = http.get(f"/api/schedules/{schedule_id}/firings").json()["data"]
        started = [row for row in firings if row["outcome"] == "started"]
        assert len(started) == 3
        assert len({row["slotAt"] for row in firings}) == len(firings)  # no slot twice
        run_ids = {row["runId"] for row in started}
        assert len(run_ids) == 3
        for run_id in run_ids:
            wait_for(http, f"/api/runs/{run_id}", lambda b: b["status"] == "completed")
        # Runs of the schedule's swarm: exactly those the firings name, whatever ticked twice.
        assert set(Run.objects.filter(swarm_id=swarm.json()["id"]).values_list("pk", flat=True)) \
            == run_ids  # fmt: skip

        done = wait_for(http, f"/api/batches/{batch_id}", lambda b: b["status"] == "completed")
        assert done["counts"]["completed"] == 5, done
        assert Decimal(str(done["costUsd"])) <= Decimal("1")
        results = http.get(f"/api/batches/{batch_id}/results")
        assert results.status_code == 200
        assert results.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in results.text.splitlines() if line]
        assert [line["status"] for line in lines] == ["completed"] * 5
        assert sum(Decimal(str(line["costUsd"])) for line in lines) == Decimal(str(done["costUsd"]))
    assert "Traceback" not in stack.log("worker") + stack.log("web")

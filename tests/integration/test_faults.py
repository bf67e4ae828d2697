"""Faults injected for real into the running stack: a Celery worker SIGKILLed mid-run, and
PostgreSQL dropping the worker's connections mid-run. Neither leaves a run stuck, charges a call
twice, or loses or repeats an event."""

import os
import signal
import socket
import time
import uuid
from collections import Counter
from decimal import Decimal

import httpx
import pytest
from django.db import connection

from billing.models import UsageRecord
from sverm.money import money
from swarms.models import Run, RunStep
from tests.integration.conftest import spawn
from tests.integration.test_runs import TERMINAL, api_key, wait_for_status
from tests.processes import stop

pytestmark = pytest.mark.integration

# Fast recovery, so a lost worker is noticed in seconds rather than a minute.
RECOVERY = {
    "SVERM_HEARTBEAT_SECONDS": "0.5",
    "SVERM_STALE_AFTER_SECONDS": "3",
    "SVERM_REAPER_INTERVAL_SECONDS": "1",
    "SVERM_SIMULATED_LATENCY": "0.7",
}


@pytest.fixture
def recovery_env(stack_env):
    stack_env.update(RECOVERY)
    return stack_env


def start_worker(env, tmp_path, label: str):
    name = f"sverm-{label}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    return spawn(
        env, tmp_path, label,
        "celery", "-A", "sverm", "worker", "--pool=solo", "--concurrency=1",
        "--without-gossip", "--without-mingle", "-n", name, "--loglevel=INFO",
    )  # fmt: skip


@pytest.fixture
def beat(recovery_env, tmp_path):
    """Celery beat: it runs the reaper every second here (every 30 s by default)."""
    process = spawn(
        recovery_env, tmp_path, "beat",
        "celery", "-A", "sverm", "beat", "-s", str(tmp_path / "beat-schedule"), "--loglevel=INFO",
    )  # fmt: skip
    yield process
    stop(process)


def start_run(http, headers) -> str:
    response = http.post(
        "/v1/swarms",
        json={"template": "research-swarm-v1", "task": "Norwegian hydrogen economy",
              "max_budget_usd": 2.50},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()["swarm_id"]


def wait_for_events(http, run_id, headers, event_type, count=1, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = http.get(f"/api/runs/{run_id}/events?limit=100", headers=headers).json()["data"]
        if sum(event["type"] == event_type for event in events) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"run {run_id} wrote no {count} x {event_type} within {timeout} s")


def assert_one_clean_run(http, run_id, headers) -> Run:
    """Completed, every settled call charged exactly once, one unbroken stream."""
    run = Run.objects.get(pk=run_id)
    assert run.status == "completed", (run.error_code, run.error_message)
    settled = list(RunStep.objects.filter(run_id=run_id, status="settled"))
    assert len({step.key for step in settled}) == len(settled)  # no call settled twice
    ledger = list(UsageRecord.objects.filter(run_id=run_id))
    assert len(ledger) == len(settled)
    total = sum((row.cost_usd for row in ledger), Decimal(0))
    assert total == sum((step.cost_usd for step in settled), Decimal(0))
    assert run.current_cost_usd == total <= run.max_budget_usd
    events = http.get(f"/api/runs/{run_id}/events?limit=100", headers=headers).json()["data"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    types = Counter(event["type"] for event in events)
    assert types["run.started"] == 1 and types["run.completed"] == 1
    assert events[-1]["type"] == "run.completed"
    assert types["agent.completed"] == len(settled)
    result = http.get(f"/v1/swarms/{run_id}/result", headers=headers).json()
    assert Decimal(str(result["cost_report"]["total_usd"])) == money(total)
    return run


def test_a_worker_sigkilled_mid_run_is_replaced_and_the_run_resumes_charging_each_call_once(
    recovery_env, server, beat, tmp_path
):
    headers = api_key(recovery_env)
    doomed = start_worker(recovery_env, tmp_path, "doomed")
    survivor = None
    try:
        with httpx.Client(base_url=server, timeout=30) as http:
            run_id = start_run(http, headers)
            wait_for_events(http, run_id, headers, "agent.completed")  # the plan is settled
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)
            assert Run.objects.get(pk=run_id).status == "running"  # left behind, mid-run
            survivor = start_worker(recovery_env, tmp_path, "survivor")
            done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL, timeout=90)
            assert done["status"] == "completed", done
            run = assert_one_clean_run(http, run_id, headers)
            assert run.attempt == 2
            settled_by = {step.attempt for step in RunStep.objects.filter(run_id=run_id)}
            assert settled_by == {1, 2}  # the first attempt's work was kept, not redone
    finally:
        if doomed.poll() is None:
            doomed.kill()
        if survivor is not None:
            stop(survivor)


def test_postgresql_dropping_the_workers_connections_mid_run_is_survived(
    recovery_env, server, beat, tmp_path
):
    headers = api_key(recovery_env)
    worker = start_worker(recovery_env, tmp_path, "worker")
    try:
        with httpx.Client(base_url=server, timeout=30) as http:
            run_id = start_run(http, headers)
            for completed in (1, 2):
                wait_for_events(http, run_id, headers, "agent.completed", count=completed)
                with connection.cursor() as cursor:  # every other session of this database
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                    assert cursor.fetchall(), "no connection was there to drop"
            done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL, timeout=90)
            assert done["status"] == "completed", done
            assert_one_clean_run(http, run_id, headers)
    finally:
        stop(worker)
        # The termination dropped this test process's other pooled connections too: later
        # tests start on a fresh pool rather than on one still replacing them.
        connection.close()
        connection.close_pool()

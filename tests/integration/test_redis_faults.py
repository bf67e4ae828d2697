"""Redis faults in docker-compose.yml's layout (`start_production_stack`: its web, worker and beat
with the commands compose gives them, on PostgreSQL) with a redis-server of the test's own that
is SIGKILLed and started again on its port (without persistence: the restart forgets every
queued message, as a Redis without AOF does).

1. Redis restarts while runs execute: the worker survives, new runs complete, the runs that
   were in flight complete.
2. Redis is down: reads of runs answer without it, a run can still be created (201, executed
   once Redis is back), the rate limit goes on counting in the server's memory, and what cannot
   be queued (a manual webhook redelivery) answers 503 with Retry-After.
"""

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.conftest import ROOT
from tests.integration.test_faults import RECOVERY
from tests.integration.test_runs import TERMINAL, wait_for_status
from tests.processes import free_port
from tests.test_compose import as_argv, load_compose
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# Lost runs noticed in seconds (as in test_faults.py), with calls of about a second, so runs are
# in flight when Redis goes.
FAST_RECOVERY = {**RECOVERY, "SVERM_SIMULATED_LATENCY": "1.0"}


def post_run(http, headers, task: str, **extra) -> str:
    response = http.post(
        "/v1/swarms",
        json={"template": "research-swarm-v1", "task": task, "max_budget_usd": 2.50, **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["swarm_id"]


def wait_running(http, headers, run_id: str) -> None:
    """Until the run has settled a call (so it is mid-run)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = http.get(f"/api/runs/{run_id}/events?limit=100", headers=headers).json()["data"]
        if any(event["type"] == "agent.completed" for event in events):
            return
        time.sleep(0.1)
    pytest.fail(f"run {run_id} settled no call within 60 s")


def test_the_worker_survives_a_redis_restart_with_runs_in_flight(
    start_production_stack, redis_server
):
    stack = start_production_stack(REDIS_URL=redis_server.url, **FAST_RECOVERY)
    headers = stack.api_key()
    worker = stack.processes["worker"]
    assert "--pool=threads" in stack.commands["worker"]  # the pool whose restart killed it
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        in_flight = [post_run(http, headers, f"Before the restart {n}") for n in range(3)]
        for run_id in in_flight:
            wait_running(http, headers, run_id)
        assert all(
            http.get(f"/v1/swarms/{run_id}", headers=headers).json()["status"] == "running"
            for run_id in in_flight
        )

        redis_server.kill()
        time.sleep(1.5)  # the outage: the test is about a restart after Redis was gone this long
        redis_server.start()
        # The worker's consumer says "Connected to" again once it reconnected (before the fix,
        # the worker died instead).
        wait_for(
            lambda: worker.poll() is not None or stack.log("worker").count("Connected to") > 1,
            "the worker's reconnect (or exit)", timeout=60, interval=0.2,
        )  # fmt: skip
        worker_log = stack.log("worker")
        assert worker.poll() is None, "the worker exited:\n" + worker_log[-3000:]
        assert "Connection to broker lost" in worker_log  # the restart was seen

        after = [post_run(http, headers, f"After the restart {n}") for n in range(3)]
        for run_id in after + in_flight:
            done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL, timeout=90)
            assert done["status"] == "completed", done
    # Compose's health check of the worker passes too (its control channel reconnected).
    healthcheck = as_argv(load_compose()["services"]["worker"]["healthcheck"]["test"])
    assert healthcheck[:5] == ["celery", "-A", "sverm", "inspect", "ping"], healthcheck
    healthcheck = [arg.replace("$HOSTNAME", socket.gethostname()) for arg in healthcheck]
    pong = subprocess.run(
        [sys.executable, "-m", *healthcheck],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert pong.returncode == 0 and "pong" in pong.stdout, pong.stdout + pong.stderr
    worker_log = stack.log("worker")
    assert worker.poll() is None
    assert "Unrecoverable error" not in worker_log
    assert "Traceback" not in worker_log, worker_log[-3000:]


READS = (
    "/v1/swarms/{run}",
    "/v1/swarms/{run}/result",
    "/v1/swarms?limit=5",
    "/api/runs/{run}",
    "/api/runs/{run}/result",
    "/api/runs/{run}/events?limit=20",
    "/api/runs?limit=5",
    "/v1/usage",
)


def test_with_redis_down_runs_are_read_and_created_and_executed_once_it_is_back(
    start_production_stack, redis_server
):
    stack = start_production_stack(
        REDIS_URL=redis_server.url, **FAST_RECOVERY,
        # One Uvicorn process: the limit is counted in its memory during the outage, and the
        # outage is logged once per process.
        WEB_CONCURRENCY="1",
        # A webhook to this machine (that nobody answers) is allowed, to redeliver one.
        SVERM_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
    )  # fmt: skip
    headers = stack.api_key()
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        # A finished run with a webhook, to redeliver during the outage.
        hooked = post_run(
            http, headers, "With a webhook", webhook_url=f"http://127.0.0.1:{free_port()}/hook"
        )
        done = wait_for_status(http, f"/v1/swarms/{hooked}", headers, TERMINAL)
        assert done["status"] == "completed", done
        stack.stop("worker")
        # No worker now: this run's task waits in Redis, and the restart below forgets it.
        before = post_run(http, headers, "Queued before the outage")
        redis_server.kill()

        remaining = []
        for path in READS * 2:
            response = http.get(path.format(run=before), headers=headers)
            assert response.status_code == 200, (path, response.status_code, response.text)
            remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        # Counted meanwhile in the server's memory: every request took one from the limit.
        assert remaining == list(range(remaining[0], remaining[0] - len(remaining), -1))
        # A run can still be created: its row is committed, and its task (the broker being
        # down) is sent again once a worker can take it.
        during = post_run(http, headers, "Created during the outage")
        assert http.get(f"/api/runs/{during}", headers=headers).json()["status"] == "queued"
        assert http.get(f"/v1/swarms/{during}", headers=headers).json()["status"] == "running"
        # A manual webhook redelivery cannot be queued: 503, try again later, nothing recorded.
        redeliver = http.post(f"/api/runs/{hooked}/webhook-deliveries", headers=headers)
        assert redeliver.status_code == 503, redeliver.text
        assert redeliver.json()["code"] == "service_unavailable"
        assert int(redeliver.headers["Retry-After"]) > 0
        # What no plan counts is counted per client IP, in memory too: a refused key, an
        # unknown route and the probe still answer as ever, with the headers.
        unknown_key = {"Authorization": "Bearer sk-sverm-unknownunknownunknownunknown"}
        for path, status in (("/v1/swarms", 401), ("/api/nowhere", 404)):
            refused = http.get(path, headers=unknown_key)
            assert refused.status_code == status, (path, refused.text)
            assert int(refused.headers["X-RateLimit-Limit"]) == 60, path
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("error")
        assert int(ready.headers["X-RateLimit-Limit"]) == 1200

        redis_server.start()
        stack.start("worker")
        for run_id in (before, during):
            done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL, timeout=90)
            assert done["status"] == "completed", done
        assert http.get("/readyz").status_code == 200
    logged = stack.log("web")
    assert '" 500' not in logged and "Internal Server Error" not in logged, logged[-3000:]
    # One warning for the whole outage, not one per request, and one when it is over.
    assert logged.count("Redis is unreachable") == 1, logged[-3000:]
    assert logged.count("Redis is reachable again") == 1, logged[-3000:]

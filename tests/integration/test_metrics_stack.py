"""`/metrics` and `/readyz` in docker-compose's layout (two Uvicorn workers, a Celery worker and
beat, on PostgreSQL and Redis) with compose's shared PROMETHEUS_MULTIPROC_DIR: one scrape of any
web worker adds up every process (the runs the Celery worker ended, the WebSockets other web
workers hold), `/readyz` reports the worker's heartbeat, and a worker killed with SIGKILL turns
`/readyz` unready within SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS while its counts stay."""

import re
import time
from contextlib import ExitStack

import httpx
import pytest
from django.db.models import Sum
from websockets.sync.client import connect

from billing.models import UsageRecord
from tests.metrics.conftest import Scrape
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

RUNS = 3
MAX_AGE = 3.0
TOKEN = "stack-metrics-token-0123456789"
TEMPLATE = "research-swarm-v1"
ENDED = "sverm_run_duration_seconds_count"


def scrape(base: str) -> Scrape:
    """One scrape on a connection of its own (so any web worker may answer it)."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.get(f"{base}/metrics", headers=bearer, timeout=10)
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def test_one_scrape_adds_up_the_stack_and_readiness_follows_the_worker(
    start_production_stack, tmp_path
):
    shared = tmp_path / "prometheus"
    stack = start_production_stack(
        SVERM_SIMULATED_LATENCY="0.05",
        SVERM_WORKER_HEARTBEAT_SECONDS="0.5",
        SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS=str(MAX_AGE),
        SVERM_METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(shared),
    )
    headers = stack.api_key()
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        ready = wait_for(
            lambda: (answer := http.get("/readyz")).status_code == 200 and answer.json(),
            "readiness with the worker's heartbeat",
            timeout=30,
            interval=0.2,
        )
        assert ready["checks"]["worker"] == "ok"
        assert ready["workerHeartbeat"]["node"].startswith("celery@")
        assert 0 <= ready["workerHeartbeat"]["ageSeconds"] <= MAX_AGE

        run_ids = []
        for n in range(RUNS):
            created = http.post(
                "/v1/swarms", json={"template": TEMPLATE, "task": f"Tides {n}"}, headers=headers
            )
            assert created.status_code == 201, created.text
            run_ids.append(created.json()["swarm_id"])
        for run_id in run_ids:
            path = f"/v1/swarms/{run_id}"
            wait_for(
                lambda path=path: http.get(path, headers=headers).json()["status"] == "completed",
                f"run {run_id} completed",
                timeout=60,
                interval=0.2,
            )
        [workspace] = http.get("/api/workspaces", headers=headers).json()["data"]

    # The runs ended on the Celery worker, which observed them there; any web worker's scrape
    # counts them (the receiver runs just after the end commits: wait for it).
    labels = {"status": "completed", "template": TEMPLATE}
    wait_for(lambda: scrape(stack.base).total(ENDED, **labels) == RUNS, "the runs' ends")
    ledger = UsageRecord.objects.filter(run_id__in=run_ids).aggregate(
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), calls=Sum(1)
    )
    scrapes = [scrape(stack.base) for _ in range(6)]
    for scraped in scrapes:
        assert scraped.total(ENDED, **labels) == RUNS
        assert scraped.total("sverm_runs", status="completed") == RUNS
        assert scraped.total("sverm_llm_tokens_total", direction="in") == ledger["tokens_in"]
        assert scraped.total("sverm_llm_tokens_total", direction="out") == ledger["tokens_out"]
        assert scraped.total("sverm_llm_call_duration_seconds_count") == ledger["calls"]
        assert scraped.total("sverm_run_queue_depth") == 0

    # Open WebSockets are summed over the web workers that hold them: several connections, so
    # both workers likely hold some, each scrape counting them all.
    token = headers["Authorization"].removeprefix("Bearer ")
    ws_url = stack.base.replace("http://", "ws://") + f"/api/workspaces/{workspace['id']}/stream"
    with ExitStack() as sockets:
        for _ in range(4):
            sockets.enter_context(connect(f"{ws_url}?token={token}", open_timeout=10))
        assert {
            scrape(stack.base).total("sverm_websocket_connections", stream="workspace")
            for _ in range(6)
        } == {4}
    wait_for(
        lambda: scrape(stack.base).total("sverm_websocket_connections") == 0,
        "the closed WebSockets uncounted",
        timeout=10,
        interval=0.1,
    )
    # The files scrapes add up: the Celery worker's and web's worker processes' (Uvicorn's
    # children), each under its own `<host>-<pid>` identifier.
    writers = {re.sub(r"^[a-z]+_(?:live[a-z]+_)?", "", path.stem) for path in shared.glob("*.db")}
    pids = {int(writer.rsplit("-", 1)[1]) for writer in writers}
    assert stack.processes["worker"].pid in pids, writers
    assert pids & (set(stack.pids("web")) - {stack.processes["web"].pid}), writers

    # SIGKILL: the worker says nothing as it goes; its heartbeat just ages past the limit.
    stack.processes["worker"].kill()
    stack.processes["worker"].wait(timeout=10)
    killed = time.monotonic()
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        unready = wait_for(
            lambda: (answer := http.get("/readyz")).status_code == 503 and answer.json(),
            "readiness failing without the worker",
            timeout=MAX_AGE + 10,
            interval=0.1,
        )
    took = time.monotonic() - killed
    # The last beat came at most one interval (0.5 s) before the kill.
    assert MAX_AGE - 0.5 - 0.1 <= took <= MAX_AGE + 2.0, took
    assert unready["checks"]["worker"].startswith("error: RuntimeError: the newest Celery worker")
    assert unready["checks"]["database"] == unready["checks"]["broker"] == "ok"
    after = scrape(stack.base)
    assert after.total(ENDED, **labels) == RUNS  # the dead worker's counts stay counted
    assert after.total("sverm_worker_heartbeat_age_seconds") > MAX_AGE

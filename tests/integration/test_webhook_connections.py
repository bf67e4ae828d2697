"""A slow webhook receiver does not hold the worker's database connections: in docker-compose's
layout with one pooled connection per process (DB_POOL_MAX_SIZE=1), a run created while the
worker's webhook POST of an earlier run is still waiting on its receiver executes and completes,
and the delivery is recorded once the receiver answers."""

import threading

import httpx
import pytest

from tests.integration.test_delivery_faults import wait_deliveries
from tests.integration.test_runs import TERMINAL, wait_for_status
from tests.webhooks.conftest import receiver  # noqa: F401  (the receiver fixture)

pytestmark = pytest.mark.integration

# How long the receiver keeps the POST waiting at most (the webhook timeout is longer).
HOLD_SECONDS = 25.0
RUN = {"template": "research-swarm-v1", "task": "Baltic offshore wind"}


def test_a_run_executes_while_a_webhook_post_waits_on_its_receiver(
    start_production_stack,
    receiver,  # noqa: F811
):
    stack = start_production_stack(
        DB_POOL_MAX_SIZE="1",
        DB_POOL_TIMEOUT="3",
        # The worker's runs write on one lane, which gives its connection back when idle.
        SVERM_EXECUTOR_DB_LANES="1",
        SVERM_EXECUTOR_DB_IDLE_SECONDS="0",
        SVERM_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        SVERM_WEBHOOK_TIMEOUT=str(HOLD_SECONDS + 10),
        SVERM_WEBHOOK_RETRY_SCHEDULE="0",
    )
    headers = stack.api_key()
    release = threading.Event()
    receiver.while_answering = lambda: release.wait(HOLD_SECONDS)
    try:
        with httpx.Client(base_url=stack.base, timeout=30) as http:
            first = http.post(
                "/v1/swarms", json={**RUN, "webhook_url": receiver.url()}, headers=headers
            )
            assert first.status_code == 201, first.text
            first_id = first.json()["swarm_id"]
            receiver.wait_for(1, timeout=60)  # the worker's POST now waits on the receiver

            second = http.post("/v1/swarms", json=RUN, headers=headers)
            assert second.status_code == 201, second.text
            done = wait_for_status(
                http, f"/v1/swarms/{second.json()['swarm_id']}", headers, TERMINAL,
                timeout=HOLD_SECONDS - 5,
            )  # fmt: skip
            assert not release.is_set()
            assert done["status"] == "completed", (done, stack.log("worker")[-3000:])
            release.set()  # the receiver answers; the outcome is recorded
            deliveries = wait_deliveries(http, first_id, headers, 1)
    finally:
        release.set()
    assert [(d["statusCode"], d["success"]) for d in deliveries] == [(200, True)], deliveries

"""The foundation over real processes: Daphne on PostgreSQL + Redis, and a Celery worker."""

import re
import time

import httpx
import pytest
from celery import Celery

from tests.integration.conftest import REDIS_URL
from tests.processes import manage
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_readyz_checks_postgres_redis_layer_broker_and_worker(server, celery_worker):
    # The worker's first heartbeat is recorded as it becomes ready. Until then the newest may
    # be the one an earlier test's worker left (still fresh for up to the limit): wait for ours.
    def ready_with_this_worker() -> bool:
        response = httpx.get(f"{server}/readyz", timeout=10)
        beat = response.json().get("workerHeartbeat") or {}
        return response.status_code == 200 and beat.get("node") == celery_worker

    wait_for(ready_with_this_worker, "readiness with this worker", timeout=45, interval=0.2)
    response = httpx.get(f"{server}/readyz", timeout=10)
    body = response.json()
    checks = {"database": "ok", "channelLayer": "ok", "broker": "ok", "worker": "ok"}
    assert body["checks"] == checks
    assert body["workerHeartbeat"]["node"] == celery_worker
    assert 0 <= body["workerHeartbeat"]["ageSeconds"] <= body["workerHeartbeat"]["maxAgeSeconds"]


def test_bootstrap_login_workspace_and_key_over_http(server, stack_env):
    out = manage(stack_env, "bootstrap", "--email", "ops@example.com", "--password", "Pa55-word!x")
    bootstrap_key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)

    with httpx.Client(base_url=server, timeout=10) as http:
        login = http.post(
            "/api/auth/login", json={"email": "ops@example.com", "password": "Pa55-word!x"}
        )
        assert login.status_code == 200, login.text
        jwt = {"Authorization": f"Bearer {login.json()['token']}"}

        created = http.post("/api/workspaces", json={"name": "Integration"}, headers=jwt)
        assert created.status_code == 201, created.text
        workspace_id = created.json()["id"]

        key = http.post(
            "/api/api-keys",
            json={"workspaceId": workspace_id, "name": "it", "role": "viewer"},
            headers=jwt,
        )
        assert key.status_code == 201, key.text
        as_key = {"Authorization": f"Bearer {key.json()['key']}"}
        listed = http.get("/api/workspaces", headers=as_key)
        assert [w["id"] for w in listed.json()["data"]] == [workspace_id]

        assert http.delete(f"/api/api-keys/{key.json()['id']}", headers=jwt).status_code == 200
        revoked = http.get("/api/workspaces", headers=as_key)
        assert revoked.status_code == 401
        assert revoked.headers["content-type"] == "application/problem+json"
        assert revoked.json()["correlation_id"] == revoked.headers["x-request-id"]

        boot = http.get("/api/workspaces", headers={"Authorization": f"Bearer {bootstrap_key}"})
        assert boot.status_code == 200 and boot.json()["pageInfo"]["total"] == 1

        unknown = http.get("/v1/nothing-here", headers={"X-Request-ID": "it-42"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["correlation_id"] == "it-42"


def test_celery_worker_answers_on_the_redis_broker(celery_worker):
    app = Celery(broker=REDIS_URL)
    deadline = time.monotonic() + 45
    replies = []
    while not replies and time.monotonic() < deadline:
        replies = app.control.ping(destination=[celery_worker], timeout=1.0)
    assert replies == [{celery_worker: {"ok": "pong"}}]

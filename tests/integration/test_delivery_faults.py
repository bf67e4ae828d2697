"""Delivery faults on the real stack (Daphne, a Celery worker on Redis, PostgreSQL, real HTTP):
one Idempotency-Key raced by concurrent POSTs starts one run; a webhook receiver that fails
twice is retried until it answers 200; webhook URLs that lead to loopback are refused when the
run is created and, when a name resolves to loopback only later, when the worker sends."""

import base64
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from accounts.models import Plan, User
from accounts.roles import Role
from accounts.services import api_key_create, workspace_create
from sverm.models import IdempotencyRecord, IdempotencyStatus
from sverm.money import money
from swarms.models import Run
from tests.integration.conftest import spawn
from tests.integration.test_runs import TERMINAL, wait_for_status
from tests.processes import stop
from tests.webhooks.conftest import receiver, verify  # noqa: F401  (the receiver fixture)

pytestmark = pytest.mark.integration

CONCURRENT = 8
V1_BODY = {"template": "research-swarm-v1", "task": "Baltic offshore wind", "max_budget_usd": 2.5}
REPLAYED = "Idempotent-Replayed"
# Names whose resolution the child processes take from SVERM_TEST_RESOLVE (see `resolver`).
REBIND_HOST = "rebind.sverm.test"
LOOPBACK_HOST = "loopback.sverm.test"
PUBLIC_IP = "93.184.216.34"
OTHER_SECRET = "whsec_" + base64.b64encode(b"not the workspace secret, 32 b.").decode()
# Installed into a child process through PYTHONPATH: name resolution the test controls, the
# only DNS control available without root. Every other name resolves as usual.
RESOLVER_SHIM = '''"""Test-only: names in SVERM_TEST_RESOLVE ("name=ip,...") resolve to those."""
import os
import socket

_real_getaddrinfo = socket.getaddrinfo
_answers = dict(
    item.split("=", 1) for item in os.environ.get("SVERM_TEST_RESOLVE", "").split(",") if item
)


def _getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, str) and host.lower().rstrip(".") in _answers:
        host = _answers[host.lower().rstrip(".")]
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
'''


@pytest.fixture
def fast_env(stack_env):
    """Quick simulated calls: a run completes in about a second."""
    stack_env["SVERM_SIMULATED_LATENCY"] = "0.05"
    return stack_env


@pytest.fixture
def webhook_env(fast_env):
    """The receiver on 127.0.0.1 is allowed; retries come after ~0.3 s instead of 5 s, 5 min."""
    fast_env.update(
        SVERM_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        SVERM_WEBHOOK_RETRY_SCHEDULE="0,0.3,0.3",
        SVERM_WEBHOOK_TIMEOUT="5",
    )
    return fast_env


@pytest.fixture
def resolver(fast_env, tmp_path):
    """No allow-list. Daphne resolves REBIND_HOST to a public address and LOOPBACK_HOST to
    127.0.0.1; `resolver(answers)` is the environment of a child that resolves otherwise."""
    shim = tmp_path / "resolver"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(RESOLVER_SHIM)
    fast_env.pop("SVERM_WEBHOOK_ALLOWED_HOSTS", None)
    path = fast_env.get("PYTHONPATH")
    fast_env["PYTHONPATH"] = f"{shim}:{path}" if path else str(shim)
    fast_env["SVERM_TEST_RESOLVE"] = f"{REBIND_HOST}={PUBLIC_IP},{LOOPBACK_HOST}=127.0.0.1"

    def env_with(answers: dict[str, str]) -> dict[str, str]:
        return {**fast_env, "SVERM_TEST_RESOLVE": ",".join(f"{k}={v}" for k, v in answers.items())}

    return env_with


def admin_key() -> tuple[dict[str, str], str]:
    """Headers with an admin API key of a new team-plan workspace (300 requests a minute: room
    to poll; limits stay on), and its id. Made in-process: a manage.py child costs seconds."""
    owner = User.objects.create_user(email=f"{uuid.uuid4().hex[:12]}@example.com")
    workspace = workspace_create(name="Deliveries", owner=owner, plan=Plan.TEAM)
    _key, raw = api_key_create(
        workspace=workspace, name="delivery-faults", role=Role.ADMIN, created_by=owner
    )
    return {"Authorization": f"Bearer {raw}"}, workspace.pk


def race(base_url, headers, path, body, key) -> list[httpx.Response]:
    """CONCURRENT clients, each on its own warm connection, POST at the same moment."""
    barrier = threading.Barrier(CONCURRENT)

    def post(_index: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            assert http.get("/healthz").status_code == 200  # connect before the start line
            barrier.wait(timeout=30)
            return http.post(path, json=body, headers={**headers, "Idempotency-Key": key})

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(post, range(CONCURRENT)))


def one_creation(responses: list[httpx.Response], id_field: str, error_code) -> str:
    """Exactly one request created the run; every other one replayed it or was told 409."""
    outcomes = [(r.status_code, r.headers.get(REPLAYED), r.text) for r in responses]
    assert {r.status_code for r in responses} <= {201, 409}, outcomes  # never a 500
    created = [r for r in responses if r.status_code == 201]
    firsts = [r for r in created if REPLAYED not in r.headers]
    assert len(firsts) == 1, outcomes
    first = firsts[0].json()
    for response in created:
        assert response.json() == first, outcomes
        if response is not firsts[0]:
            assert response.headers[REPLAYED] == "true"
    for response in responses:
        if response.status_code == 409:
            assert error_code(response.json()) == "idempotency_key_in_flight", response.text
            assert response.headers["Retry-After"] == "1"
            assert REPLAYED not in response.headers
    return first[id_field]


def v1_code(body: dict) -> str:
    return body["error"]["code"]


def problem_code(body: dict) -> str:
    return body["code"]


def wait_deliveries(http, run_id, headers, count, timeout=30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        url = f"/api/runs/{run_id}/webhook-deliveries?limit=100"
        rows = http.get(url, headers=headers).json()["data"]
        if len(rows) >= count:
            return sorted(rows, key=lambda row: row["attempt"])
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} has {len(rows)} of {count} webhook deliveries: {rows}")
        time.sleep(0.1)


def assert_ran_once(http, run_id, headers) -> None:
    done = wait_for_status(http, f"/api/runs/{run_id}", headers, TERMINAL)
    assert done["status"] == "completed", done
    events = http.get(f"/api/runs/{run_id}/events?limit=100", headers=headers).json()["data"]
    assert [event["type"] for event in events].count("run.started") == 1
    assert Run.objects.get(pk=run_id).attempt == 1


# ---------------------------------------------------------------------------------------------
# Idempotency-Key under concurrency
# ---------------------------------------------------------------------------------------------
def test_concurrent_posts_with_one_idempotency_key_start_exactly_one_run(
    fast_env, server, celery_worker
):
    headers, workspace = admin_key()
    with httpx.Client(base_url=server, timeout=30) as http:
        # /v1/swarms
        key = f"race-{uuid.uuid4()}"
        v1_run = one_creation(
            race(server, headers, "/v1/swarms", V1_BODY, key), "swarm_id", v1_code
        )
        retry = http.post("/v1/swarms", json=V1_BODY, headers={**headers, "Idempotency-Key": key})
        assert retry.status_code == 201 and retry.headers[REPLAYED] == "true", retry.text
        assert retry.json()["swarm_id"] == v1_run
        other = {**V1_BODY, "task": "Something else entirely"}
        reused = http.post("/v1/swarms", json=other, headers={**headers, "Idempotency-Key": key})
        assert reused.status_code == 422, reused.text
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert list(Run.objects.values_list("pk", flat=True)) == [v1_run]
        listed = http.get("/v1/swarms", headers=headers).json()
        assert listed["total"] == 1 and [r["swarm_id"] for r in listed["items"]] == [v1_run]

        # /api/swarms/{id}/runs, the same key: another endpoint, another record
        swarm = http.post(
            "/api/swarms", json={"workspaceId": workspace, "name": "Racers"}, headers=headers
        )
        assert swarm.status_code == 201, swarm.text
        path = f"/api/swarms/{swarm.json()['id']}/runs"
        body = {"task": "Nordic grid balancing", "maxBudgetUsd": "2.50"}
        api_run = one_creation(race(server, headers, path, body, key), "id", problem_code)
        retry = http.post(path, json=body, headers={**headers, "Idempotency-Key": key})
        assert retry.status_code == 201 and retry.headers[REPLAYED] == "true", retry.text
        assert retry.json()["id"] == api_run
        reused = http.post(
            path, json={**body, "task": "Another task"}, headers={**headers, "Idempotency-Key": key}
        )
        assert reused.status_code == 422, reused.text
        assert reused.headers["content-type"] == "application/problem+json"
        assert reused.json()["code"] == "idempotency_key_reused"
        assert set(Run.objects.values_list("pk", flat=True)) == {v1_run, api_run}
        runs = http.get("/api/runs?limit=100", headers=headers).json()["data"]
        assert sorted(r["id"] for r in runs) == sorted([v1_run, api_run])
        records = IdempotencyRecord.objects.filter(key=key)
        assert records.count() == 2
        assert {r.status for r in records} == {IdempotencyStatus.DONE}

        # Each run was executed by the worker once.
        assert_ran_once(http, v1_run, headers)
        assert_ran_once(http, api_run, headers)


# ---------------------------------------------------------------------------------------------
# Webhook retries
# ---------------------------------------------------------------------------------------------
def test_a_webhook_receiver_failing_twice_gets_the_same_signed_message_until_it_answers_200(
    webhook_env, receiver, server, celery_worker  # noqa: F811
):  # fmt: skip
    headers, workspace = admin_key()
    receiver.script = [(500, {}), (500, {})]
    with httpx.Client(base_url=server, timeout=30) as http:
        rotated = http.post(
            f"/api/workspaces/{workspace}/webhook-secret",
            json={"gracePeriodSeconds": 0}, headers=headers,
        )  # fmt: skip
        assert rotated.status_code == 201, rotated.text
        secret = rotated.json()["secret"]
        started_at = int(time.time())
        created = http.post(
            "/v1/swarms", json={**V1_BODY, "webhook_url": receiver.url()}, headers=headers
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["swarm_id"]
        done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL)
        assert done["status"] == "completed", done

        requests = receiver.wait_for(3, timeout=30)
        deliveries = wait_deliveries(http, run_id, headers, 3)

    assert len(requests) == 3 and len(deliveries) == 3
    message_id = requests[0].headers["webhook-id"]
    assert message_id.startswith("msg_")
    run = Run.objects.get(pk=run_id)
    for request in requests:
        assert request.path == "/hook"
        assert request.headers["webhook-id"] == message_id
        assert started_at <= int(request.headers["webhook-timestamp"]) <= time.time() + 1
        assert verify(secret, request.headers, request.body)
        assert not verify(OTHER_SECRET, request.headers, request.body)
        assert request.body == requests[0].body  # one message, sent again
    summary = json.loads(requests[0].body, parse_float=Decimal)
    assert summary["swarm_id"] == run_id and summary["type"] == "run.completed"
    assert summary["status"] == "completed"
    assert summary["cost_usd"] == money(run.current_cost_usd) > 0
    assert summary["cost_usd"] <= Decimal("2.5")

    assert [d["attempt"] for d in deliveries] == [1, 2, 3]
    assert [d["statusCode"] for d in deliveries] == [500, 500, 200]
    assert [d["success"] for d in deliveries] == [False, False, True]
    assert [d["error"] for d in deliveries] == ["HTTP 500", "HTTP 500", ""]
    assert {d["messageId"] for d in deliveries} == {message_id}
    assert {d["url"] for d in deliveries} == {receiver.url()}
    assert {d["eventType"] for d in deliveries} == {"run.completed"}
    assert all(isinstance(d["latencyMs"], int) and d["latencyMs"] >= 0 for d in deliveries)
    assert [d["nextAttemptAt"] is not None for d in deliveries] == [True, True, False]
    assert not any(d["manual"] for d in deliveries)


# ---------------------------------------------------------------------------------------------
# Loopback refused: at creation, and at send time after the name re-resolved
# ---------------------------------------------------------------------------------------------
def test_webhook_urls_leading_to_loopback_are_refused_at_creation_and_at_send_time(
    resolver, receiver, server, tmp_path  # noqa: F811
):  # fmt: skip
    headers, workspace = admin_key()
    # The worker's resolver answers loopback for the name Daphne saw public (DNS rebinding).
    worker = spawn(
        resolver({REBIND_HOST: "127.0.0.1"}), tmp_path, "worker",
        "celery", "-A", "sverm", "worker", "--pool=solo", "--concurrency=1", "--without-gossip",
        "--without-mingle", "-n", f"sverm-rebind-{uuid.uuid4().hex[:8]}@{socket.gethostname()}",
        "--loglevel=INFO",
    )  # fmt: skip
    port = receiver.port  # the receiver, were any of these reached
    refused = {
        f"http://localhost:{port}/hook": "loopback name",
        "http://127.1/": "loopback address (127.0.0.1)",
        "http://0x7f000001/": "loopback address (127.0.0.1)",
        "http://[::ffff:127.0.0.1]/": "IPv4-mapped IPv6 address",
        f"http://{LOOPBACK_HOST}:{port}/hook": "loopback address (127.0.0.1)",  # after DNS
    }
    try:
        with httpx.Client(base_url=server, timeout=30) as http:
            swarm = http.post(
                "/api/swarms", json={"workspaceId": workspace, "name": "Hooks"}, headers=headers
            )
            assert swarm.status_code == 201, swarm.text
            runs_path = f"/api/swarms/{swarm.json()['id']}/runs"
            for url, reason in refused.items():
                v1 = http.post("/v1/swarms", json={**V1_BODY, "webhook_url": url}, headers=headers)
                assert v1.status_code == 400, (url, v1.text)
                error = v1.json()["error"]
                assert error["code"] == "invalid_request" and "webhook_url" in error["message"]
                messages = error["details"]["fields"]["webhook_url"]
                assert any(reason in message for message in messages), error
                api = http.post(runs_path, json={"task": "t", "webhookUrl": url}, headers=headers)
                assert api.status_code == 400, (url, api.text)
                assert api.headers["content-type"] == "application/problem+json"
                refusals = [e for e in api.json()["errors"] if e["code"] == "webhook_url_refused"]
                assert [e["field"] for e in refusals] == ["webhookUrl"], api.text
                assert reason in refusals[0]["detail"], api.text
            assert not Run.objects.exists()
            assert http.get("/v1/swarms", headers=headers).json()["total"] == 0

            url = f"http://{REBIND_HOST}:{port}/hook"
            created = http.post("/v1/swarms", json={**V1_BODY, "webhook_url": url}, headers=headers)
            assert created.status_code == 201, created.text  # public when created
            run_id = created.json()["swarm_id"]
            done = wait_for_status(http, f"/v1/swarms/{run_id}", headers, TERMINAL)
            assert done["status"] == "completed", done
            (delivery,) = wait_deliveries(http, run_id, headers, 1)
    finally:
        stop(worker)
    assert delivery["statusCode"] is None and delivery["success"] is False
    assert delivery["error"] == (
        f"Refused: The webhook host {REBIND_HOST} points to a loopback address (127.0.0.1)."
    )
    assert delivery["nextAttemptAt"] is None  # a refusal is final: no retry scheduled
    # The row is written after the attempt: had the worker connected, the receiver would have it.
    assert receiver.requests == []

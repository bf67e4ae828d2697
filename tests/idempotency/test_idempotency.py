"""`Idempotency-Key` on the run-creating POSTs (`/v1/swarms`, `/api/swarms/{id}/runs`): replays,
refusals (422 another body, 409 in flight, 400 bad key), independence, expiry, concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.roles import Role
from accounts.services import workspace_create
from sverm.api.idempotency import live_records
from sverm.models import IdempotencyRecord, IdempotencyStatus
from swarms import jobs
from swarms.models import Run
from tests.conftest import assert_problem, assert_v1_error
from tests.factories import make_swarm
from tests.runs.conftest import _restore_default_prices

TASK = "Investigate Norwegian hydrogen economy"
V1_BODY = {"template": "research-swarm-v1", "task": TASK, "max_budget_usd": 2.5}


@pytest.fixture
def dispatched(monkeypatch) -> list[str]:
    """The run ids whose start was sent (nothing executes)."""
    calls: list[str] = []

    def enqueue(name, run_id, *args, countdown=0):
        assert name == jobs.EXECUTE_RUN
        calls.append(run_id)

    monkeypatch.setattr(jobs, "enqueue", enqueue)
    return calls


@pytest.fixture
def operator(key_client, workspace) -> APIClient:
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


@pytest.fixture
def swarm(workspace, user):
    return make_swarm(workspace, user, name="Alpha", models=["gpt-4o-mini", "deepseek-chat"])


def v1_post(client, key: str | None = "key-1", **overrides):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post("/v1/swarms", {**V1_BODY, **overrides}, format="json", headers=headers)


def api_post(client, swarm, key: str | None = "key-1", **overrides):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(
        f"/api/swarms/{swarm.pk}/runs", {"task": TASK, **overrides}, format="json", headers=headers
    )


def replayed(response) -> bool:
    return response.get("Idempotent-Replayed") == "true"


# ---------------------------------------------------------------------------------------------
# Replays
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("not_executing")
def test_v1_same_key_and_body_replays_the_first_response(
    operator, dispatched, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = v1_post(operator)
    with django_capture_on_commit_callbacks(execute=True):
        second = v1_post(operator)
    assert first.status_code == second.status_code == 201, second.content
    assert second.json() == first.json()
    assert second["Content-Type"] == first["Content-Type"] == "application/json"
    assert not replayed(first) and replayed(second)
    assert Run.objects.count() == 1
    assert Run.objects.get().pk == first.json()["swarm_id"]
    assert dispatched == [first.json()["swarm_id"]]
    record = IdempotencyRecord.objects.get()
    assert (record.status, record.response_status) == (IdempotencyStatus.DONE, 201)
    assert record.endpoint == "POST v1-swarm-list"


@pytest.mark.usefixtures("not_executing")
def test_api_same_key_and_body_replays_the_first_response(
    api_client, swarm, dispatched, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = api_post(api_client, swarm)
        second = api_post(api_client, swarm)
        third = api_post(api_client, swarm)
    assert first.status_code == second.status_code == third.status_code == 201
    assert second.json() == first.json() == third.json()
    assert replayed(second) and replayed(third)
    assert Run.objects.count() == 1
    assert dispatched == [first.json()["id"]]


@pytest.mark.usefixtures("not_executing")
def test_the_drafts_quoted_key_is_the_same_key(operator):
    first = v1_post(operator, key="abc")
    second = v1_post(operator, key='"abc"')
    assert replayed(second) and second.json() == first.json()
    assert Run.objects.count() == 1


@pytest.mark.usefixtures("not_executing")
def test_without_a_key_every_post_starts_a_run(operator, swarm, api_client):
    assert v1_post(operator, key=None).status_code == 201
    assert v1_post(operator, key=None).status_code == 201
    assert api_post(api_client, swarm, key=None).status_code == 201
    assert Run.objects.count() == 3
    assert not IdempotencyRecord.objects.exists()


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("not_executing")
def test_v1_same_key_with_another_body_is_422(operator):
    assert v1_post(operator).status_code == 201
    error = assert_v1_error(v1_post(operator, task="Something else"), 422,
                            "idempotency_key_reused")  # fmt: skip
    assert "Idempotency-Key" in error["message"]
    assert Run.objects.count() == 1


@pytest.mark.usefixtures("not_executing")
def test_api_same_key_with_another_body_or_swarm_is_422(api_client, swarm, workspace, user):
    assert api_post(api_client, swarm).status_code == 201
    assert_problem(api_post(api_client, swarm, maxBudgetUsd="3"), 422, "idempotency_key_reused")
    other = make_swarm(workspace, user, name="Beta", models=["gpt-4o-mini"])
    assert_problem(api_post(api_client, other), 422, "idempotency_key_reused")
    assert Run.objects.count() == 1


@pytest.mark.usefixtures("not_executing")
def test_a_request_still_in_flight_is_409(operator, api_client, swarm):
    first = v1_post(operator)
    IdempotencyRecord.objects.update(status=IdempotencyStatus.PROCESSING)
    error = assert_v1_error(v1_post(operator), 409, "idempotency_key_in_flight")
    assert error["message"]
    assert api_post(api_client, swarm).status_code == 201
    IdempotencyRecord.objects.filter(endpoint__contains="runs").update(
        status=IdempotencyStatus.PROCESSING
    )
    response = api_post(api_client, swarm)
    assert_problem(response, 409, "idempotency_key_in_flight")
    assert response["Retry-After"] == "1"
    assert Run.objects.count() == 2
    # Once it is done, the retry gets the stored response.
    IdempotencyRecord.objects.update(status=IdempotencyStatus.DONE)
    assert v1_post(operator).json() == first.json()


@pytest.mark.usefixtures("not_executing")
@pytest.mark.parametrize(
    "key", ["x" * 256, "ключ", "caf\u00e9", "tab\there", "", '""'], ids=[
        "too-long", "cyrillic", "latin1", "control", "empty", "empty-quoted"
    ]
)  # fmt: skip
def test_an_invalid_key_is_400(operator, api_client, swarm, key):
    error = assert_v1_error(v1_post(operator, key=key), 400, "invalid_request")
    assert "Idempotency-Key" in error["message"]
    assert_problem(api_post(api_client, swarm, key=key), 400, "invalid_request")
    assert not Run.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.usefixtures("not_executing")
def test_the_longest_printable_key_is_accepted(operator):
    key = "~ !" + "k" * 252
    assert v1_post(operator, key=key).status_code == 201
    assert replayed(v1_post(operator, key=key))
    assert IdempotencyRecord.objects.get().key == key


# ---------------------------------------------------------------------------------------------
# Independence
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("not_executing")
def test_workspaces_keys_and_endpoints_are_independent(
    key_client, operator, api_client, swarm, user
):
    second_workspace = workspace_create(name="Second", owner=user)
    second, _, _ = key_client(second_workspace, Role.OPERATOR)
    a = v1_post(operator)
    b = v1_post(second)  # same key, another workspace
    c = v1_post(operator, key="key-2")  # another key
    d = api_post(api_client, swarm)  # same key and workspace, another endpoint
    responses = [a, b, c, d]
    assert [r.status_code for r in responses] == [201] * 4
    assert not any(replayed(r) for r in responses)
    ids = {a.json()["swarm_id"], b.json()["swarm_id"], c.json()["swarm_id"], d.json()["id"]}
    assert len(ids) == 4 == Run.objects.count()
    assert Run.objects.get(pk=b.json()["swarm_id"]).workspace_id == second_workspace.pk
    assert IdempotencyRecord.objects.count() == 4


@pytest.mark.usefixtures("not_executing")
def test_an_expired_record_is_absent_and_replaced(operator):
    first = v1_post(operator)
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not live_records().exists()
    second = v1_post(operator)
    assert second.status_code == 201 and not replayed(second)
    assert second.json()["swarm_id"] != first.json()["swarm_id"]
    assert Run.objects.count() == 2
    record = IdempotencyRecord.objects.get()
    assert record.expires_at > timezone.now() + timedelta(hours=23)
    assert live_records().get() == record
    # An expired record with another body is absent too: no 422.
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert v1_post(operator, task="Another task").status_code == 201


@pytest.mark.usefixtures("not_executing")
def test_records_expire_after_24_hours(operator):
    before = timezone.now()
    v1_post(operator)
    record = IdempotencyRecord.objects.get()
    assert before + timedelta(hours=24) <= record.expires_at <= timezone.now() + timedelta(hours=24)


# ---------------------------------------------------------------------------------------------
# Stored and released errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("not_executing")
def test_a_v1_budget_exceeded_422_is_replayed(operator):
    first = v1_post(operator, max_budget_usd=0.000001)
    error = assert_v1_error(first, 422, "budget_exceeded")
    second = v1_post(operator, max_budget_usd=0.000001)
    again = assert_v1_error(second, 422, "budget_exceeded")
    assert replayed(second) and not replayed(first)
    assert {**again, "correlation_id": None} == {**error, "correlation_id": None}
    assert not Run.objects.exists()
    record = IdempotencyRecord.objects.get()
    assert (record.status, record.response_status) == (IdempotencyStatus.DONE, 422)
    # A bigger budget is another body: refused, not run.
    assert_v1_error(v1_post(operator), 422, "idempotency_key_reused")


@pytest.mark.usefixtures("not_executing")
def test_an_api_budget_exceeded_problem_is_replayed(api_client, swarm):
    first = assert_problem(api_post(api_client, swarm, maxBudgetUsd="0.000001"), 422,
                           "budget_exceeded")  # fmt: skip
    response = api_post(api_client, swarm, maxBudgetUsd="0.000001")
    again = assert_problem(response, 422, "budget_exceeded")
    assert replayed(response)
    assert {**again, "correlation_id": None} == {**first, "correlation_id": None}
    assert not Run.objects.exists()


@pytest.mark.usefixtures("not_executing")
def test_a_replayed_error_is_logged_under_the_replays_correlation_id(
    operator, api_client, swarm, caplog
):
    v1_post(operator, max_budget_usd=0.000001)
    api_post(api_client, swarm, maxBudgetUsd="0.000001")
    for response, path in (
        (v1_post(operator, max_budget_usd=0.000001), "/v1/swarms"),
        (api_post(api_client, swarm, maxBudgetUsd="0.000001"), f"/api/swarms/{swarm.pk}/runs"),
    ):
        assert replayed(response) and response.status_code == 422
        correlation_id = response["X-Request-ID"]
        lines = [r.getMessage() for r in caplog.records if correlation_id in r.getMessage()]
        assert len(lines) == 1 and lines[0].startswith(f"POST {path} -> 422 budget_exceeded ")


@pytest.mark.usefixtures("not_executing")
def test_an_error_that_is_not_stored_releases_the_key(operator, api_client, swarm):
    assert_v1_error(v1_post(operator, template="no-such-template"), 404, "not_found")
    assert_problem(api_post(api_client, swarm, versionId="ver_missing"), 404, "not_found")
    assert not IdempotencyRecord.objects.exists()
    # The key is free again: the same key with a fixed body starts the run.
    assert v1_post(operator).status_code == 201
    assert api_post(api_client, swarm).status_code == 201


@pytest.mark.usefixtures("not_executing")
def test_an_unexpected_exception_releases_the_key(operator, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("swarms.services.run_create_from_source", boom)
    client = operator
    client.raise_request_exception = False
    assert v1_post(client).status_code == 500
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert v1_post(client).status_code == 201


@pytest.mark.usefixtures("not_executing")
def test_the_role_is_checked_before_a_replay(client_for, member_of, workspace, swarm, api_client):
    assert api_post(api_client, swarm).status_code == 201
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert_problem(api_post(viewer, swarm), 403, "forbidden")


def test_both_operations_document_the_header_and_their_errors():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/v1/swarms", "/api/swarms/{id}/runs"):
        operation = paths[path]["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Idempotency-Key" in headers, path
        assert {"400", "409", "422"} <= set(operation["responses"]), path


# ---------------------------------------------------------------------------------------------
# Concurrency (PostgreSQL: SQLite serialises writers)
# ---------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_start_one_run(key_client, workspace, dispatched, settings):
    if connection.vendor == "sqlite":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}
    _restore_default_prices()
    _, _, raw = key_client(workspace, Role.OPERATOR)
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list = [None] * threads_count

    def worker(index: int) -> None:
        from django.db import connections

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            barrier.wait()
            response = client.post(
                "/v1/swarms", V1_BODY, format="json", headers={"Idempotency-Key": "race"}
            )
            results[index] = (response.status_code, response.json(), replayed(response))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(result is not None for result in results), results
    assert Run.objects.count() == 1
    run_id = Run.objects.get().pk
    created = [r for r in results if r[0] == 201 and not r[2]]
    assert len(created) == 1, results
    for status, body, was_replayed in results:
        if status == 201:
            assert body["swarm_id"] == run_id
            assert body == created[0][1]
        else:
            assert status == 409, (status, body)
            assert body["error"]["code"] == "idempotency_key_in_flight"
            assert not was_replayed
    assert dispatched == [run_id]

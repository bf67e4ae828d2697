"""Reading batches and their items on `/api`, cancelling, the results download, roles and
tenancy, the list engine, idempotent creation and the plan's hourly creation limit. These tests
never commit, so no item starts unless a test runs a dispatch pass itself."""

import json
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from batches.models import Batch, BatchItem
from batches.services import batch_advance
from tests.conftest import assert_problem, jwt_client

from .conftest import created, end_run, items_of, results


@pytest.fixture
def body(swarm) -> dict:
    return {"swarmId": swarm.pk, "totalBudgetUsd": "1", "concurrency": 2,
            "inputs": ["alpha", {"task": "beta", "customId": "b-1"}, "gamma"]}  # fmt: skip


@pytest.fixture
def batch(api_client, body) -> dict:
    return created(api_client, body)


def test_a_batch_reads_back_as_created_and_its_items_in_input_order(api_client, batch):
    response = api_client.get(f"/api/batches/{batch['id']}")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(batch, default=float))
    page = api_client.get(f"/api/batches/{batch['id']}/items").json()
    assert page["pageInfo"]["total"] == 3
    assert [(i["index"], i["task"], i["customId"], i["status"], i["runId"], i["costUsd"],
             i["output"]) for i in page["data"]] == [
        (0, "alpha", None, "pending", None, 0, ""),
        (1, "beta", "b-1", "pending", None, 0, ""),
        (2, "gamma", None, "pending", None, 0, ""),
    ]  # fmt: skip


def test_items_show_their_runs_cost_status_and_output_once_they_ran(api_client, batch):
    batch_advance(batch_id=batch["id"])
    first = items_of(batch["id"])[0]
    end_run(first.run_id, "completed", "0.0123456")
    first.run.output = "## Findings"
    first.run.save(update_fields=["output"])
    batch_advance(batch_id=batch["id"])
    data = api_client.get(f"/api/batches/{batch['id']}/items").json()["data"]
    assert (data[0]["status"], data[0]["runId"], data[0]["costUsd"], data[0]["output"]) == (
        "completed", first.run_id, 0.012345, "## Findings",
    )  # fmt: skip
    assert data[1]["status"] == "running" and data[1]["runId"].startswith("run_")
    assert data[2]["status"] == "running"
    detail = api_client.get(f"/api/batches/{batch['id']}").json()
    assert detail["counts"]["completed"] == 1 and detail["counts"]["running"] == 2
    assert detail["costUsd"] == 0.012345 and detail["progress"] == pytest.approx(1 / 3)
    # The list shows the same cost, running runs' spend included.
    from swarms.models import Run

    Run.objects.filter(pk=data[1]["runId"]).update(current_cost_usd=Decimal("0.001"))
    listed = api_client.get("/api/batches").json()["data"]
    assert listed[0]["costUsd"] == 0.013345
    assert api_client.get(f"/api/batches/{batch['id']}").json()["costUsd"] == 0.013345


def test_results_are_json_lines_one_per_item_in_input_order(api_client, batch):
    batch_advance(batch_id=batch["id"])
    item = items_of(batch["id"])[0]
    end_run(item.run_id, "failed", "0.002")
    batch_advance(batch_id=batch["id"])
    response = api_client.get(f"/api/batches/{batch['id']}/results")
    assert response["Content-Disposition"] == f'attachment; filename="{batch["id"]}-results.jsonl"'
    lines = results(api_client, batch["id"])
    assert [set(line) for line in lines] == [
        {"index", "customId", "input", "status", "runId", "costUsd", "output", "error"}
    ] * 3
    assert [(line["index"], line["input"], line["customId"]) for line in lines] == [
        (0, "alpha", None), (1, "beta", "b-1"), (2, "gamma", None),
    ]  # fmt: skip
    assert (lines[0]["status"], lines[0]["runId"], lines[0]["costUsd"]) == (
        "failed", item.run_id, Decimal("0.002"),
    )  # fmt: skip
    assert lines[0]["error"] == {"code": "provider_error", "message": "boom"}
    assert lines[1]["status"] == "running" and lines[1]["error"] is None
    # Asking for JSON lines (or anything) is fine.
    response = api_client.get(
        f"/api/batches/{batch['id']}/results", HTTP_ACCEPT="application/x-ndjson"
    )
    assert response.status_code == 200


def test_results_of_a_large_batch_stream_in_chunks_with_every_line(api_client, swarm):
    batch = created(api_client, {"swarmId": swarm.pk, "totalBudgetUsd": "10",
                                 "inputs": [f"t{n}" for n in range(450)]})  # fmt: skip
    response = api_client.get(f"/api/batches/{batch['id']}/results")
    chunks = list(response.streaming_content)
    assert len(chunks) == 3  # 200 + 200 + 50 items, a query each
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(450))


def test_cancel_answers_the_cancelled_batch(api_client, batch):
    response = api_client.post(f"/api/batches/{batch['id']}/cancel")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled" and body["counts"]["skipped"] == 3
    assert body["cancelledAt"] and body["completedAt"]
    # Again: no change. An ended batch of another kind: 409.
    assert api_client.post(f"/api/batches/{batch['id']}/cancel").json() == body
    Batch.objects.filter(pk=batch["id"]).update(status="completed")
    assert_problem(api_client.post(f"/api/batches/{batch['id']}/cancel"), 409, "conflict")


# ---------------------------------------------------------------------------------------------
# Roles and tenancy
# ---------------------------------------------------------------------------------------------
def test_a_viewer_reads_but_neither_creates_nor_cancels(viewer, batch, body):
    batch_id = batch["id"]
    for path in (f"/api/batches/{batch_id}", f"/api/batches/{batch_id}/items", "/api/batches"):
        assert viewer.get(path).status_code == 200, path
    assert viewer.get(f"/api/batches/{batch_id}/results").status_code == 200
    assert_problem(viewer.post("/api/batches", body, format="json"), 403, "forbidden")
    assert_problem(viewer.post(f"/api/batches/{batch_id}/cancel"), 403, "forbidden")
    assert Batch.objects.get(pk=batch_id).status == "queued"


def test_an_operator_creates_and_cancels(operator, body):
    batch = created(operator, body)
    assert operator.post(f"/api/batches/{batch['id']}/cancel").status_code == 200


def test_another_workspaces_batches_are_404_and_never_listed(batch, other_user, body, swarm):
    stranger = jwt_client(other_user)
    batch_id = batch["id"]
    for path in (f"/api/batches/{batch_id}", f"/api/batches/{batch_id}/items",
                 f"/api/batches/{batch_id}/results"):  # fmt: skip
        assert_problem(stranger.get(path), 404, "not_found")
    assert_problem(stranger.post(f"/api/batches/{batch_id}/cancel"), 404, "not_found")
    assert stranger.get("/api/batches").json()["data"] == []
    # Nor can they batch over our swarm.
    assert_problem(stranger.post("/api/batches", body, format="json"), 404, "not_found")
    assert Batch.objects.count() == 1


def test_no_credential_is_401(batch):
    response = APIClient().get(f"/api/batches/{batch['id']}")
    assert_problem(response, 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# The list engine
# ---------------------------------------------------------------------------------------------
def test_batches_are_filtered_ordered_and_paged_like_every_list(api_client, swarm, catalog):
    made = [
        created(api_client, {"swarmId": swarm.pk, "totalBudgetUsd": "1", "inputs": ["a"] * n})
        for n in (1, 2, 3)
    ]
    template = created(api_client, {"templateId": "research-swarm-v1", "totalBudgetUsd": "1",
                                    "inputs": ["t"]})  # fmt: skip
    Batch.objects.filter(pk=made[0]["id"]).update(status="completed")
    page = api_client.get("/api/batches", {"limit": 2}).json()
    assert [b["id"] for b in page["data"]] == [template["id"], made[2]["id"]]  # newest first
    assert page["pageInfo"]["hasNextPage"] and page["pageInfo"]["total"] == 4
    rest = api_client.get("/api/batches", {"limit": 2, "after": page["pageInfo"]["endCursor"]})
    assert [b["id"] for b in rest.json()["data"]] == [made[1]["id"], made[0]["id"]]
    ordered = api_client.get(
        "/api/batches", {"orderBy": json.dumps([{"itemsTotal": "desc"}]),
                         "filter": json.dumps({"swarmId": {"eq": swarm.pk}})},
    ).json()["data"]  # fmt: skip
    assert [b["counts"]["total"] for b in ordered] == [3, 2, 1]
    queued = api_client.get("/api/batches", {"status": "queued", "swarm_id": swarm.pk}).json()
    assert {b["id"] for b in queued["data"]} == {made[1]["id"], made[2]["id"]}
    by_template = api_client.get(
        "/api/batches", {"filter": json.dumps({"templateId": {"startsWith": "research"}})}
    ).json()["data"]
    assert [b["id"] for b in by_template] == [template["id"]]
    assert_problem(
        api_client.get("/api/batches", {"filter": json.dumps({"cost": {"eq": 1}})}),
        400, "invalid_request",
    )  # fmt: skip


def test_items_are_paged_by_index_and_filtered_by_status(api_client, swarm):
    batch = created(api_client, {"swarmId": swarm.pk, "totalBudgetUsd": "1",
                                 "inputs": [f"t{n}" for n in range(7)]})  # fmt: skip
    BatchItem.objects.filter(batch_id=batch["id"], index__in=[1, 4]).update(status="skipped")
    first = api_client.get(f"/api/batches/{batch['id']}/items", {"limit": 3}).json()
    assert [i["index"] for i in first["data"]] == [0, 1, 2]
    cursor = first["pageInfo"]["endCursor"]
    second = api_client.get(f"/api/batches/{batch['id']}/items", {"limit": 3, "after": cursor})
    assert [i["index"] for i in second.json()["data"]] == [3, 4, 5]
    skipped = api_client.get(f"/api/batches/{batch['id']}/items", {"status": "skipped"}).json()
    assert [i["index"] for i in skipped["data"]] == [1, 4]
    backwards = api_client.get(
        f"/api/batches/{batch['id']}/items", {"orderBy": json.dumps([{"index": "desc"}])}
    ).json()["data"]
    assert [i["index"] for i in backwards] == [6, 5, 4, 3, 2, 1, 0]
    assert_problem(api_client.get("/api/batches/bat_nothing/items"), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# Idempotency
# ---------------------------------------------------------------------------------------------
def test_the_same_key_and_body_replays_the_first_batch(api_client, body):
    first = api_client.post("/api/batches", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api_client.post("/api/batches", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Batch.objects.count() == 1
    other = {**body, "inputs": ["something else"]}
    response = api_client.post("/api/batches", other, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_problem(response, 422, "idempotency_key_reused")
    assert Batch.objects.count() == 1


def test_an_upload_is_idempotent_on_its_content_and_query(api_client, swarm):
    def upload(text: str, budget: str = "1"):
        return api_client.generic(
            "POST", f"/api/batches?swarmId={swarm.pk}&totalBudgetUsd={budget}", text.encode(),
            content_type="application/x-ndjson", HTTP_IDEMPOTENCY_KEY="up-1",
        )  # fmt: skip

    first = upload('"a"\n"b"\n')
    assert first.status_code == 201
    assert upload('"a"\n"b"\n')["Idempotent-Replayed"] == "true"
    assert_problem(upload('"a"\n"c"\n'), 422, "idempotency_key_reused")
    assert_problem(upload('"a"\n"b"\n', budget="2"), 422, "idempotency_key_reused")
    assert Batch.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# The plan's batches per hour
# ---------------------------------------------------------------------------------------------
def test_the_sixth_batch_of_an_hour_on_free_is_429_with_retry_after(
    api_client, body, workspace, other_workspace, settings, swarm
):
    settings.SVERM_RATE_LIMITS = True
    start = timezone.now()
    with mock.patch("accounts.services.quota_clock", return_value=start):
        for _ in range(5):
            assert api_client.post("/api/batches", body, format="json").status_code == 201
    Batch.objects.update(created_at=start - timedelta(minutes=50))
    later = start + timedelta(minutes=1)
    with mock.patch("accounts.services.quota_clock", return_value=later):
        response = api_client.post("/api/batches", body, format="json")
    problem = assert_problem(response, 429, "rate_limited")
    assert (problem["limit"], problem["plan"], problem["allowed"]) == (
        "batches_per_hour", "free", 5,
    )  # fmt: skip
    # The oldest leaves the hour 10 minutes after it was made, minus the minute gone by.
    assert int(response["Retry-After"]) == 9 * 60
    assert Batch.objects.count() == 5
    # An hour after the first ones, a slot is free again.
    with mock.patch("accounts.services.quota_clock", return_value=start + timedelta(minutes=11)):
        assert api_client.post("/api/batches", body, format="json").status_code == 201


def test_other_plans_allow_more_batches_an_hour(api_client, body, workspace, settings):
    settings.SVERM_RATE_LIMITS = True
    workspace.plan = "pro"
    workspace.save(update_fields=["plan"])
    for _ in range(6):
        assert api_client.post("/api/batches", body, format="json").status_code == 201


# ---------------------------------------------------------------------------------------------
# The admin
# ---------------------------------------------------------------------------------------------
def test_the_admin_lists_batches_shows_items_and_cancels(client, make_user, batch):
    staff = make_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    page = client.get("/admin/batches/batch/")
    assert page.status_code == 200
    assert batch["id"].encode() in page.content and b"0/3 ended" in page.content
    detail = client.get(f"/admin/batches/batch/{batch['id']}/change/")
    assert detail.status_code == 200 and b"beta" in detail.content
    response = client.post(
        "/admin/batches/batch/",
        {"action": "cancel_batches", "_selected_action": [batch["id"]]},
    )
    assert response.status_code == 302
    assert Batch.objects.get(pk=batch["id"]).status == "cancelled"

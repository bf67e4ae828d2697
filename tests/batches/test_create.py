"""Creating a batch (`POST /api/batches`) from a JSON body, a JSONL body or a multipart upload:
what is made, the budget each item gets, and the 400s that name the bad item or line with
nothing created. These tests never commit, so no item starts."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from batches.inputs import MAX_ITEMS
from batches.models import Batch, BatchEvent, BatchItem
from swarms.engine import Definition, minimum_cost
from swarms.providers import price_map
from tests.conftest import assert_problem

from .conftest import TEMPLATE, create, created, events_of, items_of

BATCH_KEYS = {
    "id", "workspaceId", "swarmId", "versionId", "templateId", "status", "budgetMode",
    "totalBudgetUsd", "itemBudgetUsd", "concurrency", "counts", "progress", "costUsd",
    "errorCode", "errorMessage", "blockedReason", "createdBy", "createdAt", "startedAt",
    "cancelledAt", "completedAt",
}  # fmt: skip


def nothing_created() -> None:
    assert not Batch.objects.exists()
    assert not BatchItem.objects.exists()
    assert not BatchEvent.objects.exists()


def test_a_json_body_makes_a_batch_of_pending_items_over_the_swarms_version(
    api_client, workspace, swarm
):
    body = created(
        api_client,
        {
            "swarmId": swarm.pk,
            "inputs": ["Hydrogen in Norway", {"task": "Ammonia ships", "customId": "ship-1"}, "x"],
            "totalBudgetUsd": "1",
            "concurrency": 2,
        },
    )
    assert set(body) == BATCH_KEYS
    assert body["id"].startswith("bat_")
    assert (body["workspaceId"], body["swarmId"], body["templateId"]) == (
        workspace.pk, swarm.pk, None,
    )  # fmt: skip
    # Pinned at creation: a later default version does not change what the items run.
    assert body["versionId"] == swarm.default_version_id
    assert (body["status"], body["budgetMode"], body["concurrency"]) == ("queued", "split", 2)
    # 1 / 3 rounded down to the micro-dollar: three shares never pass the total.
    assert body["itemBudgetUsd"] == Decimal("0.333333")
    assert body["totalBudgetUsd"] == 1
    assert body["counts"] == {
        "total": 3, "pending": 3, "running": 0, "completed": 0, "failed": 0, "cancelled": 0,
        "skipped": 0,
    }  # fmt: skip
    assert (body["progress"], body["costUsd"], body["completedAt"]) == (0, 0, None)
    items = items_of(body["id"])
    assert [(i.index, i.task, i.custom_id, i.status) for i in items] == [
        (0, "Hydrogen in Norway", "", "pending"),
        (1, "Ammonia ships", "ship-1", "pending"),
        (2, "x", "", "pending"),
    ]
    assert all(i.id.startswith("bti_") and i.run_id is None for i in items)
    # Its first event says where it stands.
    (event,) = events_of(body["id"])
    assert (event.seq, event.type, event.data["pending"]) == (1, "batch.progress", 3)


def test_a_template_batch_runs_in_the_callers_only_workspace(api_client, workspace, catalog):
    body = created(api_client, {"templateId": TEMPLATE, "inputs": ["a"], "totalBudgetUsd": 2})
    assert (body["templateId"], body["swarmId"], body["versionId"]) == (TEMPLATE, None, None)
    assert body["workspaceId"] == workspace.pk
    assert body["itemBudgetUsd"] == 2


def test_a_jsonl_body_takes_its_settings_from_the_query(api_client, swarm):
    upload = '"first"\n\n{"task": "second", "customId": "b"}\r\n   \n"third"'
    response = api_client.generic(
        "POST",
        f"/api/batches?swarmId={swarm.pk}&totalBudgetUsd=0.9&budgetMode=split&concurrency=1",
        upload.encode(),
        content_type="application/x-ndjson",
    )
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    assert [(i.task, i.custom_id) for i in items_of(batch_id)] == [
        ("first", ""), ("second", "b"), ("third", ""),
    ]  # fmt: skip
    assert Batch.objects.get(pk=batch_id).item_budget_usd == Decimal("0.3")


def test_a_multipart_upload_takes_its_settings_from_the_form(api_client, swarm):
    upload = SimpleUploadedFile(
        "inputs.jsonl", b'"one"\n{"task": "two"}\n', content_type="application/x-ndjson"
    )
    response = api_client.post(
        "/api/batches",
        {"file": upload, "swarmId": swarm.pk, "totalBudgetUsd": "1", "budgetMode": "per_item",
         "perItemBudgetUsd": "0.4"},
        format="multipart",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["budgetMode"], body["itemBudgetUsd"]) == ("per_item", 0.4)
    assert [i.task for i in items_of(body["id"])] == ["one", "two"]


def test_bad_items_are_a_400_naming_each_one_and_nothing_is_created(api_client, swarm):
    response = create(
        api_client,
        {
            "swarmId": swarm.pk,
            "totalBudgetUsd": 1,
            "inputs": ["fine", 5, {"task": ""}, {"tusk": "typo"}, {"customId": "c"},
                       {"task": "ok", "customId": "dup"}, {"task": "ok", "customId": "dup"},
                       "nul\x00"],
        },
    )  # fmt: skip
    body = assert_problem(response, 400, "invalid_request")
    fields = [error["field"] for error in body["errors"]]
    assert fields == [
        "inputs[1]", "inputs[2].task", "inputs[3]", "inputs[4].task", "inputs[6].customId",
        "inputs[7]",
    ]  # fmt: skip
    assert body["errors"][0]["pointer"] == "#/inputs/1"
    assert "inputs[1]" in body["detail"]
    assert "'tusk'" in body["errors"][2]["detail"]
    nothing_created()


def test_a_bad_line_of_an_upload_is_a_400_naming_the_line(api_client, swarm):
    upload = '"fine"\n\n{"task": "ok"\n7\n{"task": "fine too"}\n'
    response = api_client.generic(
        "POST", f"/api/batches?swarmId={swarm.pk}&totalBudgetUsd=1", upload.encode(),
        content_type="application/x-ndjson",
    )  # fmt: skip
    body = assert_problem(response, 400, "invalid_request")
    # Blank lines are skipped but counted: line 3 is item 1, line 4 item 2.
    assert [(e["field"], e["detail"].split(":")[0]) for e in body["errors"]] == [
        ("inputs[1]", "line 3"), ("inputs[2]", "line 4"),
    ]  # fmt: skip
    assert "not valid JSON" in body["errors"][0]["detail"]
    assert "line 3" in body["detail"] and "line 4" in body["detail"]
    nothing_created()


def test_a_bad_line_of_a_multipart_upload_names_the_file_and_line(api_client, swarm):
    upload = SimpleUploadedFile("in.jsonl", b'"a"\n[1, 2]\n')
    response = api_client.post(
        "/api/batches", {"file": upload, "swarmId": swarm.pk, "totalBudgetUsd": "1"},
        format="multipart",
    )  # fmt: skip
    body = assert_problem(response, 400, "invalid_request")
    assert [(e["field"], e["detail"].split(":")[0]) for e in body["errors"]] == [
        ("file[1]", "line 2")
    ]
    nothing_created()


@pytest.mark.parametrize(
    ("inputs", "field"),
    [([], "inputs"), (["t"] * (MAX_ITEMS + 1), "inputs"), ("not a list", "inputs")],
    ids=["none", "too-many", "not-a-list"],
)
def test_the_number_of_inputs_is_1_to_the_documented_maximum(api_client, swarm, inputs, field):
    response = create(api_client, {"swarmId": swarm.pk, "totalBudgetUsd": 1, "inputs": inputs})
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == field
    nothing_created()


def test_the_maximum_number_of_inputs_is_accepted(api_client, swarm):
    body = created(api_client, {"swarmId": swarm.pk, "totalBudgetUsd": 100,
                                "inputs": ["t"] * MAX_ITEMS})  # fmt: skip
    assert body["counts"]["total"] == MAX_ITEMS
    assert body["itemBudgetUsd"] == Decimal("0.1")


def test_an_upload_over_1_mib_is_413(api_client, swarm):
    line = '"' + "x" * 1000 + '"\n'
    upload = (line * 1100).encode()
    response = api_client.generic(
        "POST", f"/api/batches?swarmId={swarm.pk}&totalBudgetUsd=1", upload,
        content_type="application/x-ndjson",
    )  # fmt: skip
    assert_problem(response, 413, "payload_too_large")
    response = api_client.post(
        "/api/batches",
        {"file": SimpleUploadedFile("big.jsonl", upload), "swarmId": swarm.pk,
         "totalBudgetUsd": "1"},
        format="multipart",
    )  # fmt: skip
    assert_problem(response, 413, "payload_too_large")
    nothing_created()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"swarmId": None}, "swarmId"),  # neither swarm nor template
        ({"templateId": TEMPLATE}, "swarmId"),  # both
        ({"budgetMode": "per_item"}, "perItemBudgetUsd"),  # no cap
        ({"perItemBudgetUsd": "0.1"}, "perItemBudgetUsd"),  # a cap with split
        ({"budgetMode": "per_item", "perItemBudgetUsd": "2"}, "perItemBudgetUsd"),  # cap > total
        ({"totalBudgetUsd": "0.000002"}, "totalBudgetUsd"),  # shares under a micro-dollar
        ({"totalBudgetUsd": "-1"}, "totalBudgetUsd"),
        ({"concurrency": 3}, "concurrency"),  # the free plan runs 2 at once
        ({"concurrency": 0}, "concurrency"),
        ({"budgetMode": "each"}, "budgetMode"),
        ({"extra": 1}, "extra"),
        ({"inputs": None}, "inputs"),
    ],
)
def test_bad_settings_are_a_400_naming_the_field(api_client, swarm, change, field):
    body = {"swarmId": swarm.pk, "totalBudgetUsd": "1", "inputs": ["a", "b", "c"], **change}
    body = {key: value for key, value in body.items() if value is not None or key == "inputs"}
    problem = assert_problem(create(api_client, body), 400, "invalid_request")
    assert field in {error["field"] for error in problem["errors"]}, problem
    nothing_created()


def test_a_json_body_with_settings_in_the_query_is_refused(api_client, swarm):
    response = api_client.post(
        "/api/batches?totalBudgetUsd=5", {"swarmId": swarm.pk, "totalBudgetUsd": 1,
                                          "inputs": ["a"]}, format="json",
    )  # fmt: skip
    assert_problem(response, 400, "invalid_request")
    nothing_created()


def test_an_item_whose_run_could_not_complete_on_its_share_is_a_422_naming_it(api_client, swarm):
    long_task = "word " * 3000
    definition = Definition.from_dict(swarm.default_version.definition)
    short_least, long_least = (
        minimum_cost(definition, task, price_map(), settings.SVERM_MIN_OUTPUT_TOKENS)
        for task in ("short", long_task)
    )
    # Each share fits the short task's run, not the long one's.
    share = ((short_least + long_least) / 2).quantize(Decimal("0.000001"))
    assert short_least < share < long_least
    response = create(
        api_client,
        {"swarmId": swarm.pk, "totalBudgetUsd": str(share * 2), "inputs": ["short", long_task]},
    )
    body = assert_problem(response, 422, "budget_exceeded")
    assert body["index"] == 1 and "inputs[1]" in body["detail"]
    assert body["minimum_cost"] > body["item_budget"] == float(share)
    nothing_created()


def test_a_version_can_be_pinned_and_must_be_the_swarms(api_client, swarm, workspace, user):
    from swarms.services import swarm_version_create

    second = swarm_version_create(swarm=swarm, created_by=user, instructions="Be terse.")
    body = created(api_client, {"swarmId": swarm.pk, "versionId": swarm.default_version_id,
                                "inputs": ["a"], "totalBudgetUsd": 1})  # fmt: skip
    assert body["versionId"] != second.pk
    from tests.factories import make_swarm

    other = make_swarm(workspace, user, name="Other")
    response = create(api_client, {"swarmId": swarm.pk, "versionId": other.default_version_id,
                                   "inputs": ["a"], "totalBudgetUsd": 1})  # fmt: skip
    assert_problem(response, 400, "invalid_request")
    response = create(api_client, {"swarmId": swarm.pk, "versionId": "swv_nothing",
                                   "inputs": ["a"], "totalBudgetUsd": 1})  # fmt: skip
    assert_problem(response, 404, "not_found")


def test_a_deleted_swarm_is_409_and_an_unknown_source_404(api_client, swarm, catalog):
    from swarms.services import swarm_soft_delete

    response = create(api_client, {"templateId": "no-such-template", "inputs": ["a"],
                                   "totalBudgetUsd": 1})  # fmt: skip
    assert_problem(response, 404, "not_found")
    response = create(api_client, {"swarmId": "swm_nothing", "inputs": ["a"],
                                   "totalBudgetUsd": 1})  # fmt: skip
    assert_problem(response, 404, "not_found")
    swarm_soft_delete(swarm=swarm)
    response = create(api_client, {"swarmId": swarm.pk, "inputs": ["a"], "totalBudgetUsd": 1})
    assert_problem(response, 409, "conflict")
    nothing_created()


def test_a_template_batch_of_a_member_of_several_workspaces_names_one(
    api_client, user, workspace, catalog
):
    from accounts.services import workspace_create

    workspace_create(name="Second", owner=user)
    response = create(api_client, {"templateId": TEMPLATE, "inputs": ["a"], "totalBudgetUsd": 1})
    problem = assert_problem(response, 400, "invalid_request")
    assert problem["errors"][0]["field"] == "workspaceId"


def test_the_default_concurrency_is_the_smaller_of_4_and_the_plans(api_client, swarm, workspace):
    body = {"swarmId": swarm.pk, "inputs": ["a"], "totalBudgetUsd": 1}
    assert created(api_client, body)["concurrency"] == 2  # free: 2 at once
    workspace.plan = "pro"
    workspace.save(update_fields=["plan"])
    assert created(api_client, body)["concurrency"] == 4
    assert created(api_client, {**body, "concurrency": 10})["concurrency"] == 10


def test_application_jsonl_is_taken_too_and_text_must_be_utf8(api_client, swarm):
    url = f"/api/batches?swarmId={swarm.pk}&totalBudgetUsd=1"
    response = api_client.generic("POST", url, b'"a"\n', content_type="application/jsonl")
    assert response.status_code == 201, response.content
    assert [i.task for i in items_of(response.json()["id"])] == ["a"]
    latin1 = '"caf\u00e9"\n'.encode("latin-1")
    response = api_client.generic("POST", url, latin1, content_type="application/x-ndjson")
    assert "not UTF-8" in assert_problem(response, 400, "invalid_request")["detail"]
    response = api_client.generic("POST", url, b"", content_type="application/x-ndjson")
    assert assert_problem(response, 400, "invalid_request")["errors"][0]["field"] == "inputs"
    assert Batch.objects.count() == 1


def test_other_media_types_are_415(api_client, swarm):
    response = api_client.generic("POST", "/api/batches", b"task=a", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")
    nothing_created()

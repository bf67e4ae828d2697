"""The webhook endpoints of `/api`: a run's delivery attempts and manual redelivery, the
workspace's `whsec_` secret (shown once, rotated without downtime), and re-enabling URLs a 410
disabled. Deliveries go to the real local receiver of conftest.py."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.roles import Role
from swarms.models import Run, WebhookDelivery, WebhookEndpoint, WebhookSecret
from swarms.webhooks import delivery as webhook_delivery
from swarms.webhooks import signing
from tests.conftest import assert_problem
from tests.factories import create_run, make_run

from .conftest import attempts_settled, verify, wait_deliveries

DELIVERY_KEYS = {
    "id", "runId", "messageId", "attempt", "eventType", "url", "statusCode", "success",
    "latencyMs", "error", "manual", "nextAttemptAt", "createdAt",
}  # fmt: skip
SECRET_KEYS = {"workspaceId", "exists", "createdAt", "rotatedAt", "previousValidUntil"}
ENDPOINT_KEYS = {
    "id", "workspaceId", "url", "disabled", "disabledAt", "disabledReason", "createdAt",
}  # fmt: skip
HOOK_URL = "https://hooks.example.com/sverm"


def finished_run(workspace, *, url: str = HOOK_URL, status: str = "completed") -> Run:
    """A stored run (never executed: `db` tests dispatch nothing)."""
    return make_run(workspace, status=status, task="Count the fjords", webhook_url=url)


def add_delivery(run: Run, *, attempt: int, minutes_ago: int, **fields) -> WebhookDelivery:
    values = {
        "message_id": "msg_01jexample", "url": run.webhook_url, "event_type": "run.completed",
        "status_code": 500, "error": "HTTP 500", "latency_ms": 12,
        "created_at": timezone.now() - timedelta(minutes=minutes_ago), **fields,
    }  # fmt: skip
    return WebhookDelivery.objects.create(
        run=run, workspace_id=run.workspace_id, attempt=attempt, **values
    )


def deliveries_url(run_or_id) -> str:
    return f"/api/runs/{getattr(run_or_id, 'pk', run_or_id)}/webhook-deliveries"


def secret_url(workspace) -> str:
    return f"/api/workspaces/{workspace.pk}/webhook-secret"


def endpoints_url(workspace) -> str:
    return f"/api/workspaces/{workspace.pk}/webhook-endpoints"


def enable_url(workspace, endpoint_id) -> str:
    return f"{endpoints_url(workspace)}/{endpoint_id}/enable"


def disabled_endpoint(workspace, url: str, reason: str = "Answered 410 Gone.") -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        workspace=workspace, url=url, url_hash=hashlib.sha256(url.encode()).hexdigest(),
        disabled_at=timezone.now(), disabled_reason=reason,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# GET /api/runs/{run_id}/webhook-deliveries
# ---------------------------------------------------------------------------------------------
def test_deliveries_are_listed_newest_first_with_every_field(api_client, workspace):
    run = finished_run(workspace)
    first = add_delivery(run, attempt=1, minutes_ago=30)
    retried_at = timezone.now() + timedelta(minutes=5)
    second = add_delivery(run, attempt=2, minutes_ago=20, next_attempt_at=retried_at)
    third = add_delivery(
        run, attempt=3, minutes_ago=10, status_code=200, error="", success=True, manual=True
    )
    add_delivery(finished_run(workspace), attempt=1, minutes_ago=5)  # another run's

    response = api_client.get(deliveries_url(run))
    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["id"] for item in body["data"]] == [third.pk, second.pk, first.pk]
    assert body["pageInfo"]["total"] == 3
    newest = body["data"][0]
    assert set(newest) == DELIVERY_KEYS
    assert newest == {
        **newest,
        "runId": run.pk, "messageId": "msg_01jexample", "attempt": 3,
        "eventType": "run.completed", "url": HOOK_URL, "statusCode": 200, "success": True,
        "latencyMs": 12, "error": "", "manual": True, "nextAttemptAt": None,
    }  # fmt: skip
    assert parse_datetime(newest["createdAt"]) == third.created_at
    assert parse_datetime(body["data"][1]["nextAttemptAt"]) == retried_at
    assert body["data"][2]["error"] == "HTTP 500" and body["data"][2]["statusCode"] == 500


def test_deliveries_page_with_keyset_cursors(api_client, workspace):
    run = finished_run(workspace)
    rows = [add_delivery(run, attempt=n, minutes_ago=60 - n) for n in range(1, 6)]
    expected = [row.pk for row in reversed(rows)]

    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&after={cursor}" if cursor else "")
        page = api_client.get(deliveries_url(run) + query).json()
        seen += [item["id"] for item in page["data"]]
        pages += 1
        assert page["pageInfo"]["hasPreviousPage"] == (pages > 1)
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert seen == expected and pages == 3

    # `cursor` ends page 2 (the 4th row): the page before it is the 2nd and 3rd rows.
    back = api_client.get(deliveries_url(run) + f"?limit=2&before={cursor}").json()
    assert [item["id"] for item in back["data"]] == expected[1:3]
    assert back["pageInfo"]["hasPreviousPage"] and back["pageInfo"]["hasNextPage"]


def test_deliveries_filter_and_order_and_bad_input(api_client, workspace):
    run = finished_run(workspace)
    failed = add_delivery(run, attempt=1, minutes_ago=3)
    ok = add_delivery(run, attempt=2, minutes_ago=2, status_code=204, error="", success=True)
    url = deliveries_url(run)

    only_ok = api_client.get(url, {"filter": json.dumps({"success": {"eq": True}})}).json()
    assert [item["id"] for item in only_ok["data"]] == [ok.pk]
    oldest_first = api_client.get(url, {"orderBy": json.dumps([{"attempt": "asc"}])}).json()
    assert [item["id"] for item in oldest_first["data"]] == [failed.pk, ok.pk]
    by_id = api_client.get(url, {"ids": str(failed.pk)}).json()
    assert [item["id"] for item in by_id["data"]] == [failed.pk]

    body = assert_problem(api_client.get(url, {"filter": '{"nope": {}}'}), 400, "invalid_request")
    assert "nope" in body["detail"]
    assert_problem(api_client.get(url, {"ids": "msg_x"}), 400, "invalid_request")
    assert_problem(api_client.get(url, {"limit": "0"}), 400, "invalid_request")


def test_delivery_list_costs_a_fixed_number_of_queries(
    api_client, workspace, django_assert_max_num_queries
):
    run = finished_run(workspace)
    for n in range(1, 13):
        add_delivery(run, attempt=n, minutes_ago=n)
    # auth user + memberships + the run + count + page: nothing per row.
    with django_assert_max_num_queries(5):
        assert len(api_client.get(deliveries_url(run)).json()["data"]) == 12


def test_another_workspaces_run_is_404_to_list_and_redeliver(api_client, other_workspace):
    run = finished_run(other_workspace)
    add_delivery(run, attempt=1, minutes_ago=1)
    assert_problem(api_client.get(deliveries_url(run)), 404, "not_found")
    assert_problem(api_client.post(deliveries_url(run)), 404, "not_found")
    assert_problem(api_client.get(deliveries_url("run_nope")), 404, "not_found")
    # Narrowing to a workspace you are not in is 404 too, not an empty page.
    mine = api_client.get(deliveries_url(run), {"workspace_id": other_workspace.pk})
    assert_problem(mine, 404, "not_found")


def test_a_viewer_lists_but_may_not_redeliver(client_for, member_of, workspace):
    run = finished_run(workspace)
    add_delivery(run, attempt=1, minutes_ago=1)
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert viewer.get(deliveries_url(run)).json()["pageInfo"]["total"] == 1
    body = assert_problem(viewer.post(deliveries_url(run)), 403, "forbidden")
    assert "operator" in body["detail"]


# ---------------------------------------------------------------------------------------------
# POST /api/runs/{run_id}/webhook-deliveries (manual redelivery)
# ---------------------------------------------------------------------------------------------
def test_redelivery_is_accepted_and_queued_after_commit(
    client_for, member_of, workspace, django_capture_on_commit_callbacks
):
    run = finished_run(workspace)
    add_delivery(run, attempt=1, minutes_ago=2)
    add_delivery(run, attempt=2, minutes_ago=1)
    operator = client_for(member_of(workspace, Role.OPERATOR))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator.post(deliveries_url(run))
    assert response.status_code == 202, response.content
    assert response.json() == {"runId": run.pk, "messageId": "msg_01jexample"}
    assert len(callbacks) == 1  # the attempt is queued once the request's writes are committed
    assert callbacks[0].args == (run.pk, "msg_01jexample", 3, 0)
    assert callbacks[0].keywords == {"manual": True}


@pytest.mark.parametrize(
    ("status", "url", "needle"),
    [("running", HOOK_URL, "not finished"), ("completed", "", "no webhook URL")],
    ids=["unfinished", "no-webhook-url"],
)
def test_nothing_to_redeliver_is_409(
    api_client, workspace, django_capture_on_commit_callbacks, status, url, needle
):
    run = finished_run(workspace, url=url, status=status)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        body = assert_problem(api_client.post(deliveries_url(run)), 409, "conflict")
    assert needle in body["detail"] and run.pk in body["detail"]
    assert callbacks == []


def test_redelivery_sends_the_same_message_again_and_is_listed(
    hooks, receiver, workspace, api_client
):
    secret = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    run = create_run(workspace, webhook_url=receiver.url("/again"))
    [first] = wait_deliveries(run, 1)
    assert first.success and not first.manual

    response = api_client.post(deliveries_url(run))
    assert response.status_code == 202, response.content
    assert response.json() == {"runId": run.pk, "messageId": first.message_id}

    requests = receiver.wait_for(2)
    rows = wait_deliveries(run, 2)
    assert rows[1].manual and rows[1].success and rows[1].attempt == 2
    assert requests[1].headers["webhook-id"] == first.message_id
    assert verify(secret, requests[1].headers, requests[1].body)

    listed = api_client.get(deliveries_url(run)).json()["data"]
    assert [(item["attempt"], item["manual"]) for item in listed] == [(2, True), (1, False)]
    assert {item["messageId"] for item in listed} == {first.message_id}


# ---------------------------------------------------------------------------------------------
# /api/workspaces/{workspace_id}/webhook-secret
# ---------------------------------------------------------------------------------------------
def test_the_secret_is_shown_once_and_never_by_get(api_client, workspace):
    before = api_client.get(secret_url(workspace))
    assert before.status_code == 200, before.content
    assert before.json() == {
        "workspaceId": workspace.pk, "exists": False, "createdAt": None, "rotatedAt": None,
        "previousValidUntil": None,
    }  # fmt: skip

    created = api_client.post(secret_url(workspace), {}, format="json")
    assert created.status_code == 201, created.content
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    assert set(body) == SECRET_KEYS | {"secret"}
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["exists"] is True and body["rotatedAt"] is None
    assert body["previousValidUntil"] is None  # nothing was replaced
    assert signing.signing_secrets(workspace.pk) == [secret]

    shown = api_client.get(secret_url(workspace))
    assert set(shown.json()) == SECRET_KEYS
    assert shown.json()["exists"] is True
    assert secret.encode() not in shown.content
    assert secret.removeprefix("whsec_").encode() not in shown.content
    stored = WebhookSecret.objects.get(workspace=workspace)
    assert secret not in stored.current_encrypted  # encrypted at rest


def test_rotation_keeps_the_previous_secret_signing_for_the_grace_period(api_client, workspace):
    old = api_client.post(secret_url(workspace), {}, format="json").json()["secret"]
    rotated = api_client.post(secret_url(workspace), {}, format="json").json()
    new = rotated["secret"]
    assert new != old
    valid_until = parse_datetime(rotated["previousValidUntil"])
    expected = timezone.now() + signing.ROTATION_GRACE
    assert abs((valid_until - expected).total_seconds()) < 60
    assert parse_datetime(rotated["rotatedAt"]) <= timezone.now()
    assert signing.signing_secrets(workspace.pk) == [new, old]
    shown = api_client.get(secret_url(workspace)).json()
    assert shown["previousValidUntil"] == rotated["previousValidUntil"]

    hour = api_client.post(secret_url(workspace), {"gracePeriodSeconds": 3600}, format="json")
    valid_until = parse_datetime(hour.json()["previousValidUntil"])
    assert abs((valid_until - timezone.now()).total_seconds() - 3600) < 60
    assert signing.signing_secrets(workspace.pk) == [hour.json()["secret"], new]


def test_a_zero_grace_period_stops_the_previous_secret_at_once(api_client, workspace):
    api_client.post(secret_url(workspace), {}, format="json")
    leaked = api_client.post(secret_url(workspace), {"gracePeriodSeconds": 0}, format="json")
    assert leaked.status_code == 201, leaked.content
    assert leaked.json()["previousValidUntil"] is None
    assert signing.signing_secrets(workspace.pk) == [leaked.json()["secret"]]
    assert api_client.get(secret_url(workspace)).json()["previousValidUntil"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gracePeriodSeconds": -1}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": 8 * 24 * 3600}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": "soon"}, "gracePeriodSeconds"),
        ({"secret": "whsec_mine"}, "secret"),
        ([], "Expected a JSON object"),
    ],
    ids=["negative", "over-a-week", "not-a-number", "own-secret", "not-an-object"],
)
def test_bad_rotation_bodies_are_400_and_change_nothing(api_client, workspace, body, field):
    response = api_client.post(secret_url(workspace), body, format="json")
    problem = assert_problem(response, 400, "invalid_request")
    assert field in json.dumps(problem["errors"]) or field in problem["detail"]
    assert not WebhookSecret.objects.filter(workspace=workspace).exists()


def test_only_admins_rotate_and_strangers_get_404(
    client_for, member_of, key_client, workspace, other_workspace, api_client
):
    operator = client_for(member_of(workspace, Role.OPERATOR))
    assert_problem(operator.post(secret_url(workspace), {}, format="json"), 403, "forbidden")
    operator_key, _key, _raw = key_client(workspace, Role.OPERATOR)
    assert_problem(operator_key.post(secret_url(workspace), {}, format="json"), 403, "forbidden")
    viewer = client_for(member_of(workspace, Role.VIEWER))
    assert viewer.get(secret_url(workspace)).json()["exists"] is False
    assert not WebhookSecret.objects.filter(workspace=workspace).exists()

    admin_key, _key, _raw = key_client(workspace, Role.ADMIN)
    assert admin_key.post(secret_url(workspace), {}, format="json").status_code == 201

    stranger = api_client  # admin of `workspace`, not a member of `other_workspace`
    assert_problem(stranger.get(secret_url(other_workspace)), 404, "not_found")
    assert_problem(stranger.post(secret_url(other_workspace), {}, format="json"), 404, "not_found")
    assert not WebhookSecret.objects.filter(workspace=other_workspace).exists()


def test_a_secret_created_concurrently_is_rotated_not_a_server_error(
    api_client, workspace, monkeypatch
):
    """Two first rotations (or a rotation and a first delivery) race: the loser's lookup found
    no row, its insert meets the winner's. It rotates the winner's secret instead."""
    winner = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    real_first = QuerySet.first
    looked = []

    def first_misses_once(queryset):
        if queryset.model is WebhookSecret and not looked:
            looked.append(True)
            return None  # the lookup ran before the winner's insert committed
        return real_first(queryset)

    monkeypatch.setattr(QuerySet, "first", first_misses_once)
    response = api_client.post(secret_url(workspace), {}, format="json")
    assert response.status_code == 201, response.content
    assert looked and response.json()["previousValidUntil"] is not None
    assert signing.signing_secrets(workspace.pk) == [response.json()["secret"], winner]
    assert WebhookSecret.objects.filter(workspace=workspace).count() == 1


def test_deliveries_after_an_api_rotation_carry_both_signatures(
    hooks, receiver, workspace, api_client
):
    old = api_client.post(secret_url(workspace), {}, format="json").json()["secret"]
    new = api_client.post(secret_url(workspace), {}, format="json").json()["secret"]
    run = create_run(workspace, webhook_url=receiver.url())
    [request] = receiver.wait_for(1)
    wait_deliveries(run, 1)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert verify(old, request.headers, request.body)
    assert verify(new, request.headers, request.body)

    # Once the grace is cut to nothing, only the newest secret signs.
    newest = api_client.post(secret_url(workspace), {"gracePeriodSeconds": 0}, format="json")
    newest = newest.json()["secret"]
    second = create_run(
        workspace, webhook_url=receiver.url(), task="A second look at the wind market"
    )
    requests = receiver.wait_for(2)
    wait_deliveries(second, 1)
    assert len(requests[1].headers["webhook-signature"].split(" ")) == 1
    assert verify(newest, requests[1].headers, requests[1].body)
    assert not verify(new, requests[1].headers, requests[1].body)


# ---------------------------------------------------------------------------------------------
# /api/workspaces/{workspace_id}/webhook-endpoints
# ---------------------------------------------------------------------------------------------
def test_endpoints_are_listed_with_their_state(api_client, workspace, other_workspace):
    gone = disabled_endpoint(workspace, "https://old.example.com/hook")
    back = disabled_endpoint(workspace, "https://back.example.com/hook")
    webhook_delivery.webhook_endpoint_enable(workspace_id=workspace.pk, url=back.url)
    disabled_endpoint(other_workspace, "https://theirs.example.com/hook")

    body = api_client.get(endpoints_url(workspace)).json()
    assert body["pageInfo"]["total"] == 2
    by_url = {item["url"]: item for item in body["data"]}
    assert set(by_url) == {gone.url, back.url}
    assert set(by_url[gone.url]) == ENDPOINT_KEYS
    assert by_url[gone.url]["disabled"] is True
    assert by_url[gone.url]["disabledReason"] == "Answered 410 Gone."
    assert parse_datetime(by_url[gone.url]["disabledAt"]) == gone.disabled_at
    assert by_url[back.url]["disabled"] is False and by_url[back.url]["disabledAt"] is None

    only_disabled = api_client.get(endpoints_url(workspace), {"disabled": "true"}).json()
    assert [item["url"] for item in only_disabled["data"]] == [gone.url]
    enabled = api_client.get(endpoints_url(workspace), {"disabled": "false"}).json()
    assert [item["url"] for item in enabled["data"]] == [back.url]
    assert_problem(
        api_client.get(endpoints_url(workspace), {"disabled": "maybe"}), 400, "invalid_request"
    )


def test_an_admin_re_enables_an_endpoint(api_client, client_for, member_of, workspace):
    gone = disabled_endpoint(workspace, "https://old.example.com/hook")
    operator = client_for(member_of(workspace, Role.OPERATOR))
    assert_problem(operator.post(enable_url(workspace, gone.pk)), 403, "forbidden")
    gone.refresh_from_db()
    assert gone.disabled_at is not None

    response = api_client.post(enable_url(workspace, gone.pk))
    assert response.status_code == 200, response.content
    assert response.json()["disabled"] is False and response.json()["disabledReason"] == ""
    gone.refresh_from_db()
    assert gone.disabled_at is None
    assert not webhook_delivery.endpoint_disabled(workspace.pk, gone.url)
    # Enabling an enabled endpoint changes nothing.
    assert api_client.post(enable_url(workspace, gone.pk)).json()["disabled"] is False


def test_endpoints_of_another_workspace_are_404(api_client, workspace, other_workspace):
    theirs = disabled_endpoint(other_workspace, "https://theirs.example.com/hook")
    assert_problem(api_client.get(endpoints_url(other_workspace)), 404, "not_found")
    assert_problem(api_client.post(enable_url(other_workspace, theirs.pk)), 404, "not_found")
    # Their id under your own workspace is no more visible.
    assert_problem(api_client.post(enable_url(workspace, theirs.pk)), 404, "not_found")
    for missing in ("424242", "99999999999999999999999", "abc"):
        assert_problem(api_client.post(enable_url(workspace, missing)), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.disabled_at is not None


def test_a_410_disables_and_re_enabling_through_the_api_delivers_again(
    hooks, receiver, workspace, api_client
):
    receiver.script = [(410, {})]
    url = receiver.url("/gone")
    first = create_run(workspace, webhook_url=url)
    wait_deliveries(first, 1)
    [listed] = api_client.get(endpoints_url(workspace), {"disabled": "true"}).json()["data"]
    assert listed["url"] == url and listed["disabledReason"] == "Answered 410 Gone."

    second = create_run(workspace, webhook_url=url, task="Skipped while disabled")
    [skipped] = wait_deliveries(second, 1)
    assert skipped.status_code is None and len(receiver.requests) == 1

    enabled = api_client.post(enable_url(workspace, listed["id"]))
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    third = create_run(workspace, webhook_url=url, task="Delivered once more")
    [delivered] = wait_deliveries(third, 1)
    assert delivered.success and delivered.status_code == 200
    assert len(receiver.requests) == 2
    attempts_settled()
    assert api_client.get(endpoints_url(workspace), {"disabled": "true"}).json()["data"] == []

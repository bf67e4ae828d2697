"""`/api/schedules` over HTTP: create (swarm or template), read, list (filters, orderBy,
keyset), change, pause and resume, delete; validation 400s naming the field; roles and 404s;
idempotent creation; the firings list."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.roles import Role
from audit.models import AuditEvent
from schedules.cron import next_fire_after, zone_get
from schedules.models import Schedule
from swarms.services import swarm_soft_delete, swarm_version_create
from tests.conftest import assert_problem
from tests.factories import make_swarm
from tests.schedules.conftest import iso, later, parse, stored, tick

pytestmark = pytest.mark.usefixtures("not_executing")

SCHEDULE_KEYS = {
    "id", "workspaceId", "name", "swarmId", "versionId", "templateId", "task", "maxBudgetUsd",
    "webhookUrl", "cron", "timezone", "startsAt", "endsAt", "maxRuns", "monthlyCapUsd",
    "overlapPolicy", "catchUpSeconds", "paused", "state", "nextRunAt", "runsMade", "lastFiredAt",
    "lastError", "createdBy", "createdAt", "updatedAt",
}  # fmt: skip


def test_create_a_swarm_schedule_shows_when_it_fires_next(api_client, make_schedule, swarm, user):
    before = timezone.now()
    body = make_schedule(cron="30 2 * * *", timezone="Europe/Oslo", maxBudgetUsd="0.5")
    assert set(body) == SCHEDULE_KEYS
    assert body["id"].startswith("sch_")
    assert (body["swarmId"], body["versionId"], body["templateId"]) == (swarm.pk, None, "")
    assert (body["cron"], body["timezone"], body["overlapPolicy"]) == (
        "30 2 * * *", "Europe/Oslo", "skip"
    )  # fmt: skip
    assert body["maxBudgetUsd"] == 0.5
    assert (body["state"], body["paused"], body["runsMade"]) == ("active", False, 0)
    assert body["catchUpSeconds"] == 3600
    assert body["createdBy"] == user.pk
    expected = next_fire_after("30 2 * * *", zone_get("Europe/Oslo"), before)
    assert parse(body["nextRunAt"]) == expected
    assert expected.astimezone(zone_get("Europe/Oslo")).strftime("%H:%M") in ("02:30", "03:00")
    assert api_client.get(f"/api/schedules/{body['id']}").json() == body


def test_create_a_template_schedule(make_schedule):
    body = make_schedule(swarmId=None, templateId="research-swarm-v1", cron="@daily")
    assert (body["swarmId"], body["templateId"], body["cron"]) == (None, "research-swarm-v1",
                                                                   "@daily")  # fmt: skip
    assert body["maxBudgetUsd"] == 1.0


def test_a_default_budget_and_zone(make_schedule):
    body = make_schedule(maxBudgetUsd=None)
    assert (body["maxBudgetUsd"], body["timezone"]) == (5.0, "UTC")


def test_pinned_version(api_client, make_schedule, swarm, user):
    v2 = swarm_version_create(swarm=swarm, created_by=user, instructions="Terse.")
    body = make_schedule(versionId=v2.pk)
    assert body["versionId"] == v2.pk
    unpinned = api_client.patch(f"/api/schedules/{body['id']}", {"versionId": None}, format="json")
    assert unpinned.status_code == 200, unpinned.content
    assert unpinned.json()["versionId"] is None
    pinned = api_client.patch(
        f"/api/schedules/{body['id']}", {"versionId": swarm.default_version_id}, format="json"
    )
    assert pinned.json()["versionId"] == swarm.default_version_id


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"cron": "61 * * * *"}, "cron", "out of range"),
        ({"cron": "* * *"}, "cron", "5 fields"),
        ({"cron": "* * * * * */5"}, "cron", "5 fields"),  # seconds: tests only (a setting)
        ({"cron": "0 0 31 2 *"}, "cron", "never fires"),
        ({"cron": 5}, "cron", "valid string"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"timezone": "CEST"}, "timezone", "IANA"),
        ({"templateId": "research-swarm-v1"}, "swarmId", "exactly one"),
        ({"swarmId": None}, "swarmId", "exactly one"),
        ({"swarmId": "swm_nothing"}, "swarmId", "No swarm"),
        ({"swarmId": None, "templateId": "no-such-template"}, "templateId", "No template"),
        ({"versionId": "swv_nothing"}, "versionId", "Not a version"),
        ({"maxBudgetUsd": "0"}, "maxBudgetUsd", "greater than or equal"),
        ({"monthlyCapUsd": "-1"}, "monthlyCapUsd", "greater than or equal"),
        ({"maxRuns": 0}, "maxRuns", "greater than or equal"),
        ({"overlapPolicy": "pile_up"}, "overlapPolicy", "not a valid choice"),
        ({"catchUpSeconds": 5}, "catchUpSeconds", "greater than or equal"),
        ({"startsAt": "2030-01-02T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}, "endsAt",
         "after startsAt"),
        ({"endsAt": "2001-01-01T00:00:00Z"}, "endsAt", "future"),
        ({"startsAt": "9999-12-31T23:59:00Z"}, "startsAt", "after the start date"),
        ({"startsAt": "tomorrow"}, "startsAt", "format"),
        ({"webhookUrl": "http://127.0.0.1/hook"}, "webhookUrl", ""),
        ({"colour": "blue"}, "colour", "Unknown field"),
    ],
)  # fmt: skip
def test_invalid_bodies_are_400_naming_the_field(api_client, workspace, swarm, body, field, says):
    payload = {"workspaceId": workspace.pk, "name": "Bad", "swarmId": swarm.pk, "task": "Go",
               "cron": "0 * * * *", **body}  # fmt: skip
    payload = {key: value for key, value in payload.items() if value is not None}
    response = api_client.post("/api/schedules", payload, format="json")
    problem = assert_problem(response, 400, "invalid_request")
    assert [error["field"] for error in problem["errors"]] == [field], problem
    assert says in problem["errors"][0]["detail"], problem
    assert field in problem["detail"]
    assert not Schedule.objects.exists()


def test_a_schedule_that_could_never_run_before_its_end_is_refused(api_client, make_schedule):
    body = make_schedule()
    # Hourly from 10:00 UTC, ending at 10:30 UTC on a day ahead: one slot fits...
    start = (later(days=10)).replace(hour=10, minute=0, second=0, microsecond=0)
    ok = api_client.patch(
        f"/api/schedules/{body['id']}", {"startsAt": iso(start - timedelta(minutes=1)),
                                         "endsAt": iso(start + timedelta(minutes=30))},
        format="json",
    )  # fmt: skip
    assert ok.status_code == 200, ok.content
    assert parse(ok.json()["nextRunAt"]) == start
    # ...none between 10:05 and 10:30.
    refused = api_client.patch(
        f"/api/schedules/{body['id']}", {"startsAt": iso(start + timedelta(minutes=5))},
        format="json",
    )  # fmt: skip
    problem = assert_problem(refused, 400, "invalid_request")
    assert problem["errors"][0]["field"] == "endsAt"


def test_a_deleted_swarm_cannot_be_scheduled(api_client, workspace, swarm):
    swarm_soft_delete(swarm=swarm)
    response = api_client.post("/api/schedules", {
        "workspaceId": workspace.pk, "name": "x", "swarmId": swarm.pk, "task": "Go",
        "cron": "@hourly"}, format="json")  # fmt: skip
    assert_problem(response, 409, "conflict")


def test_a_swarm_of_another_workspace_is_400_not_a_leak(api_client, workspace, other_workspace):
    theirs = make_swarm(other_workspace, name="Theirs")
    response = api_client.post("/api/schedules", {
        "workspaceId": workspace.pk, "name": "x", "swarmId": theirs.pk, "task": "Go",
        "cron": "@hourly"}, format="json")  # fmt: skip
    problem = assert_problem(response, 400, "invalid_request")
    assert problem["errors"][0]["field"] == "swarmId"


# --- change, pause, resume, delete ---------------------------------------------------------------
def test_patch_recomputes_next_run(api_client, make_schedule):
    body = make_schedule(cron="0 9 * * *", timezone="UTC")
    changed = api_client.patch(
        f"/api/schedules/{body['id']}",
        {"cron": "0 9 * * *", "timezone": "America/New_York", "name": "NY digest",
         "overlapPolicy": "queue", "monthlyCapUsd": "20", "maxRuns": 5, "catchUpSeconds": 600},
        format="json",
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    after = changed.json()
    assert (after["name"], after["timezone"], after["overlapPolicy"]) == (
        "NY digest", "America/New_York", "queue"
    )  # fmt: skip
    assert (after["monthlyCapUsd"], after["maxRuns"], after["catchUpSeconds"]) == (20.0, 5, 600)
    assert parse(after["nextRunAt"]) == next_fire_after(
        "0 9 * * *", zone_get("America/New_York"), timezone.now()
    )
    assert after["nextRunAt"] != body["nextRunAt"]
    event = AuditEvent.objects.filter(action="schedule.update", target_id=body["id"]).get()
    assert event.before["timezone"] == "UTC" and event.after["timezone"] == "America/New_York"
    assert event.actor_type == "user"


def test_patch_validates_like_create(api_client, make_schedule):
    body = make_schedule()
    for patch, field in [
        ({"cron": "nope"}, "cron"),
        ({"timezone": "Nowhere"}, "timezone"),
        ({"swarmId": "swm_x"}, "swarmId"),
        ({"versionId": "swv_x"}, "versionId"),
    ]:
        response = api_client.patch(f"/api/schedules/{body['id']}", patch, format="json")
        problem = assert_problem(response, 400, "invalid_request")
        assert problem["errors"][0]["field"] == field
    assert api_client.get(f"/api/schedules/{body['id']}").json() == body


def test_pause_and_resume(api_client, make_schedule):
    body = make_schedule(cron="*/5 * * * *")
    paused = api_client.post(f"/api/schedules/{body['id']}/pause")
    assert paused.status_code == 200, paused.content
    assert (paused.json()["paused"], paused.json()["state"], paused.json()["nextRunAt"]) == (
        True, "paused", None
    )  # fmt: skip
    assert tick(later(hours=2)) == []  # nothing fires while paused
    assert api_client.post(f"/api/schedules/{body['id']}/pause").json()["paused"] is True
    asked = timezone.now()
    resumed = api_client.post(f"/api/schedules/{body['id']}/resume").json()
    answered = timezone.now()
    assert (resumed["paused"], resumed["state"]) == (False, "active")
    # From the next slot after the resume: none of those that passed while paused.
    assert parse(resumed["nextRunAt"]) in {
        next_fire_after("*/5 * * * *", zone_get("UTC"), at) for at in (asked, answered)
    }
    actions = list(
        AuditEvent.objects.filter(target_id=body["id"]).order_by("created_at")
        .values_list("action", flat=True)
    )  # fmt: skip
    assert actions == ["schedule.create", "schedule.pause", "schedule.resume"]


def test_delete(api_client, make_schedule):
    body = make_schedule()
    tick(parse(body["nextRunAt"]) + timedelta(seconds=1))
    run_id = stored(body["id"]).firings.get().run_id
    response = api_client.delete(f"/api/schedules/{body['id']}")
    assert response.status_code == 200 and response.json() == {"success": True}
    assert_problem(api_client.get(f"/api/schedules/{body['id']}"), 404, "not_found")
    assert api_client.get(f"/api/runs/{run_id}").status_code == 200  # its runs stay
    assert AuditEvent.objects.filter(action="schedule.delete", target_id=body["id"]).exists()


# --- lists ----------------------------------------------------------------------------------------
def test_list_filters_orders_and_pages(api_client, workspace, make_schedule, swarm):
    other = make_swarm(workspace, name="Other")
    hourly = make_schedule(name="Hourly digest", cron="0 * * * *")
    daily = make_schedule(name="Daily", cron="0 6 * * *", swarmId=other.pk)
    templated = make_schedule(name="Templated", swarmId=None, templateId="research-swarm-v1",
                              cron="*/10 * * * *")  # fmt: skip
    api_client.post(f"/api/schedules/{daily['id']}/pause")

    def ids(query: str) -> list[str]:
        response = api_client.get(f"/api/schedules?workspace_id={workspace.pk}&{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["data"]]

    assert ids("") == [templated["id"], daily["id"], hourly["id"]]  # newest first
    assert ids("paused=true") == [daily["id"]]
    assert ids("state=active") == [templated["id"], hourly["id"]]
    assert ids(f"swarm_id={swarm.pk}") == [hourly["id"]]
    assert ids("template_id=research-swarm-v1") == [templated["id"]]
    assert ids("name=digest") == [hourly["id"]]
    assert ids('filter={"paused": {"eq": false}, "cron": {"startsWith": "*/"}}') == [
        templated["id"]
    ]
    assert ids('filter={"swarm": {"name": {"eq": "Other"}}}') == [daily["id"]]
    active = sorted(
        (stored(body["id"]).next_run_at, body["id"]) for body in (hourly, templated)
    )  # ties broken by id; the paused one (no next run) last
    assert ids('orderBy=[{"nextRunAt": "asc"}]') == [pk for _at, pk in active] + [daily["id"]]
    page = api_client.get(f"/api/schedules?workspace_id={workspace.pk}&limit=2").json()
    assert page["pageInfo"]["total"] == 3 and page["pageInfo"]["hasNextPage"] is True
    rest = api_client.get(
        f"/api/schedules?workspace_id={workspace.pk}&limit=2&after={page['pageInfo']['endCursor']}"
    ).json()
    assert [row["id"] for row in page["data"] + rest["data"]] == ids("")
    for bad in ("paused=maybe", "state=sleeping", 'filter={"colour": {"eq": 1}}',
                'orderBy=[{"task": "asc"}]'):  # fmt: skip
        assert_problem(api_client.get(f"/api/schedules?{bad}"), 400, "invalid_request")


def test_the_list_costs_a_fixed_number_of_queries(
    api_client, workspace, make_schedule, django_assert_max_num_queries
):
    for n in range(5):
        make_schedule(name=f"s{n}")
    with django_assert_max_num_queries(8):
        response = api_client.get(f"/api/schedules?workspace_id={workspace.pk}")
    assert len(response.json()["data"]) == 5


def test_the_firings_list_costs_a_fixed_number_of_queries(
    api_client, make_schedule, django_assert_max_num_queries
):
    body = make_schedule(cron="*/5 * * * *", overlapPolicy="cancel_previous")
    first = parse(body["nextRunAt"])
    for n in range(6):
        tick(first + timedelta(minutes=5 * n))
    with django_assert_max_num_queries(8):
        response = api_client.get(f"/api/schedules/{body['id']}/firings")
    assert [row["run"]["status"] for row in response.json()["data"]] == ["queued"] + [
        "cancelled"
    ] * 5


def test_firings_list(api_client, make_schedule, swarm):
    body = make_schedule(cron="*/30 * * * *", overlapPolicy="skip")
    first = parse(body["nextRunAt"])
    tick(first + timedelta(seconds=2))  # starts a run (it stays queued: nothing executes here)
    tick(first + timedelta(minutes=30, seconds=2))  # the run is still active: skipped
    response = api_client.get(f"/api/schedules/{body['id']}/firings")
    assert response.status_code == 200, response.content
    rows = response.json()["data"]
    assert [row["outcome"] for row in rows] == ["skipped_overlap", "started"]  # newest first
    started = rows[1]
    assert parse(started["slotAt"]) == first
    assert started["run"]["id"] == started["runId"] and started["run"]["status"] == "queued"
    assert started["run"]["currentCostUsd"] == 0
    assert rows[0]["run"] is None and started["runId"] in rows[0]["reason"]
    only_runs = api_client.get(f"/api/schedules/{body['id']}/firings?outcome=started").json()
    assert [row["id"] for row in only_runs["data"]] == [started["id"]]
    run = api_client.get(f"/api/runs/{started['runId']}").json()
    assert (run["swarmId"], run["task"], run["maxBudgetUsd"]) == (swarm.pk, "Summarise the news",
                                                                  1.0)  # fmt: skip
    assert_problem(api_client.get("/api/schedules/sch_nothing/firings"), 404, "not_found")


# --- roles and tenancy ---------------------------------------------------------------------------
def test_roles(client_for, member_of, workspace, make_schedule, swarm):
    body = make_schedule()
    viewer = client_for(member_of(workspace, Role.VIEWER))
    operator = client_for(member_of(workspace, Role.OPERATOR))
    assert viewer.get(f"/api/schedules/{body['id']}").status_code == 200
    assert viewer.get(f"/api/schedules/{body['id']}/firings").status_code == 200
    for method, path, data in [
        ("post", "/api/schedules", {"workspaceId": workspace.pk, "name": "v", "swarmId": swarm.pk,
                                    "task": "t", "cron": "@daily"}),
        ("patch", f"/api/schedules/{body['id']}", {"name": "v"}),
        ("post", f"/api/schedules/{body['id']}/pause", None),
        ("post", f"/api/schedules/{body['id']}/resume", None),
        ("delete", f"/api/schedules/{body['id']}", None),
    ]:  # fmt: skip
        assert_problem(getattr(viewer, method)(path, data, format="json"), 403, "forbidden")
    made = make_schedule(client=operator, name="Operator's")
    assert operator.patch(f"/api/schedules/{made['id']}", {"name": "Mine"},
                          format="json").status_code == 200  # fmt: skip
    assert operator.post(f"/api/schedules/{made['id']}/pause").status_code == 200
    assert operator.delete(f"/api/schedules/{made['id']}").status_code == 200


def test_another_workspace_sees_nothing(client_for, other_user, workspace, make_schedule):
    body = make_schedule()
    stranger = client_for(other_user)
    for method, path in [("get", f"/api/schedules/{body['id']}"),
                         ("patch", f"/api/schedules/{body['id']}"),
                         ("delete", f"/api/schedules/{body['id']}"),
                         ("post", f"/api/schedules/{body['id']}/pause"),
                         ("get", f"/api/schedules/{body['id']}/firings"),
                         ("get", f"/api/schedules?workspace_id={workspace.pk}")]:  # fmt: skip
        assert_problem(getattr(stranger, method)(path, {}, format="json"), 404, "not_found")
    assert stranger.get("/api/schedules").json()["data"] == []
    assert stored(body["id"]).name == "Digest"


# --- idempotency ---------------------------------------------------------------------------------
def test_creation_is_idempotent(api_client, workspace, swarm):
    body = {"workspaceId": workspace.pk, "name": "Once", "swarmId": swarm.pk, "task": "Go",
            "cron": "@hourly"}  # fmt: skip
    headers = {"HTTP_IDEMPOTENCY_KEY": "make-once"}
    first = api_client.post("/api/schedules", body, format="json", **headers)
    again = api_client.post("/api/schedules", body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = api_client.post("/api/schedules", {**body, "name": "Twice"}, format="json", **headers)
    assert_problem(other, 422, "idempotency_key_reused")
    assert Schedule.objects.count() == 1


def test_money_is_exact(make_schedule):
    body = make_schedule(maxBudgetUsd="0.123456", monthlyCapUsd="10.5")
    schedule = stored(body["id"])
    assert schedule.max_budget_usd == Decimal("0.123456")
    assert (body["maxBudgetUsd"], body["monthlyCapUsd"]) == (0.123456, 10.5)

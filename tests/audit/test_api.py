"""`/api/audit-events`: read only, for admins of the workspace (staff: every event), camelCase,
listed newest first with the list engine's filter, orderBy and keyset cursors."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from accounts.roles import Role
from audit.models import AuditEvent
from tests.conftest import assert_problem

EVENT_KEYS = {
    "id", "workspaceId", "actorType", "actorId", "actorLabel", "action", "targetType",
    "targetId", "before", "after", "ip", "correlationId", "createdAt",
}  # fmt: skip


def add(workspace_id, action="swarm.update", *, minutes_ago=0, **fields) -> AuditEvent:
    values = {
        "actor_type": "user", "actor_id": "usr_a", "actor_label": "a@example.com",
        "target_type": action.split(".")[0], "target_id": "swm_1", "ip": "10.0.0.1",
        "correlation_id": "req_1", "before": {"name": "a"}, "after": {"name": "b"},
        "created_at": timezone.now() - timedelta(minutes=minutes_ago), **fields,
    }  # fmt: skip
    return AuditEvent.objects.create(workspace_id=workspace_id, action=action, **values)


def url(**params) -> str:
    return "/api/audit-events" + (f"?{urlencode(params)}" if params else "")


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data", "pageInfo"}
    return [item["id"] for item in body["data"]]


@pytest.fixture
def trail(workspace, other_workspace):
    """Events of the caller's workspace (oldest first), one of a foreign workspace and one
    platform-wide (besides the fixtures' own: the workspaces' creation, just now)."""
    mine = [
        add(workspace.pk, "swarm.create", minutes_ago=50, target_id="swm_1", before=None),
        add(workspace.pk, "swarm.update", minutes_ago=40, target_id="swm_1"),
        add(workspace.pk, "run.create", minutes_ago=30, target_id="run_1", actor_type="api_key",
            actor_id="key_1", actor_label="ci"),
        add(workspace.pk, "run.cancel", minutes_ago=20, target_id="run_1"),
        add(workspace.pk, "member.add", minutes_ago=10, target_id="mem_1", actor_type="admin"),
    ]  # fmt: skip
    foreign = add(other_workspace.pk, "swarm.create", minutes_ago=5, target_id="swm_9")
    platform = add(None, "plan_limits.update", minutes_ago=1, target_id="free")
    return mine, foreign, platform


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def test_an_admin_lists_their_workspaces_events_newest_first(api_client, workspace, trail):
    mine, foreign, platform = trail
    listed = ids(api_client.get(url(workspace_id=workspace.pk, limit=100)))
    assert [pk for pk in listed if pk in {e.pk for e in mine}] == [e.pk for e in reversed(mine)]
    assert foreign.pk not in listed and platform.pk not in listed
    own = AuditEvent.objects.filter(workspace_id=workspace.pk)
    assert listed == list(own.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert ids(api_client.get(url(limit=100))) == listed  # the only workspace they administer


def test_one_event_in_camel_case(api_client, trail):
    event = trail[0][2]
    response = api_client.get(f"/api/audit-events/{event.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == EVENT_KEYS
    assert body["id"] == event.pk and body["id"].startswith("aud_")
    assert (body["actorType"], body["actorId"], body["actorLabel"]) == ("api_key", "key_1", "ci")
    assert (body["action"], body["targetType"], body["targetId"]) == ("run.create", "run", "run_1")
    assert (body["before"], body["after"]) == ({"name": "a"}, {"name": "b"})
    assert (body["ip"], body["correlationId"]) == ("10.0.0.1", "req_1")
    assert body["createdAt"].endswith("Z")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter": '{"action": {"eq": "run.create"}}'}, [2]),
        ({"filter": '{"action": {"startsWith": "run."}}'}, [3, 2]),
        ({"filter": '{"actorType": {"eq": "api_key"}}'}, [2]),
        ({"filter": '{"actorId": {"eq": "key_1"}}'}, [2]),
        ({"filter": '{"targetType": {"eq": "swarm"}}'}, [1, 0]),
        ({"filter": '{"targetId": {"in": ["run_1", "mem_1"]}}'}, [4, 3, 2]),
        ({"filter": '{"NOT": {"actorType": {"eq": "user"}}}'}, [4, 2]),
        ({"action": "swarm.update"}, [1]),
        ({"actor_type": "admin"}, [4]),
        ({"target_type": "run", "target_id": "run_1"}, [3, 2]),
        ({"actor_id": "key_1"}, [2]),
    ],
)
def test_filters(api_client, workspace, trail, params, expected):
    mine = trail[0]
    listed = ids(api_client.get(url(workspace_id=workspace.pk, **params)))
    # (the fixtures' own events answer some of these filters too)
    assert [pk for pk in listed if pk in {e.pk for e in mine}] == [mine[i].pk for i in expected]
    if "NOT" not in params.get("filter", ""):
        assert len(listed) == len(expected)


def test_created_at_ranges(api_client, workspace, trail):
    mine = trail[0]
    low = (timezone.now() - timedelta(minutes=45)).isoformat()
    high = (timezone.now() - timedelta(minutes=15)).isoformat()
    by_filter = ids(api_client.get(url(
        workspace_id=workspace.pk,
        filter=f'{{"createdAt": {{"gte": "{low}", "lt": "{high}"}}}}',
    )))  # fmt: skip
    by_shorthand = ids(api_client.get(url(workspace_id=workspace.pk, created_after=low,
                                          created_before=high)))  # fmt: skip
    assert by_filter == by_shorthand == [mine[3].pk, mine[2].pk, mine[1].pk]


def test_the_workspace_filter_field_and_order(api_client, workspace, trail):
    mine = trail[0]
    listed = ids(api_client.get(url(
        filter=f'{{"workspaceId": {{"eq": "{workspace.pk}"}}, "targetId": {{"eq": "swm_1"}}}}',
        orderBy='[{"createdAt": "asc"}]',
    )))  # fmt: skip
    assert listed == [mine[0].pk, mine[1].pk]


def test_keyset_pages_walk_every_event_once(api_client, workspace, trail):
    seen, cursor = [], None
    for _ in range(10):
        params = {
            "workspace_id": workspace.pk,
            "limit": 2,
            "filter": '{"targetId": {"in": ["swm_1", "run_1", "mem_1"]}}',
            **({"after": cursor} if cursor else {}),
        }
        body = api_client.get(url(**params)).json()
        seen += [item["id"] for item in body["data"]]
        if not body["pageInfo"]["hasNextPage"]:
            break
        cursor = body["pageInfo"]["endCursor"]
    assert seen == [e.pk for e in reversed(trail[0])]


@pytest.mark.parametrize(
    "params",
    [
        {"filter": '{"before": {"eq": "x"}}'},
        {"filter": '{"actorType": {"eq": "robot"}}'},
        {"orderBy": '[{"ip": "asc"}]'},
        {"actor_type": "robot"},
        {"created_after": "yesterday"},
    ],
)
def test_bad_list_input_is_400(api_client, workspace, params):
    assert api_client.get(url(workspace_id=workspace.pk, **params)).status_code == 400


def test_the_list_costs_a_fixed_number_of_queries(
    api_client, workspace, trail, django_assert_max_num_queries
):
    for n in range(20):
        add(workspace.pk, minutes_ago=60 + n)
    with django_assert_max_num_queries(8):
        assert len(ids(api_client.get(url(workspace_id=workspace.pk, limit=50)))) > 20


# ---------------------------------------------------------------------------------------------
# Who may read
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_viewers_and_operators_are_403(client_for, member_of, workspace, trail, role):
    client = client_for(member_of(workspace, role))
    assert_problem(client.get(url(workspace_id=workspace.pk)), 403, "forbidden")
    assert_problem(client.get(f"/api/audit-events/{trail[0][0].pk}"), 403, "forbidden")
    assert ids(client.get(url())) == []  # no workspace they administer


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_api_keys_below_admin_are_403(key_client, workspace, trail, role):
    client, _, _ = key_client(workspace, role)
    assert_problem(client.get(url(workspace_id=workspace.pk)), 403, "forbidden")
    assert_problem(client.get(f"/api/audit-events/{trail[0][0].pk}"), 403, "forbidden")


def test_an_admin_api_key_reads_its_workspace(key_client, workspace, trail):
    client, _, _ = key_client(workspace, Role.ADMIN)
    listed = ids(client.get(url(limit=100)))
    assert trail[0][0].pk in listed and trail[1].pk not in listed
    assert client.get(f"/api/audit-events/{trail[0][0].pk}").status_code == 200


def test_another_workspaces_events_are_404(api_client, other_workspace, trail):
    foreign = trail[1]
    assert_problem(api_client.get(f"/api/audit-events/{foreign.pk}"), 404, "not_found")
    assert_problem(api_client.get(url(workspace_id=other_workspace.pk)), 404, "not_found")
    assert_problem(api_client.get(f"/api/audit-events/{trail[2].pk}"), 404, "not_found")
    assert_problem(api_client.get("/api/audit-events/aud_nope"), 404, "not_found")


def test_staff_see_every_event_platform_wide_ones_too(client_for, staff_user, trail):
    mine, foreign, platform = trail
    listed = ids(client_for(staff_user).get(url(limit=100)))
    assert {foreign.pk, platform.pk, *(e.pk for e in mine)} <= set(listed)
    one = client_for(staff_user).get(f"/api/audit-events/{platform.pk}").json()
    assert one["workspaceId"] is None


def test_anonymous_is_401(anon_client, trail):
    assert_problem(anon_client.get(url()), 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/audit-events"),
        ("put", "/api/audit-events/{id}"),
        ("patch", "/api/audit-events/{id}"),
        ("delete", "/api/audit-events/{id}"),
    ],
)
def test_the_trail_cannot_be_written_through_the_api(api_client, trail, method, path):
    event = trail[0][0]
    response = getattr(api_client, method)(path.format(id=event.pk), {}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert AuditEvent.objects.get(pk=event.pk).action == "swarm.create"

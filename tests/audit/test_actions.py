"""Every state-changing action of the API records exactly one audit event naming its actor (the
user of a JWT, or the API key), its workspace and target, the changed fields before and after,
the client's IP and the request's X-Request-ID."""

import hashlib
import json
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import ApiKey, Membership
from accounts.roles import Role
from audit.models import AuditEvent
from swarms.models import Approval, RunStatus, Swarm, WebhookEndpoint
from tests.audit.conftest import assert_by, assert_by_user, the_event
from tests.factories import create_run, make_swarm
from tests.templates_app.definitions import PARALLEL

pytestmark = pytest.mark.usefixtures("not_executing")


@pytest.fixture
def not_executing(db, settings):
    """Runs are created but never dispatched (`db`: on_commit callbacks never fire)."""
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}


@pytest.fixture
def swarm(workspace, user) -> Swarm:
    return make_swarm(workspace, user, name="Alpha", models=["gpt-4o-mini"])


# ---------------------------------------------------------------------------------------------
# Workspaces and members
# ---------------------------------------------------------------------------------------------
def test_workspace_create(api_client, user):
    response = api_client.post("/api/workspaces", {"name": "Fresh"}, format="json")
    assert response.status_code == 201, response.content
    workspace_id = response.json()["id"]
    event = the_event("workspace.create", workspace_id)
    assert_by_user(event, response, user)
    assert (event.workspace_id, event.target_type) == (workspace_id, "workspace")
    assert event.before is None
    assert event.after == {"name": "Fresh", "plan": "free", "allowed_tools": ["http_fetch"]}
    # Its creator became its admin: that is a member.add of the same request.
    added = the_event("member.add", workspace_id=workspace_id)
    assert added.after == {"user_id": user.pk, "email": user.email, "role": "admin"}
    assert added.correlation_id == response["X-Request-ID"]


def test_workspace_rename(api_client, user, workspace):
    response = api_client.patch(f"/api/workspaces/{workspace.pk}", {"name": "Acme 2"},
                                format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    event = the_event("workspace.update", workspace.pk)
    assert_by_user(event, response, user)
    assert (event.before, event.after) == ({"name": "Acme"}, {"name": "Acme 2"})


def test_an_unchanged_patch_records_nothing(api_client, workspace):
    before = AuditEvent.objects.count()
    response = api_client.patch(f"/api/workspaces/{workspace.pk}", {"name": "Acme"},
                                format="json")  # fmt: skip
    assert response.status_code == 200
    assert AuditEvent.objects.count() == before


def test_plan_change_by_staff_is_its_own_event(client_for, staff_user, workspace):
    response = client_for(staff_user).patch(
        f"/api/workspaces/{workspace.pk}", {"plan": "pro", "name": "Acme Pro"}, format="json"
    )
    assert response.status_code == 200, response.content
    plan = the_event("workspace.plan_change", workspace.pk)
    assert_by_user(plan, response, staff_user)
    assert (plan.before, plan.after) == ({"plan": "free"}, {"plan": "pro"})
    rename = the_event("workspace.update", workspace.pk)
    assert (rename.before, rename.after) == ({"name": "Acme"}, {"name": "Acme Pro"})


def test_member_add_role_change_and_remove(api_client, user, workspace, make_user):
    newcomer = make_user(email="new@example.com")
    members = f"/api/workspaces/{workspace.pk}/members"
    added = api_client.post(members, {"email": newcomer.email, "role": "viewer"}, format="json")
    assert added.status_code == 201, added.content
    membership = Membership.objects.get(workspace=workspace, user=newcomer)
    event = the_event("member.add", membership.pk)
    assert_by_user(event, added, user)
    assert (event.workspace_id, event.target_type) == (workspace.pk, "member")
    assert event.after == {"user_id": newcomer.pk, "email": newcomer.email, "role": "viewer"}

    changed = api_client.patch(f"{members}/{newcomer.pk}", {"role": "operator"}, format="json")
    assert changed.status_code == 200, changed.content
    event = the_event("member.role_change", membership.pk)
    assert_by_user(event, changed, user)
    assert event.before == {"user_id": newcomer.pk, "email": newcomer.email, "role": "viewer"}
    assert event.after == {"user_id": newcomer.pk, "email": newcomer.email, "role": "operator"}

    removed = api_client.delete(f"{members}/{newcomer.pk}")
    assert removed.status_code == 200, removed.content
    event = the_event("member.remove", membership.pk)
    assert_by_user(event, removed, user)
    assert event.before["role"] == "operator" and event.after is None
    # The membership is gone; its events stay.
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.filter(target_id=membership.pk).count() == 3


def test_api_key_create_and_revoke_never_show_the_secret(api_client, user, workspace):
    response = api_client.post("/api/api-keys", {"workspaceId": workspace.pk, "name": "ci",
                                                 "role": "operator"}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    event = the_event("api_key.create", body["id"])
    assert_by_user(event, response, user)
    assert event.after == {"name": "ci", "role": "operator", "prefix": body["prefix"]}
    assert body["key"] not in json.dumps([event.before, event.after])

    revoked = api_client.delete(f"/api/api-keys/{body['id']}")
    assert revoked.status_code == 200
    event = the_event("api_key.revoke", body["id"])
    assert_by_user(event, revoked, user)
    revoked_at = ApiKey.objects.get(pk=body["id"]).revoked_at
    assert event.before == {"revoked_at": None}
    assert event.after == {"revoked_at": revoked_at.isoformat().replace("+00:00", "Z")}
    # Revoking again changes nothing and records nothing.
    assert api_client.delete(f"/api/api-keys/{body['id']}").status_code == 200
    the_event("api_key.revoke", body["id"])


# ---------------------------------------------------------------------------------------------
# Swarms and versions
# ---------------------------------------------------------------------------------------------
def test_swarm_create_by_api_key_names_the_key(key_client, workspace):
    client, api_key, _raw = key_client(workspace, Role.OPERATOR)
    response = client.post("/api/swarms", {"workspaceId": workspace.pk, "name": "Beta",
                                           "models": ["gpt-4o-mini"]}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    event = the_event("swarm.create", body["id"])
    assert_by(event, response, actor_type="api_key", actor_id=api_key.pk, label="test")
    assert event.workspace_id == workspace.pk
    assert event.after == {"name": "Beta", "description": "", "retention_tier": "standard",
                           "runtime_user_id": None,
                           "default_version_id": body["defaultVersionId"]}  # fmt: skip


def test_swarm_update_and_default_version_switch(api_client, user, swarm):
    v1 = swarm.default_version_id
    created = api_client.post(f"/api/swarms/{swarm.pk}/versions", {"instructions": "Be terse."},
                              format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    v2 = created.json()["id"]
    event = the_event("swarm_version.create", v2)
    assert_by_user(event, created, user)
    assert event.after == {"swarm_id": swarm.pk, "number": 2, "instructions": "Be terse.",
                           "models": ["gpt-4o-mini"]}  # fmt: skip
    assert not AuditEvent.objects.filter(action="swarm.default_version_switch").exists()

    renamed = api_client.patch(f"/api/swarms/{swarm.pk}", {"description": "Researchers"},
                               format="json")  # fmt: skip
    assert renamed.status_code == 200
    event = the_event("swarm.update", swarm.pk)
    assert_by_user(event, renamed, user)
    assert (event.before, event.after) == ({"description": ""}, {"description": "Researchers"})

    switched = api_client.patch(f"/api/swarms/{swarm.pk}", {"defaultVersionId": v2},
                                format="json")  # fmt: skip
    assert switched.status_code == 200
    event = the_event("swarm.default_version_switch", swarm.pk)
    assert_by_user(event, switched, user)
    assert (event.before, event.after) == ({"default_version_id": v1}, {"default_version_id": v2})
    assert AuditEvent.objects.filter(action="swarm.update").count() == 1


def test_a_version_made_default_records_the_switch_too(api_client, swarm):
    response = api_client.post(f"/api/swarms/{swarm.pk}/versions", {"setDefault": True},
                               format="json")  # fmt: skip
    assert response.status_code == 201
    version = response.json()["id"]
    the_event("swarm_version.create", version)
    event = the_event("swarm.default_version_switch", swarm.pk)
    assert event.after == {"default_version_id": version}
    assert event.correlation_id == response["X-Request-ID"]


def test_swarm_delete_restore_and_purge(api_client, user, swarm):
    deleted = api_client.delete(f"/api/swarms/{swarm.pk}")
    assert deleted.status_code == 200
    event = the_event("swarm.delete", swarm.pk)
    assert_by_user(event, deleted, user)
    assert event.before == {"deleted_at": None} and event.after["deleted_at"]
    assert api_client.delete(f"/api/swarms/{swarm.pk}").status_code == 200  # idempotent
    the_event("swarm.delete", swarm.pk)

    restored = api_client.post(f"/api/swarms/{swarm.pk}/restore")
    assert restored.status_code == 200
    event = the_event("swarm.restore", swarm.pk)
    assert_by_user(event, restored, user)
    assert event.after == {"deleted_at": None} and event.before["deleted_at"]

    api_client.delete(f"/api/swarms/{swarm.pk}")
    purged = api_client.delete(f"/api/swarms/{swarm.pk}/purge")
    assert purged.status_code == 200, purged.content
    event = the_event("swarm.purge", swarm.pk)
    assert_by_user(event, purged, user)
    assert event.before["name"] == "Alpha" and event.before["deleted_at"]
    assert event.after is None and event.workspace_id == swarm.workspace_id
    # The swarm is gone; every event about it stays.
    assert not Swarm.objects.filter(pk=swarm.pk).exists()
    assert AuditEvent.objects.filter(target_id=swarm.pk).count() == 5


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
def test_run_create_and_cancel_on_api(api_client, user, swarm):
    started = api_client.post(f"/api/swarms/{swarm.pk}/runs", {"task": "Count", "maxBudgetUsd":
                              "2.5"}, format="json")  # fmt: skip
    assert started.status_code == 201, started.content
    run_id = started.json()["id"]
    event = the_event("run.create", run_id)
    assert_by_user(event, started, user)
    assert event.after["status"] == "queued" and event.after["swarm_id"] == swarm.pk
    assert Decimal(event.after["max_budget_usd"]) == Decimal("2.5")  # a Decimal, as text

    cancelled = api_client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    event = the_event("run.cancel", run_id)
    assert_by_user(event, cancelled, user)
    assert (event.before, event.after) == ({"status": "queued"}, {"status": "cancelled"})
    assert api_client.post(f"/api/runs/{run_id}/cancel").status_code == 200  # a no-op now
    the_event("run.cancel", run_id)


def test_run_create_and_cancel_on_v1_name_the_api_key(key_client, workspace):
    client, api_key, _raw = key_client(workspace, Role.OPERATOR)
    started = client.post("/v1/swarms", {"template": "research-swarm-v1", "task": "Count"},
                          format="json")  # fmt: skip
    assert started.status_code == 201, started.content
    run_id = started.json()["swarm_id"]
    event = the_event("run.create", run_id)
    assert_by(event, started, actor_type="api_key", actor_id=api_key.pk, label="test")
    assert event.after["template_id"] == "research-swarm-v1"

    cancelled = client.delete(f"/v1/swarms/{run_id}")
    assert cancelled.status_code == 200, cancelled.content
    event = the_event("run.cancel", run_id)
    assert_by(event, cancelled, actor_type="api_key", actor_id=api_key.pk, label="test")


def test_cancelling_a_running_run_records_the_request(api_client, user, workspace):
    run = create_run(workspace, status=RunStatus.RUNNING)
    response = api_client.post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "running"
    event = the_event("run.cancel", run.pk)
    assert_by_user(event, response, user)
    assert event.before == {"cancel_requested_at": None}
    assert event.after["cancel_requested_at"]
    api_client.post(f"/api/runs/{run.pk}/cancel")  # asked already: nothing new
    the_event("run.cancel", run.pk)


def test_budget_raise(api_client, user, workspace):
    run = create_run(workspace, budget=Decimal("3"))
    response = api_client.patch(f"/api/runs/{run.pk}", {"maxBudgetUsd": "7.5"}, format="json")
    assert response.status_code == 200, response.content
    event = the_event("run.budget_raise", run.pk)
    assert_by_user(event, response, user)
    assert Decimal(event.before.pop("max_budget_usd")) == Decimal(3)
    assert Decimal(event.after.pop("max_budget_usd")) == Decimal("7.5")
    assert event.before == event.after == {"status": "queued"}


def test_approval_decision(api_client, user, workspace):
    run = create_run(workspace, status=RunStatus.AWAITING_APPROVAL)
    approval = Approval.objects.create(
        run=run, key="k1", agent_id="reader", tool="http_fetch",
        arguments='{"url": "https://example.org"}', deadline_at=timezone.now(),
    )  # fmt: skip
    response = api_client.post(f"/api/runs/{run.pk}/approvals/{approval.pk}",
                               {"decision": "deny", "reason": "not that site"},
                               format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    event = the_event("approval.decide", approval.pk)
    assert_by_user(event, response, user)
    assert (event.workspace_id, event.target_type) == (workspace.pk, "approval")
    assert event.before == {"status": "pending"}
    assert event.after == {"status": "denied", "reason": "not that site"}


# ---------------------------------------------------------------------------------------------
# Webhooks, templates, MCP servers
# ---------------------------------------------------------------------------------------------
def test_webhook_secret_issue_and_rotation_never_show_the_secret(api_client, user, workspace):
    url = f"/api/workspaces/{workspace.pk}/webhook-secret"
    first = api_client.post(url, {}, format="json")
    assert first.status_code == 201, first.content
    event = the_event("webhook_secret.rotate", workspace.pk)
    assert_by_user(event, first, user)
    assert event.before is None and event.after["rotated_at"] is None

    second = api_client.post(url, {}, format="json")
    assert second.status_code == 201
    events = AuditEvent.objects.filter(action="webhook_secret.rotate").order_by("created_at")
    assert events.count() == 2
    rotation = events.last()
    assert rotation.correlation_id == second["X-Request-ID"]
    assert rotation.before == {"rotated_at": None, "previous_expires_at": None}
    assert rotation.after["rotated_at"] and rotation.after["previous_expires_at"]
    trail = json.dumps([(e.before, e.after) for e in events])
    assert first.json()["secret"] not in trail and second.json()["secret"] not in trail


def test_webhook_endpoint_enable(api_client, user, workspace):
    hook = "https://gone.example.com/hook"
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace, url=hook, url_hash=hashlib.sha256(hook.encode()).hexdigest(),
        disabled_at=timezone.now(), disabled_reason="Answered 410 Gone.",
    )  # fmt: skip
    url = f"/api/workspaces/{workspace.pk}/webhook-endpoints/{endpoint.pk}/enable"
    response = api_client.post(url)
    assert response.status_code == 200, response.content
    event = the_event("webhook_endpoint.enable", str(endpoint.pk))
    assert_by_user(event, response, user)
    assert event.before["disabled_reason"] == "Answered 410 Gone."
    assert event.after == {"disabled_at": None, "disabled_reason": ""}
    assert api_client.post(url).status_code == 200  # enabled already: nothing recorded
    the_event("webhook_endpoint.enable", str(endpoint.pk))


def test_custom_template_create_update_delete(api_client, user, workspace):
    created = api_client.post("/api/templates", {"workspaceId": workspace.pk, "id": "my-team",
                                                 "name": "My team", "definition": PARALLEL},
                              format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    event = the_event("template.create", "my-team")
    assert_by_user(event, created, user)
    assert event.workspace_id == workspace.pk and event.after["name"] == "My team"

    updated = api_client.patch("/api/templates/my-team", {"description": "Fast"}, format="json")
    assert updated.status_code == 200, updated.content
    event = the_event("template.update", "my-team")
    assert_by_user(event, updated, user)
    assert event.after == {"description": "Fast"}

    deleted = api_client.delete("/api/templates/my-team")
    assert deleted.status_code in (200, 204), deleted.content
    event = the_event("template.delete", "my-team")
    assert_by_user(event, deleted, user)
    assert event.before["name"] == "My team" and event.after is None


def test_mcp_server_create_update_delete(api_client, user, workspace, settings):
    from tests.mcp_server import TOKEN, McpTestServer

    settings.SVERM_MCP_ALLOWED_HOSTS = ["127.0.0.1"]
    servers = f"/api/workspaces/{workspace.pk}/mcp-servers"
    with McpTestServer() as mcp:
        created = api_client.post(servers, {"name": "docs", "url": mcp.url, "headers":
                                  {"Authorization": f"Bearer {TOKEN}"}}, format="json")  # fmt: skip
        assert created.status_code == 201, created.content
        server_id = created.json()["id"]
        event = the_event("mcp_server.create", server_id)
        assert_by_user(event, created, user)
        assert event.after["header_names"] == ["Authorization"]

        updated = api_client.patch(f"{servers}/{server_id}", {"enabled": False}, format="json")
        assert updated.status_code == 200, updated.content
        event = AuditEvent.objects.get(action="mcp_server.update", target_id=server_id)
        assert_by_user(event, updated, user)
        assert (event.before, event.after) == ({"enabled": True}, {"enabled": False})

        headers = {"Authorization": f"Bearer {TOKEN}", "X-Trace": "hidden-value"}
        rekeyed = api_client.patch(f"{servers}/{server_id}", {"headers": headers}, format="json")
        assert rekeyed.status_code == 200, rekeyed.content
        changed = AuditEvent.objects.filter(action="mcp_server.update").latest("created_at")
        assert changed.after["header_names"] == ["Authorization", "X-Trace"]
        assert changed.after["headers"] == "<redacted, changed>"

        deleted = api_client.delete(f"{servers}/{server_id}")
        assert deleted.status_code == 200
        event = the_event("mcp_server.delete", server_id)
        assert_by_user(event, deleted, user)
        assert event.before["name"] == "docs"
    trail = json.dumps(list(AuditEvent.objects.values_list("before", "after")))
    assert TOKEN not in trail and "hidden-value" not in trail


# ---------------------------------------------------------------------------------------------
# Outside a request
# ---------------------------------------------------------------------------------------------
def test_a_service_called_outside_a_request_records_the_system_actor(workspace):
    # The fixture made the workspace through the service, outside any request.
    event = the_event("workspace.create", workspace.pk)
    assert (event.actor_type, event.actor_id, event.ip, event.correlation_id) == (
        "system", "", None, "",
    )  # fmt: skip


def test_the_context_does_not_outlive_its_request(api_client, workspace, user):
    assert api_client.patch(f"/api/workspaces/{workspace.pk}", {"name": "Other"},
                            format="json").status_code == 200  # fmt: skip
    from accounts.services import workspace_update

    workspace.refresh_from_db()
    workspace_update(workspace=workspace, data={"name": "After"})
    after = AuditEvent.objects.filter(action="workspace.update").latest("created_at")
    assert after.after == {"name": "After"}
    assert (after.actor_type, after.ip, after.correlation_id) == ("system", None, "")

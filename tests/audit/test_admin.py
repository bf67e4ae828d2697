"""What operators change in the Django admin is recorded as the `admin` actor (forms, inlines,
list_editable, deletions, and actions through the services), and the audit trail itself is
read-only there, for superusers too."""

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import reverse

from accounts.models import ApiKey, Membership, PlanLimits
from audit.admin import AuditedModelAdmin
from audit.models import AuditEvent
from billing.models import ModelPrice
from swarms.models import RunStatus
from tests.audit.conftest import assert_by, the_event
from tests.factories import create_run

pytestmark = pytest.mark.django_db


def assert_by_admin(event, response, operator_user):
    assert_by(event, response, actor_type="admin", actor_id=operator_user.pk,
              label=operator_user.email)  # fmt: skip


def workspace_form(workspace, user, membership, **fields) -> dict:
    return {
        "name": workspace.name, "plan": workspace.plan,
        "allowed_tools": '["http_fetch"]',
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": membership.pk, "memberships-0-workspace": workspace.pk,
        "memberships-0-user": user.pk, "memberships-0-role": membership.role, **fields,
    }  # fmt: skip


def test_an_operators_plan_change_in_the_admin(admin_client, operator_user, user, workspace):
    membership = Membership.objects.get(workspace=workspace)
    response = admin_client.post(
        reverse("admin:accounts_workspace_change", args=[quote(workspace.pk)]),
        workspace_form(workspace, user, membership, plan="team", allowed_tools='["x__*"]'),
    )
    assert response.status_code == 302, response.content[:2000]
    plan = the_event("workspace.plan_change", workspace.pk, actor_type="admin")
    assert_by_admin(plan, response, operator_user)
    assert (plan.before, plan.after) == ({"plan": "free"}, {"plan": "team"})
    tools = the_event("workspace.update", workspace.pk, actor_type="admin")
    assert tools.before == {"allowed_tools": ["http_fetch"]}
    assert tools.after == {"allowed_tools": ["x__*"]}
    # The unchanged inline membership records nothing.
    assert not AuditEvent.objects.filter(actor_type="admin", target_type="member").exists()


def test_an_inline_role_change_is_a_member_event(admin_client, operator_user, user, workspace,
                                                 member_of):  # fmt: skip
    viewer = member_of(workspace, "viewer")
    membership = Membership.objects.get(workspace=workspace, user=viewer)
    form = workspace_form(workspace, viewer, membership, role="operator")
    form["memberships-0-role"] = "operator"
    response = admin_client.post(
        reverse("admin:accounts_workspace_change", args=[quote(workspace.pk)]), form
    )
    assert response.status_code == 302, response.content[:2000]
    event = the_event("member.role_change", membership.pk)
    assert_by_admin(event, response, operator_user)
    assert (event.before, event.after) == ({"role": "viewer"}, {"role": "operator"})
    assert event.workspace_id == workspace.pk


def test_an_operators_run_cancel_in_the_admin(admin_client, operator_user, workspace, settings):
    settings.SVERM_EXECUTOR = "thread"
    run = create_run(workspace)
    response = admin_client.post(
        reverse("admin:swarms_run_changelist"),
        {"action": "cancel_runs", "_selected_action": [run.pk]},
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    event = the_event("run.cancel", run.pk)
    assert_by_admin(event, response, operator_user)
    assert (event.before, event.after) == ({"status": "queued"}, {"status": "cancelled"})


def test_an_api_key_added_in_the_admin_is_recorded_once(admin_client, operator_user, workspace):
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"),
        {"workspace": workspace.pk, "name": "from-admin", "role": "viewer"},
    )
    assert response.status_code == 302, response.content[:2000]
    api_key = ApiKey.objects.get(name="from-admin")
    event = the_event("api_key.create", api_key.pk)  # the service's, not a second one
    assert_by_admin(event, response, operator_user)
    assert event.after == {"name": "from-admin", "role": "viewer", "prefix": api_key.prefix}


def test_list_editable_changes_are_recorded(admin_client, operator_user):
    PlanLimits.objects.get_or_create(plan="free", defaults={
        "requests_per_minute": 10, "concurrent_runs": 2, "runs_per_day": 50})  # fmt: skip
    rows = list(PlanLimits.objects.order_by("requests_per_minute", "plan"))
    form = {"form-TOTAL_FORMS": str(len(rows)), "form-INITIAL_FORMS": str(len(rows)),
            "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000", "_save": "Save"}  # fmt: skip
    for index, row in enumerate(rows):
        form.update({
            f"form-{index}-plan": row.plan,
            f"form-{index}-requests_per_minute": row.requests_per_minute,
            f"form-{index}-concurrent_runs": row.concurrent_runs,
            f"form-{index}-runs_per_day": row.runs_per_day or "",
            f"form-{index}-batches_per_hour": row.batches_per_hour,
            f"form-{index}-audit_retention_days": (
                7 if row.plan == "free" else row.audit_retention_days
            ),
        })  # fmt: skip
    response = admin_client.post(reverse("admin:accounts_planlimits_changelist"), form)
    assert response.status_code == 302, response.content[:3000]
    event = the_event("plan_limits.update", "free")
    assert_by_admin(event, response, operator_user)
    assert event.workspace_id is None
    assert event.after == {"audit_retention_days": 7}
    assert AuditEvent.objects.filter(action="plan_limits.update").count() == 1


def test_a_deletion_in_the_admin_keeps_what_was_deleted(admin_client, operator_user):
    price = ModelPrice.objects.create(model="gone-model", provider="openai",
                                      input_per_million=1, output_per_million=2)  # fmt: skip
    delete_url = reverse("admin:billing_modelprice_delete", args=[quote(price.pk)])
    response = admin_client.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    event = the_event("model_price.delete", str(price.pk))
    assert_by_admin(event, response, operator_user)
    assert event.before["model"] == "gone-model" and event.after is None


def test_delete_selected_records_each_row(admin_client, operator_user):
    prices = [ModelPrice.objects.create(model=f"m{n}", provider="openai", input_per_million=1,
                                        output_per_million=1) for n in range(2)]  # fmt: skip
    response = admin_client.post(
        reverse("admin:billing_modelprice_changelist"),
        {"action": "delete_selected", "_selected_action": [p.pk for p in prices], "post": "yes"},
    )
    assert response.status_code == 302
    for price in prices:
        assert_by_admin(the_event("model_price.delete", str(price.pk)), response, operator_user)


def test_secrets_never_reach_the_trail(admin_client, operator_user):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {"email": "new@example.com", "name": "New", "password1": "x-Very-long-pass-1",
         "password2": "x-Very-long-pass-1", "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="user.create")
    assert event.after["password"] == "<redacted>" and event.after["email"] == "new@example.com"
    assert event.workspace_id is None


def test_a_users_groups_changed_in_the_admin_are_recorded(admin_client, operator_user, user):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="billing")
    response = admin_client.post(
        reverse("admin:accounts_user_change", args=[quote(user.pk)]),
        {"email": user.email, "name": user.name, "is_active": "on", "groups": [group.pk],
         "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:3000]
    event = the_event("user.update", user.pk)
    assert_by_admin(event, response, operator_user)
    assert (event.before, event.after) == ({"groups": []}, {"groups": [str(group.pk)]})


# ---------------------------------------------------------------------------------------------
# Every admin that changes things is audited
# ---------------------------------------------------------------------------------------------
def test_every_admin_that_can_change_rows_is_audited(rf, operator_user):
    request = rf.get("/admin/")
    request.user = operator_user
    unaudited = []
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, AuditedModelAdmin) or model is AuditEvent:
            continue
        if (
            model_admin.has_add_permission(request)
            or model_admin.has_change_permission(request)
            or model_admin.has_delete_permission(request)
        ):
            unaudited.append(model._meta.label)
    assert unaudited == []


# ---------------------------------------------------------------------------------------------
# The trail in the admin: read only
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def event(workspace):
    return AuditEvent.objects.filter(action="workspace.create").get()


def test_the_trail_lists_filters_searches_and_shows_before_after(admin_client, event):
    changelist = reverse("admin:audit_auditevent_changelist")
    page = admin_client.get(changelist, {"q": event.target_id})
    assert page.status_code == 200 and quote(event.pk) in page.content.decode()
    by_actor = admin_client.get(changelist, {"actor_type__exact": "system"})
    assert quote(event.pk) in by_actor.content.decode()
    assert quote(event.pk) not in admin_client.get(changelist, {"actor_type__exact": "admin"}
                                                   ).content.decode()  # fmt: skip
    missing = admin_client.get(changelist, {"q": "nothing-like-it"}).content.decode()
    assert quote(event.pk) not in missing
    detail = admin_client.get(reverse("admin:audit_auditevent_change", args=[quote(event.pk)]))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "&quot;allowed_tools&quot;" in html or '"allowed_tools"' in html
    assert 'name="action"' not in html  # no editable field


def test_the_trail_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, event):
    change = reverse("admin:audit_auditevent_change", args=[quote(event.pk)])
    assert admin_client.post(change, {"action": "x.y"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[quote(event.pk)])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    changelist = admin_client.get(reverse("admin:audit_auditevent_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    response = admin_client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert AuditEvent.objects.get(pk=event.pk).action == "workspace.create"

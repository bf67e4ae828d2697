"""The swarm admin as a staff superuser uses it: changelist filters and search, the change page
with its read-only versions, and the soft-delete / restore / purge actions."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.messages import constants as levels
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.services import workspace_create
from swarms import services
from swarms.models import Swarm, SwarmVersion
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:swarms_swarm_changelist"


@pytest.fixture
def admin_client(db) -> Client:
    superuser = User.objects.create_superuser(email="ops@example.com", password=PASSWORD)
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def swarms(workspace, other_workspace, user):
    """An active standard swarm, a soft-deleted extended one, and one in another workspace."""
    alpha = services.swarm_create(
        workspace=workspace, name="Alpha team", created_by=user, models=["gpt-4o"]
    )
    beta = services.swarm_create(
        workspace=workspace, name="Beta crew", created_by=user, retention_tier="extended"
    )
    services.swarm_soft_delete(swarm=beta)
    gamma = services.swarm_create(workspace=other_workspace, name="Gamma squad", created_by=None)
    return alpha, beta, gamma


def change_url(swarm) -> str:
    return reverse("admin:swarms_swarm_change", args=[quote(swarm.pk)])


def listed(client, **params) -> set[str]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200, response.content[:500]
    pks = {obj.pk for obj in response.context["cl"].result_list}
    html = response.content.decode()
    for pk in pks:
        assert quote(pk) in html  # rendered as a link to its change page
    return pks


def run_action(client, action, *swarms):
    response = client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [s.pk for s in swarms]},
        follow=True,
    )
    assert response.status_code == 200
    return [(m.level, m.message) for m in response.context["messages"]]


def test_changelist_lists_every_swarm(admin_client, swarms):
    assert listed(admin_client) == {s.pk for s in swarms}


def test_changelist_filters(admin_client, swarms, workspace, other_workspace):
    alpha, beta, gamma = swarms
    assert listed(admin_client, state="active") == {alpha.pk, gamma.pk}
    assert listed(admin_client, state="deleted") == {beta.pk}
    assert listed(admin_client, retention_tier__exact="extended") == {beta.pk}
    assert listed(admin_client, retention_tier__exact="standard") == {alpha.pk, gamma.pk}
    assert listed(admin_client, workspace__id__exact=workspace.pk) == {alpha.pk, beta.pk}
    assert listed(admin_client, workspace__id__exact=other_workspace.pk) == {gamma.pk}
    assert listed(admin_client, state="active", workspace__id__exact=workspace.pk) == {alpha.pk}


def test_changelist_offers_the_filters(admin_client, swarms):
    response = admin_client.get(reverse(CHANGELIST))
    params = {
        param
        for spec in response.context["cl"].filter_specs
        for param in spec.expected_parameters()
    }
    assert {"state", "retention_tier__exact", "workspace__id__exact"} <= params


def test_changelist_search_by_name_and_id(admin_client, swarms):
    alpha, beta, gamma = swarms
    assert listed(admin_client, q="alpha") == {alpha.pk}
    assert listed(admin_client, q="CREW") == {beta.pk}
    assert listed(admin_client, q=gamma.pk) == {gamma.pk}
    assert listed(admin_client, q="nothing-like-this") == set()


def test_change_page_shows_versions_read_only(admin_client, swarms, user):
    alpha = swarms[0]
    v2 = services.swarm_version_create(swarm=alpha, created_by=user, instructions="second")
    response = admin_client.get(change_url(alpha))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Alpha team" in html
    assert alpha.default_version_id in html and v2.pk in html

    (inline,) = response.context["inline_admin_formsets"]
    assert inline.formset.model is SwarmVersion
    assert [form.instance.pk for form in inline.formset.forms] == [v2.pk, alpha.default_version_id]
    assert inline.has_add_permission is False
    assert inline.has_change_permission is False
    assert inline.formset.can_delete is False
    assert "versions-0-DELETE" not in html


def test_swarms_are_not_added_or_deleted_through_the_admin(admin_client, swarms):
    alpha = swarms[0]
    assert admin_client.get(reverse("admin:swarms_swarm_add")).status_code == 403
    delete_url = reverse("admin:swarms_swarm_delete", args=[quote(alpha.pk)])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Swarm.objects.filter(pk=alpha.pk).exists()


def test_version_admin_is_view_only(admin_client, swarms):
    alpha = swarms[0]
    response = admin_client.get(reverse("admin:swarms_swarmversion_changelist"), {"q": alpha.pk})
    assert response.status_code == 200
    assert {v.pk for v in response.context["cl"].result_list} == {alpha.default_version_id}
    url = reverse("admin:swarms_swarmversion_change", args=[quote(alpha.default_version_id)])
    response = admin_client.post(url, {"instructions": "rewritten"})
    assert response.status_code == 403
    assert SwarmVersion.objects.get(pk=alpha.default_version_id).instructions == ""


def test_soft_delete_action(admin_client, swarms):
    alpha, beta, _ = swarms
    first_deletion = Swarm.objects.get(pk=beta.pk).deleted_at
    messages = run_action(admin_client, "soft_delete", alpha, beta)
    assert (levels.SUCCESS, "Soft-deleted 2 swarm(s).") in messages
    assert Swarm.objects.get(pk=alpha.pk).deleted_at is not None
    assert Swarm.objects.get(pk=beta.pk).deleted_at == first_deletion  # idempotent


def test_restore_action(admin_client, swarms):
    alpha, beta, _ = swarms
    messages = run_action(admin_client, "restore", alpha, beta)
    assert (levels.SUCCESS, "Restored 1 swarm(s).") in messages
    assert any(level == levels.WARNING and alpha.pk in text for level, text in messages)
    assert Swarm.objects.get(pk=beta.pk).deleted_at is None
    assert Swarm.objects.get(pk=alpha.pk).deleted_at is None


def test_purge_action_removes_soft_deleted_only(admin_client, swarms):
    alpha, beta, gamma = swarms
    messages = run_action(admin_client, "purge", alpha, beta)
    assert (levels.SUCCESS, "Purged 1 swarm(s).") in messages
    warnings = [text for level, text in messages if level == levels.WARNING]
    assert len(warnings) == 1 and alpha.pk in warnings[0]
    assert not Swarm.objects.filter(pk=beta.pk).exists()
    assert not SwarmVersion.objects.filter(swarm_id=beta.pk).exists()
    assert Swarm.objects.filter(pk=alpha.pk, deleted_at__isnull=True).exists()
    assert SwarmVersion.objects.filter(swarm=alpha).count() == 1
    assert Swarm.objects.filter(pk=gamma.pk).exists()


def test_purge_of_only_active_swarms_warns_and_keeps_them(admin_client, swarms):
    alpha = swarms[0]
    messages = run_action(admin_client, "purge", alpha)
    assert [level for level, _ in messages] == [levels.WARNING]
    assert Swarm.objects.filter(pk=alpha.pk, deleted_at__isnull=True).exists()


def test_change_page_default_version_choices_are_the_swarms_versions(
    admin_client, swarms, workspace, user
):
    alpha = swarms[0]
    v2 = services.swarm_version_create(swarm=alpha, created_by=user)
    other = workspace_create(name="Unrelated", owner=user)
    stranger = services.swarm_create(workspace=other, name="Stranger", created_by=user)
    response = admin_client.get(change_url(alpha))
    choices = set(
        response.context["adminform"]
        .form.fields["default_version"]
        .queryset.values_list("pk", flat=True)
    )
    assert stranger.default_version_id not in choices
    assert choices == {alpha.default_version_id, v2.pk}


def test_change_page_saves(admin_client, swarms, user, workspace):
    alpha = swarms[0]
    v2 = services.swarm_version_create(swarm=alpha, created_by=user)
    response = admin_client.post(
        change_url(alpha),
        {
            "name": "Alpha renamed",
            "description": "",
            "default_version": v2.pk,
            "runtime_user": "",
            "retention_tier": "ephemeral",
            "versions-TOTAL_FORMS": "2",
            "versions-INITIAL_FORMS": "2",
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
            "versions-0-id": v2.pk,
            "versions-0-swarm": alpha.pk,
            "versions-1-id": alpha.default_version_id,
            "versions-1-swarm": alpha.pk,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    alpha.refresh_from_db()
    assert (alpha.name, alpha.default_version_id, alpha.retention_tier) == (
        "Alpha renamed",
        v2.pk,
        "ephemeral",
    )


def test_change_page_refuses_a_runtime_user_outside_the_workspace(admin_client, swarms, user):
    alpha = swarms[0]
    outsider = User.objects.create_user(email="outsider@example.com", password=PASSWORD)
    response = admin_client.post(
        change_url(alpha),
        {
            "name": alpha.name,
            "description": "",
            "default_version": alpha.default_version_id,
            "runtime_user": outsider.pk,
            "retention_tier": "standard",
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
            "versions-0-id": alpha.default_version_id,
            "versions-0-swarm": alpha.pk,
        },
    )
    assert response.status_code == 200
    assert "Not a member of the swarm" in response.content.decode()
    alpha.refresh_from_db()
    assert alpha.runtime_user_id is None

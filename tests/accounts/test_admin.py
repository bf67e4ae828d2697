"""The Django admin, as a staff superuser operator uses it: lists, search, filters, forms, keys."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Plan, User, Workspace
from accounts.roles import Role
from accounts.services import api_key_create, workspace_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

MODELS = ["user", "workspace", "membership", "apikey"]


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser(email="ops@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def changelist(model: str) -> str:
    return reverse(f"admin:accounts_{model}_changelist")


def change_url(obj) -> str:
    return reverse(f"admin:accounts_{obj._meta.model_name}_change", args=[quote(obj.pk)])


def listed(response) -> set[str]:
    """The primary keys of the changelist's rows, checked to be rendered as links too."""
    assert response.status_code == 200, response.content[:500]
    pks = {obj.pk for obj in response.context["cl"].result_list}
    html = response.content.decode()
    for pk in pks:
        assert quote(pk) in html
    return pks


def sidebar_filters(response) -> set[str]:
    """The query parameters the changelist's filter sidebar offers."""
    assert response.status_code == 200
    return {
        param
        for spec in response.context["cl"].filter_specs
        for param in spec.expected_parameters()
    }


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def api_status(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/workspaces").status_code


# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/admin/", *(f"/admin/accounts/{m}/" for m in MODELS)])
def test_non_staff_and_anonymous_are_sent_to_the_admin_login(make_user, path):
    anonymous = Client()
    member = Client()
    member.force_login(make_user(email="member@example.com"))
    for client in (anonymous, member):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_operator_logs_in_through_the_admin_login_form(operator):
    client = Client()
    response = client.post(
        reverse("admin:login") + "?next=/admin/",
        {"username": "OPS@example.com", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    index = client.get("/admin/")
    assert index.status_code == 200
    for model in MODELS:
        assert changelist(model) in index.content.decode()


# ---------------------------------------------------------------------------------------------
# Changelists, search and filters
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def population(operator, user, workspace, other_user, other_workspace, member_of):
    """Two workspaces with members and keys, one of them on the pro plan."""
    workspace.plan = Plan.PRO
    workspace.save(update_fields=["plan"])
    viewer = member_of(workspace, Role.VIEWER)
    operator_member = member_of(workspace, Role.OPERATOR)
    ci_key, _ = api_key_create(workspace=workspace, name="ci", role=Role.VIEWER, created_by=user)
    deploy_key, _ = api_key_create(
        workspace=other_workspace, name="deploy", role=Role.ADMIN, created_by=other_user
    )
    deploy_key.revoked_at = timezone.now()
    deploy_key.save(update_fields=["revoked_at"])
    return {
        "viewer": viewer,
        "operator_member": operator_member,
        "ci_key": ci_key,
        "deploy_key": deploy_key,
    }


def test_user_changelist_search_and_filters(admin_client, population, operator, user, other_user):
    everyone = {
        operator.pk,
        user.pk,
        other_user.pk,
        population["viewer"].pk,
        population["operator_member"].pk,
    }
    assert listed(admin_client.get(changelist("user"))) == everyone
    assert {"is_staff__exact", "is_superuser__exact", "is_active__exact"} <= sidebar_filters(
        admin_client.get(changelist("user"))
    )
    assert listed(admin_client.get(changelist("user"), {"q": "stranger"})) == {other_user.pk}
    assert listed(admin_client.get(changelist("user"), {"q": "Owner"})) == {user.pk}
    assert listed(admin_client.get(changelist("user"), {"is_staff__exact": "1"})) == {operator.pk}
    assert listed(admin_client.get(changelist("user"), {"is_staff__exact": "0"})) == (
        everyone - {operator.pk}
    )
    assert listed(admin_client.get(changelist("user"), {"is_superuser__exact": "1"})) == {
        operator.pk
    }


def test_workspace_changelist_search_and_filters(
    admin_client, population, workspace, other_workspace
):
    both = {workspace.pk, other_workspace.pk}
    assert listed(admin_client.get(changelist("workspace"))) == both
    assert "plan__exact" in sidebar_filters(admin_client.get(changelist("workspace")))
    assert listed(admin_client.get(changelist("workspace"), {"q": "acme"})) == {workspace.pk}
    assert listed(admin_client.get(changelist("workspace"), {"q": other_workspace.pk})) == {
        other_workspace.pk
    }
    # Search reaches members' emails.
    assert listed(admin_client.get(changelist("workspace"), {"q": "stranger@"})) == {
        other_workspace.pk
    }
    assert listed(admin_client.get(changelist("workspace"), {"plan__exact": "pro"})) == {
        workspace.pk
    }
    assert listed(admin_client.get(changelist("workspace"), {"plan__exact": "free"})) == {
        other_workspace.pk
    }
    assert listed(admin_client.get(changelist("workspace"), {"plan__exact": "team"})) == set()


def member_counts(response) -> dict[str, str]:
    """Workspace name → the text of its Members cell."""
    html = response.content.decode()
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    counts = {}
    for row in rows:
        name = re.search(r'<th class="field-name"><a [^>]*>([^<]*)</a>', row)
        count = re.search(r'<td class="field-member_count">([^<]*)</td>', row)
        if name and count:
            counts[name.group(1)] = count.group(1)
    return counts


def test_workspace_changelist_shows_member_count(
    admin_client, population, workspace, other_workspace
):
    response = admin_client.get(changelist("workspace"))
    assert response.status_code == 200
    assert "Members" in response.content.decode()
    assert member_counts(response) == {"Acme": "3", "Elsewhere": "1"}

    # A search that joins memberships must not multiply the count.
    searched = admin_client.get(changelist("workspace"), {"q": "example.com"})
    assert member_counts(searched) == {"Acme": "3", "Elsewhere": "1"}

    # The column sorts: list_display's fourth column is the member count.
    ascending = admin_client.get(changelist("workspace"), {"o": "4"})
    assert [w.pk for w in ascending.context["cl"].result_list] == [
        other_workspace.pk,
        workspace.pk,
    ]
    descending = admin_client.get(changelist("workspace"), {"o": "-4"})
    assert [w.pk for w in descending.context["cl"].result_list] == [
        workspace.pk,
        other_workspace.pk,
    ]


def test_membership_changelist_search_and_filters(
    admin_client, population, user, workspace, other_user, other_workspace
):
    owner = Membership.objects.get(user=user, workspace=workspace)
    stranger = Membership.objects.get(user=other_user, workspace=other_workspace)
    viewer = Membership.objects.get(user=population["viewer"])
    operator_member = Membership.objects.get(user=population["operator_member"])
    everyone = {owner.pk, stranger.pk, viewer.pk, operator_member.pk}

    assert listed(admin_client.get(changelist("membership"))) == everyone
    assert "role__exact" in sidebar_filters(admin_client.get(changelist("membership")))
    assert listed(admin_client.get(changelist("membership"), {"role__exact": "admin"})) == {
        owner.pk,
        stranger.pk,
    }
    assert listed(admin_client.get(changelist("membership"), {"role__exact": "viewer"})) == {
        viewer.pk
    }
    assert listed(admin_client.get(changelist("membership"), {"q": "Elsewhere"})) == {stranger.pk}
    assert listed(admin_client.get(changelist("membership"), {"q": "owner@example"})) == {owner.pk}
    assert listed(admin_client.get(changelist("membership"), {"q": workspace.pk})) == (
        everyone - {stranger.pk}
    )


def test_api_key_changelist_search_and_filters(admin_client, population):
    ci, deploy = population["ci_key"], population["deploy_key"]
    assert listed(admin_client.get(changelist("apikey"))) == {ci.pk, deploy.pk}
    assert {"role__exact", "status", "expires_at__isempty"} <= sidebar_filters(
        admin_client.get(changelist("apikey"))
    )
    assert listed(admin_client.get(changelist("apikey"), {"role__exact": "viewer"})) == {ci.pk}
    assert listed(admin_client.get(changelist("apikey"), {"role__exact": "admin"})) == {deploy.pk}
    # Status: active, expired or revoked (tests/admin/test_keys_and_workspaces.py has expiry).
    assert listed(admin_client.get(changelist("apikey"), {"status": "active"})) == {ci.pk}
    assert listed(admin_client.get(changelist("apikey"), {"status": "revoked"})) == {deploy.pk}
    assert listed(admin_client.get(changelist("apikey"), {"q": ci.prefix})) == {ci.pk}
    assert listed(admin_client.get(changelist("apikey"), {"q": "Elsewhere"})) == {deploy.pk}
    assert listed(admin_client.get(changelist("apikey"), {"q": "owner@example"})) == {ci.pk}

    html = admin_client.get(changelist("apikey")).content.decode()
    assert f"{ci.prefix}…" in html
    assert re.search(r'<td class="field-status"><span class="[^"]*">active</span></td>', html)
    assert re.search(r'<td class="field-status"><span class="[^"]*">revoked</span></td>', html)


# ---------------------------------------------------------------------------------------------
# Change and add pages
# ---------------------------------------------------------------------------------------------
def test_change_pages_render(admin_client, population, user, workspace):
    membership = Membership.objects.get(user=user, workspace=workspace)
    for obj in (user, workspace, membership, population["ci_key"]):
        response = admin_client.get(change_url(obj))
        assert response.status_code == 200, (obj, response.content[:500])
        assert response.context["original"].pk == obj.pk
    # The workspace page lists its members inline.
    html = admin_client.get(change_url(workspace)).content.decode()
    for member in (user, population["viewer"], population["operator_member"]):
        assert member.email in html


@pytest.mark.parametrize("model", MODELS)
def test_add_pages_render(admin_client, model):
    response = admin_client.get(reverse(f"admin:accounts_{model}_add"))
    assert response.status_code == 200
    assert response.context["add"] is True
    assert "adminform" in response.context


def test_api_key_add_form_offers_only_workspace_name_and_role(admin_client):
    form = admin_client.get(reverse("admin:accounts_apikey_add")).context["adminform"].form
    assert set(form.fields) == {"workspace", "name", "role"}


def test_autocomplete_for_workspace_and_user(admin_client, population, user, workspace):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "acme",
            "app_label": "accounts",
            "model_name": "apikey",
            "field_name": "workspace",
        },
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [workspace.pk]

    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "owner@",
            "app_label": "accounts",
            "model_name": "membership",
            "field_name": "user",
        },
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [user.pk]


def test_adding_a_user_creates_a_usable_user(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "newbie@example.com",
            "name": "Newbie",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = User.objects.get(email="newbie@example.com")
    assert response["Location"] == change_url(created)
    assert created.name == "Newbie"
    assert created.is_active and not created.is_staff and not created.is_superuser
    assert created.check_password("a-long-unusual-passphrase-42")
    assert created.pk.startswith("usr_")

    login = APIClient().post(
        "/api/auth/login",
        {"email": "newbie@example.com", "password": "a-long-unusual-passphrase-42"},
        format="json",
    )
    assert login.status_code == 200
    assert set(login.json()) == {"token", "refresh"}


def test_adding_a_user_with_mismatched_passwords_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "newbie@example.com",
            "password1": "a-long-passphrase-1",
            "password2": "a-long-passphrase-2",
        },
    )
    assert response.status_code == 200
    assert "password2" in response.context["adminform"].form.errors
    assert not User.objects.filter(email="newbie@example.com").exists()


def test_adding_a_user_whose_email_differs_only_in_case_is_refused(admin_client, user):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "OWNER@example.com",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert User.objects.filter(email__iexact="owner@example.com").count() == 1


def test_changing_a_workspace_plan_through_the_admin(admin_client, user, workspace):
    membership = Membership.objects.get(workspace=workspace)
    response = admin_client.post(
        change_url(workspace),
        {
            "name": "Acme Renamed",
            "plan": "team",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": membership.pk,
            "memberships-0-workspace": workspace.pk,
            "memberships-0-user": user.pk,
            "memberships-0-role": "admin",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    workspace.refresh_from_db()
    assert (workspace.name, workspace.plan) == ("Acme Renamed", "team")
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


# ---------------------------------------------------------------------------------------------
# API keys: creation shows the secret once, revocation, no deletion
# ---------------------------------------------------------------------------------------------
KEY_PATTERN = re.compile(r"sk-sverm-[A-Za-z0-9]{40}")


def test_adding_an_api_key_shows_its_secret_once_and_it_works(admin_client, operator, workspace):
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"),
        {"workspace": workspace.pk, "name": "from-admin", "role": "viewer"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain, response.content[:2000]
    api_key = ApiKey.objects.get()
    assert (api_key.workspace_id, api_key.name, api_key.role) == (
        workspace.pk,
        "from-admin",
        Role.VIEWER,
    )
    assert api_key.created_by == operator
    assert api_key.revoked_at is None

    html = response.content.decode()
    secrets_shown = KEY_PATTERN.findall(html)
    assert len(secrets_shown) == 1
    raw = secrets_shown[0]
    assert [m for m in messages_of(response) if raw in m] == [
        f"New API key (shown only now, copy it): {raw}"
    ]
    assert raw.startswith(api_key.prefix)
    assert api_key.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {getattr(api_key, f.attname) for f in ApiKey._meta.concrete_fields}

    # The admin logged the addition against the stored key.
    entry = operator.logentry_set.get()
    assert entry.object_id == api_key.pk and entry.is_addition()

    # The secret is shown only once: neither the list nor the key's page repeats it.
    for page in (changelist("apikey"), change_url(api_key)):
        again = admin_client.get(page)
        assert again.status_code == 200
        assert raw not in again.content.decode()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    listed_workspaces = client.get("/api/workspaces")
    assert listed_workspaces.status_code == 200
    assert [w["id"] for w in listed_workspaces.json()["data"]] == [workspace.pk]


def test_adding_an_api_key_without_a_workspace_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"), {"name": "orphan", "role": "viewer"}
    )
    assert response.status_code == 200
    assert "workspace" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()
    assert not KEY_PATTERN.search(response.content.decode())


def test_api_key_change_page_never_shows_the_secret_or_its_hash(admin_client, user, workspace):
    api_key, raw = api_key_create(workspace=workspace, name="ci", role="admin", created_by=user)
    response = admin_client.get(change_url(api_key))
    assert response.status_code == 200
    html = response.content.decode()
    assert raw not in html
    assert raw[len(api_key.prefix) :] not in html
    assert api_key.hashed_key not in html
    assert f"{api_key.prefix}…" in html
    assert not KEY_PATTERN.search(html)


def test_api_key_change_form_edits_only_name_and_role(
    admin_client, user, workspace, other_workspace
):
    api_key, raw = api_key_create(workspace=workspace, name="ci", role="admin", created_by=user)
    original_hash = api_key.hashed_key
    response = admin_client.post(
        change_url(api_key),
        {
            "name": "renamed",
            "role": "viewer",
            "workspace": other_workspace.pk,
            "hashed_key": "0" * 64,
            "revoked_at": "2020-01-01",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    api_key.refresh_from_db()
    assert (api_key.name, api_key.role) == ("renamed", Role.VIEWER)
    assert api_key.workspace_id == workspace.pk
    assert api_key.hashed_key == original_hash
    assert api_key.revoked_at is None
    assert api_status(raw) == 200


def test_revoke_action_revokes_only_the_active_selected_keys(admin_client, user, workspace):
    active, active_raw = api_key_create(
        workspace=workspace, name="active", role="admin", created_by=user
    )
    revoked_earlier = timezone.now() - timedelta(days=3)
    old, _ = api_key_create(workspace=workspace, name="old", role="admin", created_by=user)
    old.revoked_at = revoked_earlier
    old.save(update_fields=["revoked_at"])
    untouched, untouched_raw = api_key_create(
        workspace=workspace, name="untouched", role="admin", created_by=user
    )
    assert api_status(active_raw) == 200

    response = admin_client.post(
        changelist("apikey"),
        {"action": "revoke_keys", "index": "0", "_selected_action": [active.pk, old.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Revoked 1 API key(s)." in messages_of(response)

    active.refresh_from_db()
    old.refresh_from_db()
    untouched.refresh_from_db()
    assert active.revoked_at is not None
    assert old.revoked_at == revoked_earlier
    assert untouched.revoked_at is None

    assert api_status(active_raw) == 401
    assert api_status(untouched_raw) == 200


def test_revoke_action_is_offered_and_delete_selected_is_not(admin_client, user, workspace):
    api_key_create(workspace=workspace, name="ci", role="admin", created_by=user)
    response = admin_client.get(changelist("apikey"))
    choices = dict(response.context["action_form"].fields["action"].choices)
    assert "revoke_keys" in choices
    assert "delete_selected" not in choices


def test_api_keys_cannot_be_deleted(admin_client, user, workspace):
    api_key, raw = api_key_create(workspace=workspace, name="ci", role="admin", created_by=user)
    delete_url = reverse("admin:accounts_apikey_delete", args=[quote(api_key.pk)])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    # Nor through the bulk action.
    admin_client.post(
        changelist("apikey"),
        {
            "action": "delete_selected",
            "index": "0",
            "_selected_action": [api_key.pk],
            "post": "yes",
        },
    )
    assert ApiKey.objects.filter(pk=api_key.pk).exists()
    assert api_status(raw) == 200
    # The change page offers no delete link.
    assert delete_url not in admin_client.get(change_url(api_key)).content.decode()


def test_other_models_can_still_be_deleted(admin_client, make_user):
    """The no-delete rule is the API key's alone (a control for the test above)."""
    doomed = make_user(email="doomed@example.com")
    workspace = workspace_create(name="Doomed", owner=doomed)
    delete_url = reverse("admin:accounts_workspace_delete", args=[quote(workspace.pk)])
    assert admin_client.get(delete_url).status_code == 200
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Workspace.objects.filter(pk=workspace.pk).exists()

"""`manage.py bootstrap`: the idempotent first-run admin, workspace and API key."""

import hashlib
import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, User, Workspace
from accounts.roles import Role
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

EMAIL = "root@example.com"
# The default of SVERM_ADMIN_EMAIL in the Makefile, used by `make run`.
MAKE_RUN_EMAIL = "admin@local"
KEY_LINE = re.compile(r"^API key: (sk-sverm-[A-Za-z0-9]{40})$")
PASSWORD_LINE = re.compile(r"^Admin password: (\S+)$")


def bootstrap(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue().splitlines()


def new_key(lines: list[str]) -> str | None:
    found = [m.group(1) for line in lines if (m := KEY_LINE.match(line))]
    assert len(found) <= 1, lines
    return found[0] if found else None


def printed_password(lines: list[str]) -> str | None:
    found = [m.group(1) for line in lines if (m := PASSWORD_LINE.match(line))]
    assert len(found) <= 1, lines
    return found[0] if found else None


def api_status(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/api/workspaces").status_code


def login(email: str, password: str):
    return APIClient().post(
        "/api/auth/login", {"email": email, "password": password}, format="json"
    )


def active_keys(workspace: Workspace):
    return ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True)


def test_first_run_creates_superuser_workspace_and_working_key():
    lines = bootstrap("--email", EMAIL, "--password", PASSWORD)

    user = User.objects.get()
    assert user.email == EMAIL
    assert user.is_staff and user.is_superuser and user.is_active
    assert user.check_password(PASSWORD)

    workspace = Workspace.objects.get()
    assert workspace.name == "Default"
    assert workspace.plan == "free"
    membership = Membership.objects.get()
    assert (membership.user, membership.workspace, membership.role) == (
        user,
        workspace,
        Role.ADMIN,
    )

    raw = new_key(lines)
    assert raw is not None, lines
    api_key = ApiKey.objects.get()
    assert api_key.workspace == workspace and api_key.created_by == user
    assert api_key.role == Role.ADMIN and api_key.revoked_at is None
    assert api_key.hashed_key == hashlib.sha256(raw.encode()).hexdigest()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get("/api/workspaces")
    assert response.status_code == 200
    assert [(w["id"], w["role"]) for w in response.json()["data"]] == [(workspace.pk, "admin")]

    assert f"Admin: {EMAIL} (created)" in lines
    assert f"Workspace: Default {workspace.pk} (plan free)" in lines
    # A given password is not echoed.
    assert printed_password(lines) is None
    assert not any(PASSWORD in line for line in lines)


def test_workspace_name_and_plan_options():
    lines = bootstrap("--email", EMAIL, "--workspace", "  Ops  ", "--plan", "team")
    workspace = Workspace.objects.get()
    assert (workspace.name, workspace.plan) == ("Ops", "team")
    assert Membership.objects.get(workspace=workspace).role == Role.ADMIN
    assert f"Workspace: Ops {workspace.pk} (plan team)" in lines


def test_generated_password_is_printed_and_logs_in():
    lines = bootstrap("--email", EMAIL)
    password = printed_password(lines)
    assert password, lines
    assert len(password) >= 16
    assert User.objects.get().check_password(password)

    response = login(EMAIL, password)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"token", "refresh"}
    assert login(EMAIL, password + "x").status_code == 401


def test_generated_passwords_differ_between_installs():
    first = printed_password(bootstrap("--email", "one@example.com"))
    second = printed_password(bootstrap("--email", "two@example.com"))
    assert first and second and first != second


def test_rerun_is_idempotent():
    first = bootstrap("--email", EMAIL)
    password = printed_password(first)
    raw = new_key(first)
    user = User.objects.get()
    workspace = Workspace.objects.get()
    key = ApiKey.objects.get()

    for _ in range(2):
        again = bootstrap("--email", EMAIL)
        assert User.objects.get().pk == user.pk
        assert Workspace.objects.get().pk == workspace.pk
        assert Membership.objects.count() == 1
        assert list(active_keys(workspace)) == [key]
        assert ApiKey.objects.count() == 1
        assert printed_password(again) is None
        assert new_key(again) is None
        assert any(line.startswith("API key: unchanged") for line in again), again
        assert any(key.prefix in line for line in again if line.startswith("API key:"))
        assert f"Admin: {EMAIL} (exists)" in again

    # What the first run printed still works.
    assert login(EMAIL, password).status_code == 200
    assert api_status(raw) == 200


def test_rerun_matches_the_email_case_insensitively():
    bootstrap("--email", EMAIL)
    lines = bootstrap("--email", "ROOT@Example.com")
    assert User.objects.count() == 1
    assert Workspace.objects.count() == 1
    assert new_key(lines) is None


def test_rerun_with_password_sets_it():
    first = printed_password(bootstrap("--email", EMAIL))
    lines = bootstrap("--email", EMAIL, "--password", "a-new-operator-passphrase")
    assert printed_password(lines) is None
    assert login(EMAIL, "a-new-operator-passphrase").status_code == 200
    assert login(EMAIL, first).status_code == 401
    assert ApiKey.objects.count() == 1


def test_rerun_restores_operator_flags(make_user):
    make_user(email=EMAIL, is_active=False)
    lines = bootstrap("--email", EMAIL, "--password", PASSWORD)
    user = User.objects.get()
    assert user.is_staff and user.is_superuser and user.is_active
    assert f"Admin: {EMAIL} (exists)" in lines
    assert login(EMAIL, PASSWORD).status_code == 200


def test_rotate_key_revokes_the_old_key_and_prints_a_new_one():
    old_raw = new_key(bootstrap("--email", EMAIL))
    old = ApiKey.objects.get()
    assert api_status(old_raw) == 200

    lines = bootstrap("--email", EMAIL, "--rotate-key")
    new_raw = new_key(lines)
    assert new_raw is not None and new_raw != old_raw
    old.refresh_from_db()
    assert old.revoked_at is not None
    workspace = Workspace.objects.get()
    assert active_keys(workspace).count() == 1
    assert active_keys(workspace).get().hashed_key == hashlib.sha256(new_raw.encode()).hexdigest()

    assert api_status(old_raw) == 401
    assert api_status(new_raw) == 200

    # Rotation leaves the admin and workspace alone.
    assert User.objects.count() == 1 and Workspace.objects.count() == 1
    assert printed_password(lines) is None


def test_rotate_key_leaves_other_keys_of_the_workspace_alone(key_client):
    bootstrap("--email", EMAIL)
    workspace = Workspace.objects.get()
    _, other, other_raw = key_client(workspace, Role.VIEWER)

    bootstrap("--email", EMAIL, "--rotate-key")
    other.refresh_from_db()
    assert other.revoked_at is None
    assert api_status(other_raw) == 200
    assert active_keys(workspace).count() == 2


def test_a_revoked_bootstrap_key_is_replaced_on_rerun():
    old_raw = new_key(bootstrap("--email", EMAIL))
    ApiKey.objects.update(revoked_at="2020-01-01T00:00:00Z")
    lines = bootstrap("--email", EMAIL)
    new_raw = new_key(lines)
    assert new_raw is not None and new_raw != old_raw
    assert api_status(new_raw) == 200
    assert api_status(old_raw) == 401


def test_rerun_without_plan_keeps_the_existing_plan():
    bootstrap("--email", EMAIL, "--plan", "pro")
    assert Workspace.objects.get().plan == "pro"

    lines = bootstrap("--email", EMAIL)
    workspace = Workspace.objects.get()
    assert workspace.plan == "pro"
    assert f"Workspace: Default {workspace.pk} (plan pro)" in lines

    bootstrap("--email", EMAIL, "--plan", "team")
    assert Workspace.objects.get().plan == "team"


def test_another_workspace_name_makes_another_workspace():
    bootstrap("--email", EMAIL)
    lines = bootstrap("--email", EMAIL, "--workspace", "Second")
    assert sorted(Workspace.objects.values_list("name", flat=True)) == ["Default", "Second"]
    second = Workspace.objects.get(name="Second")
    assert Membership.objects.get(workspace=second).role == Role.ADMIN
    raw = new_key(lines)
    assert raw is not None
    assert api_status(raw) == 200


def test_make_run_default_email_is_accepted_and_logs_in():
    lines = bootstrap("--email", MAKE_RUN_EMAIL)
    user = User.objects.get()
    assert user.email == MAKE_RUN_EMAIL
    assert user.is_superuser and user.is_staff

    password = printed_password(lines)
    assert password
    response = login(MAKE_RUN_EMAIL, password)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"token", "refresh"}

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    listed = client.get("/api/workspaces")
    assert listed.status_code == 200
    assert [w["name"] for w in listed.json()["data"]] == ["Default"]

    raw = new_key(lines)
    assert raw is not None and api_status(raw) == 200


def test_make_run_default_email_with_password_logs_in_to_the_admin():
    bootstrap("--email", MAKE_RUN_EMAIL, "--password", PASSWORD)
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": MAKE_RUN_EMAIL, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("email", ["not-an-email", "admin@", "@local", "admin@local..", ""])
def test_invalid_email_is_a_command_error(email):
    with pytest.raises(CommandError, match="not a valid email"):
        bootstrap("--email", email)
    assert not User.objects.exists()
    assert not Workspace.objects.exists()


def test_blank_workspace_name_is_a_command_error():
    with pytest.raises(CommandError, match="--workspace"):
        bootstrap("--email", EMAIL, "--workspace", "   ")
    assert not User.objects.exists()


def test_unknown_plan_is_refused_by_the_argument_parser():
    with pytest.raises(CommandError, match="invalid choice: 'gold'"):
        bootstrap("--email", EMAIL, "--plan", "gold")
    assert not User.objects.exists()


def test_email_is_required():
    with pytest.raises(CommandError, match="--email"):
        bootstrap()

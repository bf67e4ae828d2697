"""Operators in the admin: a staff superuser's client, a staff member who may only look, runs
that never execute (their rows are what the pages show), and reading the messages a page
says."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.conftest import PASSWORD


@pytest.fixture
def not_executing(db, settings):
    """Runs are created but never dispatched (`db`: on_commit callbacks never fire)."""
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}
    return settings


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser(email="ops@example.com", password=PASSWORD)


@pytest.fixture
def staff(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_staff(make_user) -> Client:
    """Staff who may view runs but not steer them (no `swarms.change_run`)."""
    user = make_user(email="looker@example.com", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_run"))
    client = Client()
    client.force_login(user)
    return client


def run_url(run_id: str) -> str:
    return reverse("admin:swarms_run_change", args=[quote(run_id)])


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m.message)) for m in response.context["messages"]]

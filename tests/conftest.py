"""Shared fixtures: users, workspaces with roles, and API clients authenticated as them."""

import itertools
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ApiKey, Membership, User, Workspace
from accounts.roles import Role
from accounts.services import api_key_create, workspace_create

PASSWORD = "correct-horse-battery-staple"
_emails = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for production; tests only need a hash that verifies.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True, scope="session")
def _no_background_reaper():
    """The embedded timer's thread (the reaper, retention) is not started in the test process
    (it would reap other tests' runs, and outlive the test database): tests that reap call the
    reaper themselves; tests/runs/test_restart.py runs it in a real server process."""
    from sverm import periodic

    start = periodic.start_embedded
    periodic.start_embedded = lambda: None
    yield
    periodic.start_embedded = start


@pytest.fixture(autouse=True)
def _executor_connections_closed_when_idle(settings):
    """The run host's lanes close their connections as their last run ends, so none outlives
    a test (and the test database can be dropped)."""
    settings.SVERM_EXECUTOR_DB_IDLE_SECONDS = 0


@pytest.fixture(autouse=True)
def _rate_limits_off(settings):
    """Plan rate limits are off unless a test asks for `rate_limits_on` (tests/limits): many
    tests poll one free-plan workspace far more than 10 times a minute."""
    settings.SVERM_RATE_LIMITS = False


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(email: str | None = None, password: str = PASSWORD, **extra) -> User:
        return User.objects.create_user(
            email=email or f"user{next(_emails)}@example.com", password=password, **extra
        )

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user(email="owner@example.com", name="Owner")


@pytest.fixture
def workspace(user) -> Workspace:
    """A workspace where `user` is admin."""
    return workspace_create(name="Acme", owner=user)


@pytest.fixture
def other_user(make_user) -> User:
    return make_user(email="stranger@example.com")


@pytest.fixture
def other_workspace(other_user) -> Workspace:
    """A workspace `user` is not a member of."""
    return workspace_create(name="Elsewhere", owner=other_user)


@pytest.fixture
def member_of(make_user) -> Callable[[Workspace, str], User]:
    """A new user holding `role` in `workspace`."""

    def make(workspace: Workspace, role: str) -> User:
        member = make_user()
        Membership.objects.create(workspace=workspace, user=member, role=role)
        return member

    return make


def jwt_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def api_client(user) -> APIClient:
    """Authenticated as `user` with a JWT."""
    return jwt_client(user)


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    return jwt_client


@pytest.fixture
def key_client(user) -> Callable[..., tuple[APIClient, ApiKey, str]]:
    """An APIClient authenticated with a new API key of `workspace` carrying `role`."""

    def make(workspace: Workspace, role: str = Role.OPERATOR) -> tuple[APIClient, ApiKey, str]:
        api_key, raw = api_key_create(workspace=workspace, name="test", role=role, created_by=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client, api_key, raw

    return make


def assert_problem(response, status: int, code: str) -> dict:
    """The response is an RFC 9457 problem with this status and code; returns its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code.replace("_", "-"))
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.wsgi_request.path
    assert body["correlation_id"] == response["X-Request-ID"]
    return body


def assert_v1_error(response, status: int, code: str) -> dict:
    """The response is seed 002's error envelope with this status and code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["details"], dict)
    assert error["correlation_id"] == response["X-Request-ID"]
    return error


@pytest.fixture
def staff(db) -> Client:
    """The admin as a platform operator (a superuser) sees it: a logged-in Django client."""
    client = Client()
    client.force_login(User.objects.create_superuser(email="ops@example.com", password=PASSWORD))
    return client

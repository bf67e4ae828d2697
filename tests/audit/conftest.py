"""Helpers for the audit trail's tests: finding the one event an action recorded and checking
who it names, and an admin client."""

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent
from tests.conftest import PASSWORD

# What Django's test client sends as REMOTE_ADDR.
TEST_CLIENT_IP = "127.0.0.1"


def the_event(action: str, target_id: str | None = None, **fields) -> AuditEvent:
    """The one event of `action` (on `target_id`); fails when there is none or more."""
    events = AuditEvent.objects.filter(action=action, **fields)
    if target_id is not None:
        events = events.filter(target_id=target_id)
    found = list(events)
    assert len(found) == 1, [(e.action, e.target_id) for e in AuditEvent.objects.all()]
    return found[0]


def assert_by(event: AuditEvent, response, *, actor_type: str, actor_id: str, label: str):
    """The event names the caller and the request: its actor, the client's IP and the
    response's X-Request-ID as correlation id."""
    assert (event.actor_type, event.actor_id, event.actor_label) == (actor_type, actor_id, label)
    assert event.ip == TEST_CLIENT_IP
    assert event.correlation_id == response["X-Request-ID"]
    assert event.correlation_id.startswith("req_")


def assert_by_user(event: AuditEvent, response, user: User) -> None:
    assert_by(event, response, actor_type="user", actor_id=user.pk, label=user.email)


@pytest.fixture
def operator_user(db) -> User:
    return User.objects.create_superuser(email="ops@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(operator_user) -> Client:
    """The Django admin, signed in as a staff superuser."""
    client = Client()
    client.force_login(operator_user)
    return client


@pytest.fixture
def staff_user(make_user) -> User:
    return make_user(email="staff@example.com", is_staff=True)

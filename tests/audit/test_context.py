"""The request's audit context: the client's IP as the auth rate limit counts it (NUM_PROXIES),
the caller's X-Request-ID as correlation id, and nothing of it left behind after the request."""

import pytest
from django.conf import settings as django_settings

from audit.context import audit_context, audit_context_use
from audit.models import AuditEvent
from tests.audit.conftest import TEST_CLIENT_IP


def rename(client, workspace, name, **headers):
    response = client.patch(f"/api/workspaces/{workspace.pk}", {"name": name}, format="json",
                            **headers)  # fmt: skip
    assert response.status_code == 200, response.content
    return AuditEvent.objects.filter(action="workspace.update").latest("created_at")


@pytest.fixture
def proxies(settings):
    def set_to(count: int) -> None:
        settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return set_to


def test_without_proxies_forwarded_for_is_ignored(api_client, workspace):
    event = rename(api_client, workspace, "One", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert event.ip == TEST_CLIENT_IP


def test_behind_one_proxy_the_address_it_saw_is_recorded(api_client, workspace, proxies):
    proxies(1)
    event = rename(api_client, workspace, "One",
                   HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9")  # fmt: skip
    assert event.ip == "203.0.113.9"


def test_a_forwarded_for_that_is_no_address_is_recorded_as_none(api_client, workspace, proxies):
    proxies(1)
    event = rename(api_client, workspace, "One", HTTP_X_FORWARDED_FOR="not-an-address")
    assert event.ip is None


def test_the_callers_request_id_is_the_correlation_id(api_client, workspace):
    event = rename(api_client, workspace, "One", HTTP_X_REQUEST_ID="support-ticket-42")
    assert event.correlation_id == "support-ticket-42"


def test_the_context_is_reset_after_each_request(api_client, workspace):
    rename(api_client, workspace, "One")
    assert audit_context().actor_type == "system"
    assert audit_context().ip is None


def test_a_task_may_act_for_someone_inside_a_block(db):
    with audit_context_use(actor_type="user", actor_id="usr_1", actor_label="a@example.com",
                           correlation_id="req_task"):  # fmt: skip
        assert audit_context().actor_id == "usr_1"
        assert audit_context().correlation_id == "req_task"
    assert audit_context().actor_type == "system"

"""An audit event is written in the same transaction as its change: a change rolled back leaves
no event, and an audit write that fails undoes the change (the API answers 500, nothing moved)."""

import pytest
from django.db import DatabaseError, transaction

from accounts.models import ApiKey, Membership
from accounts.services import membership_add, workspace_update
from audit import services as audit_services
from audit.models import AuditEvent
from billing.models import MonthlyUsage
from swarms.models import Run, Swarm
from swarms.services import swarm_update
from tests.factories import create_run, make_swarm


class Boom(Exception):
    pass


@pytest.fixture
def audit_down(monkeypatch):
    """Every audit write fails, as a full disk or a dropped table would make it."""

    def refuse(self, *args, **kwargs):
        raise DatabaseError("the audit table is unavailable")

    monkeypatch.setattr(AuditEvent, "save", refuse)


@pytest.fixture
def settings_quiet(settings):
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}
    return settings


def _events(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


# ---------------------------------------------------------------------------------------------
# A change that rolls back leaves no event (real transactions: nothing wraps the test)
# ---------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_leaves_no_event(user, workspace):
    swarm = make_swarm(workspace, user, name="Alpha")
    with pytest.raises(Boom), transaction.atomic():
        swarm_update(swarm=swarm, data={"name": "Renamed"})
        assert _events("swarm.update") == 1  # written, inside the transaction
        raise Boom
    assert Swarm.objects.get(pk=swarm.pk).name == "Alpha"
    assert _events("swarm.update") == 0


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_keeps_its_event(user, workspace):
    swarm = make_swarm(workspace, user, name="Alpha")
    with transaction.atomic():
        swarm_update(swarm=swarm, data={"name": "Renamed"})
    assert Swarm.objects.get(pk=swarm.pk).name == "Renamed"
    assert _events("swarm.update") == 1


@pytest.mark.django_db(transaction=True)
def test_a_membership_rolled_back_with_its_caller_leaves_no_event(workspace, make_user):
    newcomer = make_user()
    with pytest.raises(Boom), transaction.atomic():
        membership_add(workspace=workspace, email=newcomer.email, role="viewer")
        raise Boom
    assert not Membership.objects.filter(user=newcomer).exists()
    assert not AuditEvent.objects.filter(action="member.add", after__user_id=newcomer.pk).exists()


# ---------------------------------------------------------------------------------------------
# An audit write that fails undoes the change
# ---------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_failed_audit_write_undoes_a_service_change(workspace, audit_down):
    with pytest.raises(DatabaseError):
        workspace_update(workspace=workspace, data={"name": "Renamed", "plan": "pro"})
    workspace.refresh_from_db()
    assert (workspace.name, workspace.plan) == ("Acme", "free")


def test_a_failed_audit_write_fails_the_request_and_changes_nothing(
    api_client, user, workspace, audit_down
):
    swarm = Swarm.objects.create(workspace=workspace, name="Alpha", created_by=user)
    api_client.raise_request_exception = False
    response = api_client.patch(f"/api/swarms/{swarm.pk}", {"name": "Renamed"}, format="json")
    assert response.status_code == 500
    assert Swarm.objects.get(pk=swarm.pk).name == "Alpha"


def test_a_failed_audit_write_creates_no_run_and_counts_none(
    api_client, user, workspace, settings_quiet, monkeypatch
):
    swarm = make_swarm(workspace, user, name="Alpha", models=["gpt-4o-mini"])
    monkeypatch.setattr(AuditEvent, "save", _refuse)
    api_client.raise_request_exception = False
    response = api_client.post(f"/api/swarms/{swarm.pk}/runs", {"task": "Count"}, format="json")
    assert response.status_code == 500
    assert not Run.objects.exists()
    assert not MonthlyUsage.objects.filter(workspace=workspace).exclude(runs=0).exists()


def test_a_failed_audit_write_keeps_an_api_key_from_existing(api_client, workspace, audit_down):
    api_client.raise_request_exception = False
    response = api_client.post(
        "/api/api-keys", {"workspaceId": workspace.pk, "name": "ci", "role": "operator"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 500
    assert not ApiKey.objects.filter(name="ci").exists()


def test_a_failed_audit_write_leaves_the_run_uncancelled(
    api_client, workspace, settings_quiet, monkeypatch
):
    run = create_run(workspace)
    monkeypatch.setattr(AuditEvent, "save", _refuse)
    api_client.raise_request_exception = False
    assert api_client.post(f"/api/runs/{run.pk}/cancel").status_code == 500
    run.refresh_from_db()
    assert (run.status, run.cancel_requested_at) == ("queued", None)
    assert not run.events.exists()


def test_the_event_is_written_while_the_change_is_still_uncommitted(user, workspace, monkeypatch):
    """audit_record runs inside the service's own atomic block (not after it returned)."""
    swarm = make_swarm(workspace, user, name="Alpha")
    seen = []
    record = audit_services.audit_record

    def spy(**kwargs):
        connection = transaction.get_connection()
        # The service's block, inside the test's: at least two levels of atomic.
        seen.append(len(connection.savepoint_ids) >= 1 and connection.in_atomic_block)
        seen.append(Swarm.objects.get(pk=swarm.pk).name)
        return record(**kwargs)

    monkeypatch.setattr("swarms.services.swarms.audit_record", spy)
    swarm_update(swarm=swarm, data={"name": "Renamed"})
    assert seen == [True, "Renamed"]


def _refuse(self, *args, **kwargs):
    raise DatabaseError("the audit table is unavailable")

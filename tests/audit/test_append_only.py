"""Audit events are append-only: the model and its QuerySet refuse updates and deletes, and on
PostgreSQL so does the database (a trigger) unless the retention pruner's session flag is on."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import PRUNE_SETTING, AuditAppendOnly, AuditEvent
from audit.services import audit_record, audit_retention_prune

pytestmark = pytest.mark.django_db

POSTGRES = pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL trigger")


def raw(sql: str, params: list) -> None:
    """One statement in its own savepoint, past the ORM."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def event() -> AuditEvent:
    with transaction.atomic():
        return audit_record(action="swarm.update", workspace_id="wsp_x", target_type="swarm",
                            target_id="swm_x", before={"name": "a"},
                            after={"name": "b"})  # fmt: skip


def test_an_event_is_written_once_with_a_prefixed_id(event):
    assert event.id.startswith("aud_") and len(event.id) == 30
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.before, stored.after) == ({"name": "a"}, {"name": "b"})


def test_saving_an_existing_event_is_refused(event):
    event.action = "swarm.delete"
    with pytest.raises(AuditAppendOnly):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "swarm.update"


def test_deleting_an_event_is_refused(event):
    with pytest.raises(AuditAppendOnly):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda events: events.update(action="x.y"),
        lambda events: events.delete(),
        lambda events: events.filter(action="swarm.update").delete(),
        lambda events: AuditEvent.objects.bulk_update(list(events), ["action"]),
    ],
    ids=["update", "delete", "filtered-delete", "bulk_update"],
)
def test_the_queryset_refuses_updates_and_deletes(event, change):
    with pytest.raises(AuditAppendOnly):
        change(AuditEvent.objects.all())
    assert AuditEvent.objects.get(pk=event.pk).action == "swarm.update"


def test_a_malformed_action_is_refused():
    for action in ("Swarm.Update", "swarmupdate", ""):
        with pytest.raises(ValueError), transaction.atomic():
            audit_record(action=action, workspace_id=None, target_type="x", target_id="y")
    assert not AuditEvent.objects.exists()


def test_values_are_stored_as_plain_json():
    from decimal import Decimal

    moment = timezone.now()
    with transaction.atomic():
        event = audit_record(
            action="run.budget_raise", workspace_id="wsp_x", target_type="run", target_id="r",
            before={"max_budget_usd": Decimal("3.50"), "at": moment, "tags": {"b", "a"}},
        )  # fmt: skip
    stored = AuditEvent.objects.get(pk=event.pk).before
    assert stored["max_budget_usd"] == "3.50" and stored["tags"] == ["a", "b"]
    assert stored["at"].startswith(moment.strftime("%Y-%m-%dT%H:%M:%S"))


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the database refuses too
# ---------------------------------------------------------------------------------------------
@POSTGRES
def test_the_database_refuses_a_raw_update(event):
    with pytest.raises(DatabaseError, match="append-only"):
        raw("UPDATE audit_auditevent SET action = 'x.y' WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "swarm.update"


@POSTGRES
def test_the_database_refuses_a_raw_delete(event):
    with pytest.raises(DatabaseError, match="append-only"):
        raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@POSTGRES
@pytest.mark.django_db(transaction=True)
def test_the_pruners_flag_lets_a_delete_through_for_its_transaction_only(event):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [PRUNE_SETTING])
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    with transaction.atomic():
        kept = audit_record(action="swarm.update", workspace_id="wsp_x", target_type="swarm",
                            target_id="swm_y")  # fmt: skip
    with pytest.raises(DatabaseError, match="append-only"):  # the flag ended with its transaction
        raw("DELETE FROM audit_auditevent WHERE id = %s", [kept.pk])


@POSTGRES
def test_retention_pruning_passes_the_trigger_and_leaves_it_armed(event):
    with transaction.atomic():
        kept = audit_record(action="swarm.update", workspace_id="wsp_y", target_type="swarm",
                            target_id="swm_y")  # fmt: skip
    pruned = audit_retention_prune(cutoff=timezone.now() + timedelta(seconds=1),
                                   workspace_ids=["wsp_x"])  # fmt: skip
    assert pruned == 1 and list(AuditEvent.objects.all()) == [kept]
    # Inside the test's transaction: the pruner turned its flag off behind it.
    with pytest.raises(DatabaseError, match="append-only"):
        raw("DELETE FROM audit_auditevent WHERE id = %s", [kept.pk])

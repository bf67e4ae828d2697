"""Pruning finished runs past their tier's window: the boundary of each tier, operator windows,
what is kept (run rows, the terminal event, billing), batching, idempotency and dry runs."""

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from swarms.models import Run, RunEvent, RunStatus, WebhookDelivery
from swarms.services.retention import PruneReport, runs_prune_expired
from tests.factories import make_swarm
from tests.retention.conftest import (
    NOW,
    SECOND,
    active_run,
    assert_pruned,
    assert_untouched,
    billing_snapshot,
    delivery,
    event_types,
    finished_run,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
TIERS = [("ephemeral", 7), ("standard", 30), ("extended", 365), (None, 30)]


@pytest.mark.parametrize(("tier", "days"), TIERS, ids=["ephemeral", "standard", "extended", "v1"])
def test_each_tier_prunes_runs_just_outside_its_window_and_keeps_those_just_inside(
    workspace, user, tier, days
):
    # tier None: a /v1 run (no swarm) is in the standard tier.
    swarm = make_swarm(workspace, user, retention_tier=tier) if tier else None
    window = timedelta(days=days)
    inside = finished_run(workspace, swarm=swarm, ago=window - SECOND)
    at_the_edge = finished_run(workspace, swarm=swarm, ago=window)  # not older than the window
    outside = finished_run(workspace, swarm=swarm, ago=window + SECOND)

    report = runs_prune_expired(now=NOW)

    assert_pruned(outside)
    assert_untouched(inside)
    assert_untouched(at_the_edge)
    assert report == PruneReport(runs=1, events_deleted=4, outputs_cleared=1)


def test_every_terminal_status_is_pruned_and_the_run_row_is_kept(workspace):
    runs = [
        finished_run(workspace, ago=31 * DAY, status=status)
        for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    ]
    report = runs_prune_expired(now=NOW)
    for run in runs:
        assert_pruned(run)
    assert report.runs == report.outputs_cleared == 3
    assert report.events_deleted == 12


def test_operator_windows_from_settings_replace_the_defaults(workspace, user, settings):
    settings.SVERM_RETENTION_DAYS = {"ephemeral": 1, "standard": 2, "extended": 3}
    runs = {
        tier: finished_run(
            workspace, swarm=make_swarm(workspace, user, retention_tier=tier), ago=DAY * 1.5
        )
        for tier in ("ephemeral", "standard", "extended")
    }
    v1_run = finished_run(workspace, ago=DAY * 2.5)
    runs_prune_expired(now=NOW)
    assert_pruned(runs["ephemeral"])
    assert_untouched(runs["standard"])
    assert_untouched(runs["extended"])
    assert_pruned(v1_run)  # standard: 2 days


def test_the_tier_is_read_at_each_pass(workspace, user):
    swarm = make_swarm(workspace, user, retention_tier="extended")
    run = finished_run(workspace, swarm=swarm, ago=10 * DAY)
    assert runs_prune_expired(now=NOW).runs == 0
    swarm.retention_tier = "ephemeral"
    swarm.save()
    assert runs_prune_expired(now=NOW).runs == 1
    assert_pruned(run)


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_queued_and_running_runs_are_never_touched(workspace, status):
    run = active_run(workspace, status, ago=400 * DAY)
    # Even with a completion time (which an active run should not have), it is left alone.
    stale = active_run(workspace, status, ago=400 * DAY)
    Run.objects.filter(pk=stale.pk).update(completed_at=NOW - 400 * DAY)
    assert runs_prune_expired(now=NOW) == PruneReport()
    for kept in (run, stale):
        assert Run.objects.get(pk=kept.pk).output == "partial"
        assert RunEvent.objects.filter(run=kept).count() == 2


def test_billing_rows_are_untouched_by_pruning(workspace, user):
    swarm = make_swarm(workspace, user, retention_tier="ephemeral")
    for ago in (1, 10, 40, 400):
        finished_run(workspace, swarm=swarm, ago=ago * DAY, cost="0.3333333333")
        finished_run(workspace, ago=ago * DAY, cost="0.0000000007")
    before = billing_snapshot()
    assert runs_prune_expired(now=NOW).runs == 5  # ephemeral: 10, 40, 400 days; v1: 40, 400
    assert billing_snapshot() == before
    assert before[0] is not None and before[0] > 0


def test_a_second_pass_finds_nothing(workspace):
    run = finished_run(workspace, ago=31 * DAY)
    delivery(run)
    first = runs_prune_expired(now=NOW)
    assert first == PruneReport(
        runs=1, events_deleted=4, outputs_cleared=1, webhook_deliveries_deleted=1
    )
    assert runs_prune_expired(now=NOW) == PruneReport()
    assert runs_prune_expired(now=NOW + 365 * DAY) == PruneReport()
    assert_pruned(run)


def test_a_run_without_output_or_events_left_is_not_visited(workspace):
    # Failed before any agent ran: only its terminal event, no output. Nothing to prune.
    finished_run(workspace, ago=31 * DAY, status=RunStatus.FAILED, output="", events=0)
    assert runs_prune_expired(now=NOW) == PruneReport()


def test_a_dry_run_counts_what_a_real_pass_then_does_and_changes_nothing(workspace, user):
    swarm = make_swarm(workspace, user, retention_tier="ephemeral")
    expired = [finished_run(workspace, swarm=swarm, ago=8 * DAY) for _ in range(3)]
    kept = finished_run(workspace, swarm=swarm, ago=6 * DAY)
    delivery(expired[0])
    rows_before = list(RunEvent.objects.order_by("pk").values_list("pk", "data"))

    dry = runs_prune_expired(now=NOW, dry_run=True)

    assert list(RunEvent.objects.order_by("pk").values_list("pk", "data")) == rows_before
    assert WebhookDelivery.objects.count() == 1
    for run in [*expired, kept]:
        assert_untouched(run)
    real = runs_prune_expired(now=NOW)
    assert dry == PruneReport(
        runs=3, events_deleted=12, outputs_cleared=3, webhook_deliveries_deleted=1, dry_run=True
    )
    assert real == PruneReport(
        runs=3, events_deleted=12, outputs_cleared=3, webhook_deliveries_deleted=1
    )


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_batches_of_any_size_prune_everything_once(workspace, batch_size):
    runs = [finished_run(workspace, ago=31 * DAY, events=5) for _ in range(5)]
    report = runs_prune_expired(now=NOW, batch_size=batch_size)
    assert report == PruneReport(runs=5, events_deleted=25, outputs_cleared=5)
    for run in runs:
        assert event_types(run) == ["run.completed"]


def test_a_batch_size_below_one_is_refused(workspace):
    with pytest.raises(ValueError, match="batch_size"):
        runs_prune_expired(now=NOW, batch_size=0)


def test_the_webhook_log_waits_for_pending_retries(workspace):
    run = finished_run(workspace, ago=31 * DAY)
    delivery(run, next_attempt_at=NOW - SECOND)
    delivery(run, next_attempt_at=NOW + timedelta(hours=2))  # a retry is still scheduled

    first = runs_prune_expired(now=NOW)
    assert (first.runs, first.events_deleted, first.webhook_deliveries_deleted) == (1, 4, 0)
    assert WebhookDelivery.objects.filter(run=run).count() == 2
    assert runs_prune_expired(now=NOW) == PruneReport()  # still pending: not revisited

    later = runs_prune_expired(now=NOW + timedelta(hours=3))
    assert (later.runs, later.webhook_deliveries_deleted) == (1, 2)
    assert_pruned(run)


def test_the_terminal_event_keeps_its_shape_with_a_blank_output(workspace):
    run = finished_run(workspace, ago=31 * DAY)
    runs_prune_expired(now=NOW)
    (terminal,) = RunEvent.objects.filter(run=run)
    assert terminal.seq == 5
    assert terminal.data == {"cost_usd": "0.0123", "output": ""}


@pytest.mark.parametrize(
    "days",
    [
        {"ephemeral": 7, "standard": 30},  # a tier without a window
        {"ephemeral": 0, "standard": 30, "extended": 365},
        {"ephemeral": "7", "standard": 30, "extended": 365},
        {"ephemeral": 7.5, "standard": 30, "extended": 365},
    ],
)
def test_a_bad_window_setting_is_improperly_configured(workspace, settings, days):
    settings.SVERM_RETENTION_DAYS = days
    with pytest.raises(ImproperlyConfigured, match="SVERM_RETENTION_DAYS"):
        runs_prune_expired(now=NOW)


def test_call_checkpoints_go_with_the_events_and_never_those_of_a_live_run(workspace):
    from decimal import Decimal

    from swarms.models import RunStep

    def step(run, key):
        return RunStep.objects.create(
            run=run, key=key, attempt=1, agent_id="manager", model="gpt-4o-mini",
            status="settled", reserved_usd=Decimal("0.01"), cost_usd=Decimal("0.004"),
            output="the call's whole text",
        )  # fmt: skip

    old = finished_run(workspace, ago=31 * DAY)
    recent = finished_run(workspace, ago=DAY)
    running = active_run(workspace, RunStatus.RUNNING, ago=400 * DAY)
    for run in (old, recent, running):
        step(run, "a-1")
    billing = billing_snapshot()

    assert runs_prune_expired(now=NOW, dry_run=True).steps_deleted == 1
    report = runs_prune_expired(now=NOW)

    assert report.steps_deleted == 1
    assert not RunStep.objects.filter(run=old).exists()
    assert RunStep.objects.filter(run=recent).count() == 1
    assert RunStep.objects.filter(run=running).count() == 1
    assert billing_snapshot() == billing  # the ledger keeps what the calls cost
    assert runs_prune_expired(now=NOW).steps_deleted == 0

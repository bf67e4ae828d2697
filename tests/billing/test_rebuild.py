"""`manage.py usage_rebuild`: recomputes the rollup from the ledger (tokens, cost) and the runs
(counts), prints every drifted row, fixes it unless --dry-run, and is a no-op when clean."""

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from billing.models import MonthlyUsage
from billing.periods import current_month
from swarms import services
from swarms.models import Run
from tests.billing.conftest import record, started, utc
from tests.factories import create_run, make_swarm

pytestmark = pytest.mark.usefixtures("not_executing")

FIELDS = ("runs", "tokens_in", "tokens_out", "cost_usd")


def rebuild(capsys, *args: str) -> list[str]:
    call_command("usage_rebuild", *args)
    return capsys.readouterr().out.strip().splitlines()


def rollup() -> dict[tuple, tuple]:
    return {
        (row.workspace_id, row.month, row.swarm_type): tuple(getattr(row, f) for f in FIELDS)
        for row in MonthlyUsage.objects.all()
    }


def rollup_row(workspace, swarm_type: str, month=None) -> MonthlyUsage:
    return MonthlyUsage.objects.get(
        workspace=workspace, month=month or current_month(), swarm_type=swarm_type
    )


@pytest.fixture
def usage(workspace, other_workspace, user):
    """Runs and their calls, written the way the service writes them: a clean rollup."""
    research = create_run(workspace, created_by=user)
    swarm = make_swarm(workspace, user)
    custom = create_run(workspace, swarm=swarm, created_by=user)
    elsewhere = create_run(other_workspace)
    record(workspace, "1.25", run_id=research.pk, tokens=(1000, 100))
    record(workspace, "0.50", run_id=research.pk, tokens=(500, 50))
    record(workspace, "0.0000001", run_id=custom.pk, swarm_id=swarm.pk, swarm_type="custom",
           tokens=(10, 1))  # fmt: skip
    record(other_workspace, "2", run_id=elsewhere.pk)
    return research, custom, elsewhere


def test_a_clean_rollup_is_a_no_op(capsys, usage):
    before = rollup()
    assert len(before) == 3
    assert rebuild(capsys) == ["no drift"]
    assert rollup() == before


def test_drift_is_reported_row_by_row_and_fixed(capsys, usage, workspace):
    month = f"{current_month():%Y-%m}"
    clean = rollup()
    MonthlyUsage.objects.filter(pk=rollup_row(workspace, "research-swarm-v1").pk).update(
        cost_usd=F("cost_usd") + Decimal("0.5"), tokens_in=F("tokens_in") - 1
    )
    MonthlyUsage.objects.filter(pk=rollup_row(workspace, "custom").pk).update(runs=7)
    ghost = MonthlyUsage.objects.create(
        workspace=workspace, month=current_month(), swarm_type="ghost", cost_usd=Decimal(3)
    )
    assert rollup() != clean

    lines = rebuild(capsys)
    row = f"{workspace.pk} {month}"
    assert lines == [  # ordered by workspace, month, swarm type
        f"{row} custom: runs 7 -> 1",
        f"{row} ghost: cost_usd 3 -> 0",
        f"{row} research-swarm-v1: tokens_in 1499 -> 1500, cost_usd 2.25 -> 1.75",
        "3 drifted rows fixed.",
    ]
    assert rollup() == clean
    assert not MonthlyUsage.objects.filter(pk=ghost.pk).exists()
    assert rebuild(capsys) == ["no drift"]


def test_a_missing_row_is_recreated(capsys, usage, workspace):
    clean = rollup()
    rollup_row(workspace, "custom").delete()
    lines = rebuild(capsys)
    assert lines[0] == (
        f"{workspace.pk} {current_month():%Y-%m} custom: runs 0 -> 1, tokens_in 0 -> 10, "
        "tokens_out 0 -> 1, cost_usd 0 -> 0.0000001"
    )
    assert rollup() == clean


def test_a_dry_run_reports_without_fixing(capsys, usage, workspace):
    MonthlyUsage.objects.filter(pk=rollup_row(workspace, "custom").pk).update(tokens_out=99)
    drifted = rollup()
    lines = rebuild(capsys, "--dry-run")
    assert lines == [
        f"{workspace.pk} {current_month():%Y-%m} custom: tokens_out 99 -> 1",
        "1 drifted row; dry run, nothing changed.",
    ]
    assert rollup() == drifted
    assert len(rebuild(capsys)) == 2
    assert rebuild(capsys, "--dry-run") == ["no drift"]


def test_workspace_and_month_narrow_what_is_checked_and_fixed(
    capsys, usage, workspace, other_workspace
):
    MonthlyUsage.objects.filter(workspace=other_workspace).update(runs=5)
    MonthlyUsage.objects.filter(pk=rollup_row(workspace, "custom").pk).update(runs=5)
    assert rebuild(capsys, "--workspace", workspace.pk, "--month", "2020-01") == ["no drift"]
    lines = rebuild(capsys, "--workspace", workspace.pk)
    assert lines[0].startswith(f"{workspace.pk} ") and len(lines) == 2
    assert rollup_row(workspace, "custom").runs == 1
    assert MonthlyUsage.objects.get(workspace=other_workspace).runs == 5
    lines = rebuild(capsys, "--month", f"{current_month():%Y-%m}")
    assert lines[0].startswith(f"{other_workspace.pk} ") and len(lines) == 2
    assert MonthlyUsage.objects.get(workspace=other_workspace).runs == 1


def test_months_are_utc_months(capsys, workspace):
    # runs no longer in the run table (as if purged) count in the month of their first call
    for cost, at in (("1", utc(2026, 1, 31, 23, 59, 59, 999999)), ("2", utc(2026, 2, 1))):
        record(workspace, cost, at=at)
        started(workspace, "research-swarm-v1", at)
    assert rebuild(capsys) == ["no drift"]
    january = rollup_row(workspace, "research-swarm-v1", month=utc(2026, 1, 1).date())
    january.delete()
    assert rebuild(capsys, "--month", "2026-02") == ["no drift"]
    lines = rebuild(capsys, "--month", "2026-01")
    assert lines[0] == (
        f"{workspace.pk} 2026-01 research-swarm-v1: runs 0 -> 1, tokens_in 0 -> 100, "
        "tokens_out 0 -> 50, cost_usd 0 -> 1, shown_cost_usd 0 -> 1"
    )


def test_runs_purged_with_their_swarm_still_count_from_the_ledger(capsys, workspace, user):
    swarm = make_swarm(workspace, user)
    run = create_run(workspace, swarm=swarm, created_by=user)
    record(workspace, "0.3", run_id=run.pk, swarm_id=swarm.pk, swarm_type="custom",
           at=timezone.now())  # fmt: skip
    services.swarm_soft_delete(swarm=swarm)
    services.swarm_purge(swarm=swarm)
    assert not Run.objects.filter(pk=run.pk).exists()
    assert rebuild(capsys) == ["no drift"]
    assert rollup_row(workspace, "custom").runs == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--month", "2026-13"], "--month"), (["--workspace", "wsp_nope"], "--workspace")],
)
def test_bad_arguments_are_refused(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("usage_rebuild", *args)

"""Writes for billing: the ledger and its rollup move together, in one transaction."""

from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F

from billing.models import MonthlyUsage, UsageRecord


def month_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date().replace(day=1)


def _rollup_add(*, workspace_id: str, month: date, swarm_type: str, **increments) -> None:
    changes = {name: F(name) + value for name, value in increments.items()}
    updated = MonthlyUsage.objects.filter(
        workspace_id=workspace_id, month=month, swarm_type=swarm_type
    ).update(**changes)
    if updated:
        return
    try:
        with transaction.atomic():
            MonthlyUsage.objects.create(
                workspace_id=workspace_id, month=month, swarm_type=swarm_type, **increments
            )
    except IntegrityError:  # a concurrent first writer won; add on top of its row
        MonthlyUsage.objects.filter(
            workspace_id=workspace_id, month=month, swarm_type=swarm_type
        ).update(**changes)


@transaction.atomic
def usage_record_add(
    *,
    workspace_id: str,
    run_id: str,
    swarm_id: str,
    swarm_type: str,
    agent_id: str,
    model: str,
    provider: str,
    tokens_in: int,
    tokens_out: int,
    cost_usd: Decimal,
) -> UsageRecord:
    record = UsageRecord.objects.create(
        workspace_id=workspace_id,
        run_id=run_id,
        swarm_id=swarm_id,
        swarm_type=swarm_type,
        agent_id=agent_id,
        model=model,
        provider=provider,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
    )
    _rollup_add(
        workspace_id=workspace_id,
        month=month_of(record.created_at),
        swarm_type=swarm_type,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
    )
    return record


def usage_run_started(*, workspace_id: str, swarm_type: str, at: datetime) -> None:
    """Counts a run in its month's rollup; called in the transaction that creates the run."""
    _rollup_add(workspace_id=workspace_id, month=month_of(at), swarm_type=swarm_type, runs=1)

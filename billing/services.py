"""Writes for billing: the ledger and its rollup move together, in one transaction; a rebuild
recomputes the rollup from the ledger (and the runs) and repairs any drift."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, DateField, Exists, F, Min, OuterRef, QuerySet, Sum
from django.db.models.functions import TruncMonth

from billing.models import MonthlyUsage, UsageRecord
from billing.periods import month_of, month_span
from sverm.money import money, money_added, money_exact


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
    created_at: datetime | None = None,
    user_id: str = "",
    api_key_id: str = "",
) -> UsageRecord:
    """One LLM call into the ledger and its month's rollup, together. `created_at` (default
    now) is for imports and backfills; the rollup month follows it, in UTC. `user_id` and
    `api_key_id` are the run's (who started it)."""
    record = UsageRecord(
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
        user_id=user_id,
        api_key_id=api_key_id,
        **({"created_at": created_at} if created_at is not None else {}),
    )
    (record,) = usage_records_add([record])
    return record


# A run's part of a month's rollup row: its calls of one swarm type in that month. In practice
# a run has one workspace and swarm type; keying on all of them keeps the rollup and the
# rebuild in step whatever the rows say.
RunPart = tuple[str, str, str, date]  # workspace id, run id, swarm type, month


def _run_parts_so_far(parts: set[RunPart]) -> dict[RunPart, Decimal]:
    """What each run part had cost before this write (the ledger's rows of the run, type and
    month; one query per part, a batch of a run's calls has one), served by the run_id index."""
    so_far = {}
    for workspace_id, run_id, swarm_type, month in parts:
        start, end = month_span(month)
        so_far[(workspace_id, run_id, swarm_type, month)] = UsageRecord.objects.filter(
            run_id=run_id, workspace_id=workspace_id, swarm_type=swarm_type,
            created_at__gte=start, created_at__lt=end,
        ).aggregate(cost=Sum("cost_usd"))["cost"] or Decimal(0)  # fmt: skip
    return so_far


@transaction.atomic(savepoint=False)
def usage_records_add(records: list[UsageRecord]) -> list[UsageRecord]:
    """LLM calls into the ledger (one INSERT) and their months' rollups (one update per
    workspace, month and swarm type), together: in the caller's transaction when there is one
    (no savepoint: a failure here fails the caller's whole write). The rollup's shown cost moves
    by what each run's shown cost moves (sverm/money.py, rule 2), from what the run had cost
    in the month before: the attempt writing a run holds its row locked, so that is stable
    (two other writers adding to one run at once could misplace a micro-dollar there, which
    `usage_rebuild` reports and repairs)."""
    if not records:
        return []
    so_far = _run_parts_so_far(
        {(r.workspace_id, r.run_id, r.swarm_type, month_of(r.created_at)) for r in records}
    )
    created = UsageRecord.objects.bulk_create(records)
    totals: dict[tuple[str, date, str], dict[str, int | Decimal]] = defaultdict(
        lambda: {"tokens_in": 0, "tokens_out": 0, "cost_usd": Decimal(0),
                 "shown_cost_usd": Decimal(0)}
    )  # fmt: skip
    for record in created:
        month = month_of(record.created_at)
        total = totals[(record.workspace_id, month, record.swarm_type)]
        total["tokens_in"] += record.tokens_in
        total["tokens_out"] += record.tokens_out
        total["cost_usd"] += record.cost_usd
        part = (record.workspace_id, record.run_id, record.swarm_type, month)
        before = so_far[part]
        so_far[part] = before + record.cost_usd
        total["shown_cost_usd"] += money_added(before, so_far[part])
    for (workspace_id, month, swarm_type), increments in totals.items():
        _rollup_add(workspace_id=workspace_id, month=month, swarm_type=swarm_type, **increments)
    return created


def usage_records_add_sql(
    *,
    calls: str,
    workspace_id: str,
    run_id: str,
    swarm_id: str,
    swarm_type: str,
    at: datetime,
    user_id: str = "",
    api_key_id: str = "",
) -> tuple[str, dict[str, Any]]:
    """`usage_records_add` as data-modifying CTEs, for a caller that writes its own rows in the
    same PostgreSQL statement (the run recorder: a call settles with its ledger row in one
    round trip). `calls` names one of the caller's CTEs, returning a row per LLM call with
    columns agent_id, model, provider, tokens_in, tokens_out, cost_usd; each becomes a ledger
    row created at `at`, and the month's rollup moves by what they add (no rollup row is
    written when there are none), its shown cost by what the run's shown cost in the month
    moves (`trunc(_, 6)` is `money`: costs are never negative). Returns the CTEs' text (to go
    after the caller's, following `WITH`) and their parameters, named `usage_*` so they merge
    into the caller's."""
    if not calls.isidentifier():
        raise ValueError(f"not a CTE name: {calls!r}")
    # Only the name of the caller's CTE goes into the text (an identifier, checked above).
    # `usage_before` reads the ledger as it was before this statement (every CTE does).
    sql = f"""usage_rows AS (INSERT INTO billing_usagerecord (workspace_id, run_id,
    swarm_id, swarm_type, agent_id, model, provider, tokens_in, tokens_out, cost_usd, created_at,
    user_id, api_key_id)
  SELECT %(usage_workspace)s, %(usage_run)s, %(usage_swarm)s, %(usage_swarm_type)s, agent_id,
    model, provider, tokens_in, tokens_out, cost_usd, %(usage_at)s, %(usage_user)s,
    %(usage_api_key)s FROM {calls}
  RETURNING tokens_in, tokens_out, cost_usd),
usage_before AS (SELECT coalesce(sum(cost_usd), 0) AS cost FROM billing_usagerecord
  WHERE run_id = %(usage_run)s AND workspace_id = %(usage_workspace)s
    AND swarm_type = %(usage_swarm_type)s
    AND created_at >= %(usage_from)s AND created_at < %(usage_until)s),
usage_rollup AS (INSERT INTO billing_monthlyusage AS m (workspace_id, month,
    swarm_type, runs, tokens_in, tokens_out, cost_usd, shown_cost_usd)
  SELECT %(usage_workspace)s, %(usage_month)s, %(usage_swarm_type)s, 0, sum(tokens_in),
    sum(tokens_out), sum(cost_usd),
    trunc(min(b.cost) + sum(cost_usd), 6) - trunc(min(b.cost), 6)
  FROM usage_rows CROSS JOIN usage_before AS b HAVING count(*) > 0
  ON CONFLICT (workspace_id, month, swarm_type) DO UPDATE SET
    tokens_in = m.tokens_in + excluded.tokens_in, tokens_out = m.tokens_out + excluded.tokens_out,
    cost_usd = m.cost_usd + excluded.cost_usd,
    shown_cost_usd = m.shown_cost_usd + excluded.shown_cost_usd)"""  # noqa: S608
    month = month_of(at)
    month_start, month_end = month_span(month)
    params = {
        "usage_workspace": workspace_id, "usage_run": run_id, "usage_swarm": swarm_id,
        "usage_swarm_type": swarm_type, "usage_at": at, "usage_month": month,
        "usage_from": month_start, "usage_until": month_end, "usage_user": user_id,
        "usage_api_key": api_key_id,
    }  # fmt: skip
    return sql, params


def usage_run_started(*, workspace_id: str, swarm_type: str, at: datetime) -> None:
    """Counts a run in its month's rollup; called in the transaction that creates the run."""
    _rollup_add(workspace_id=workspace_id, month=month_of(at), swarm_type=swarm_type, runs=1)


# ---------------------------------------------------------------------------------------------
# Rebuilding the rollup
# ---------------------------------------------------------------------------------------------
ROLLUP_FIELDS = ("runs", "tokens_in", "tokens_out", "cost_usd", "shown_cost_usd")
RollupKey = tuple[str, date, str]  # workspace id, month, swarm type


def _zero() -> dict[str, int | Decimal]:
    return {"runs": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": Decimal(0),
            "shown_cost_usd": Decimal(0)}  # fmt: skip


def _text(value: int | Decimal) -> str:
    return money_exact(value) if isinstance(value, Decimal) else str(value)


@dataclass(frozen=True)
class RollupDrift:
    """A rollup row whose stored figures differ from what the ledger and the runs say."""

    workspace_id: str
    month: date
    swarm_type: str
    stored: dict[str, int | Decimal]
    actual: dict[str, int | Decimal]

    @property
    def key(self) -> RollupKey:
        return (self.workspace_id, self.month, self.swarm_type)

    @property
    def fields(self) -> list[str]:
        return [name for name in ROLLUP_FIELDS if self.stored[name] != self.actual[name]]

    def __str__(self) -> str:
        changes = ", ".join(
            f"{name} {_text(self.stored[name])} -> {_text(self.actual[name])}"
            for name in self.fields
        )
        return f"{self.workspace_id} {self.month:%Y-%m} {self.swarm_type}: {changes}"


def _scoped(queryset: QuerySet, *, workspace_id: str | None, month: date | None) -> QuerySet:
    if workspace_id is not None:
        queryset = queryset.filter(workspace_id=workspace_id)
    if month is not None:
        start, end = month_span(month)
        queryset = queryset.filter(created_at__gte=start, created_at__lt=end)
    return queryset.order_by()


def _actual_rollups(
    *, runs: QuerySet, workspace_id: str | None, month: date | None
) -> dict[RollupKey, dict[str, int | Decimal]]:
    """What the rollup should hold: tokens and cost of the ledger rows created in each month
    (and its runs' parts of that cost, as shown); runs counted from the runs created in it.
    Runs purged with their swarm are gone from the run table but not from the ledger: they
    count in the month of their first LLM call."""
    in_month = TruncMonth("created_at", tzinfo=UTC, output_field=DateField())
    actual: dict[RollupKey, dict[str, int | Decimal]] = defaultdict(_zero)
    ledger = (
        _scoped(UsageRecord.objects.all(), workspace_id=workspace_id, month=month)
        .annotate(in_month=in_month)
        .values("workspace_id", "in_month", "swarm_type")
        .annotate(sum_in=Sum("tokens_in"), sum_out=Sum("tokens_out"), sum_cost=Sum("cost_usd"))
    )
    for row in ledger:
        figures = actual[(row["workspace_id"], row["in_month"], row["swarm_type"])]
        figures.update(tokens_in=row["sum_in"], tokens_out=row["sum_out"], cost_usd=row["sum_cost"])
    by_run = (
        _scoped(UsageRecord.objects.all(), workspace_id=workspace_id, month=month)
        .annotate(in_month=in_month)
        .values("workspace_id", "in_month", "swarm_type", "run_id")
        .annotate(sum_cost=Sum("cost_usd"))
    )
    for row in by_run.iterator():  # each run's part shown as it is (sverm/money.py, rule 2)
        key = (row["workspace_id"], row["in_month"], row["swarm_type"])
        actual[key]["shown_cost_usd"] += money(row["sum_cost"])
    started = (
        _scoped(runs, workspace_id=workspace_id, month=month)
        .annotate(in_month=in_month)
        .values("workspace_id", "in_month", "swarm_type")
        .annotate(count=Count("id"))
    )
    for row in started:
        actual[(row["workspace_id"], row["in_month"], row["swarm_type"])]["runs"] += row["count"]
    purged = (
        _scoped(UsageRecord.objects.all(), workspace_id=workspace_id, month=None)
        .filter(~Exists(runs.filter(pk=OuterRef("run_id"))))
        .values("run_id")
        .annotate(first=Min("created_at"), ws=Min("workspace_id"), kind=Min("swarm_type"))
    )
    if month is not None:
        start, end = month_span(month)
        purged = purged.filter(first__gte=start, first__lt=end)
    for row in purged:
        actual[(row["ws"], month_of(row["first"]), row["kind"])]["runs"] += 1
    return actual


def usage_rollup_rebuild(
    *,
    runs: QuerySet,
    workspace_id: str | None = None,
    month: date | None = None,
    dry_run: bool = False,
) -> list[RollupDrift]:
    """Recompute the rollup (of one workspace and/or month, else all of it) and return every
    row that drifted, fixed unless `dry_run`. A fix locks the stored rows before reading the
    ledger, so a writer committing meanwhile adds its increment on top of the repaired row.

    `runs` is every run there is, unfiltered (a queryset of the run model: `id`,
    `workspace_id`, `swarm_type`, `created_at`), which the rollup counts. The caller passes
    it because runs are swarms' and billing depends on nothing of swarms (swarms depends on
    billing, to record what runs spend): a queryset, rather than counts, keeps the rebuild's
    queries as they were, its purged-run check one NOT EXISTS over the ledger. So the
    `usage_rebuild` command lives in swarms, the app that knows both."""
    with transaction.atomic():
        stored_rows = MonthlyUsage.objects.order_by()
        if workspace_id is not None:
            stored_rows = stored_rows.filter(workspace_id=workspace_id)
        if month is not None:
            stored_rows = stored_rows.filter(month=month)
        if not dry_run:
            stored_rows = stored_rows.select_for_update()
        stored = {(row.workspace_id, row.month, row.swarm_type): row for row in stored_rows}
        actual = _actual_rollups(runs=runs, workspace_id=workspace_id, month=month)
        drifts = []
        for key in sorted(set(stored) | set(actual)):
            row = stored.get(key)
            figures = {name: getattr(row, name) for name in ROLLUP_FIELDS} if row else _zero()
            drift = RollupDrift(*key, stored=figures, actual=actual.get(key, _zero()))
            if drift.fields:
                drifts.append(drift)
        if not dry_run:
            for drift in drifts:
                _rollup_set(stored.get(drift.key), drift)
    return drifts


def _rollup_set(row: MonthlyUsage | None, drift: RollupDrift) -> None:
    if all(not value for value in drift.actual.values()):
        if row is not None:
            row.delete()  # nothing ran and nothing was spent: no row, as if never written
        return
    if row is None:
        MonthlyUsage.objects.create(
            workspace_id=drift.workspace_id, month=drift.month, swarm_type=drift.swarm_type,
            **drift.actual,
        )  # fmt: skip
        return
    MonthlyUsage.objects.filter(pk=row.pk).update(**drift.actual)

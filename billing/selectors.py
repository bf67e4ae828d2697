"""Reads for billing: model prices and providers, and usage as `/v1/usage`, `/api/usage`
and the admin report show it. Each usage read is a fixed number of queries, whatever the
ledger's size: `/v1` reads only the monthly rollup, `/api` one GROUP BY over the ledger."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import ModelPrice, MonthlyUsage, UsageRecord
from billing.periods import month_after, month_span
from sverm.money import money_shares


def model_prices() -> dict[str, tuple[Decimal, Decimal]]:
    """Every priced model's (input, output) USD per million tokens, keyed by model name (one
    query). Billing's own plain value: swarms makes the engine's prices of it
    (`swarms.providers.price_map`), as billing depends on nothing of swarms."""
    rows = ModelPrice.objects.values_list("model", "input_per_million", "output_per_million")
    return {model: (price_in, price_out) for model, price_in, price_out in rows}


def model_providers() -> dict[str, str]:
    """Model name -> provider name, as the admin configured it."""
    return dict(ModelPrice.objects.values_list("model", "provider"))


# ---------------------------------------------------------------------------------------------
# One month of one workspace, from the rollup (`/v1/usage`, the admin report)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwarmTypeUsage:
    swarm_type: str
    count: int
    tokens_in: int
    tokens_out: int
    total_usd: Decimal


@dataclass(frozen=True)
class MonthUsage:
    month: date
    total_usd: Decimal
    total_swarms: int
    total_tokens: int
    types: list[SwarmTypeUsage]

    @property
    def by_swarm_type(self) -> dict[str, SwarmTypeUsage]:
        return {usage.swarm_type: usage for usage in self.types}


def usage_month(*, workspace_id: str, month: date) -> MonthUsage:
    """A workspace's month from its rollup rows (one query): runs started in the month, the
    tokens and cost of the LLM calls made in it, per swarm type, busiest type first."""
    rows = list(
        MonthlyUsage.objects.filter(workspace_id=workspace_id, month=month)
        .order_by("-runs", "swarm_type")
        .values_list("swarm_type", "runs", "tokens_in", "tokens_out", "cost_usd")
    )
    total_usd, shown = money_shares([Decimal(row[4]) for row in rows])
    types = [
        SwarmTypeUsage(swarm_type, runs, tokens_in, tokens_out, shown[index])
        for index, (swarm_type, runs, tokens_in, tokens_out, _cost) in enumerate(rows)
    ]
    return MonthUsage(
        month=month,
        total_usd=total_usd,
        total_swarms=sum(usage.count for usage in types),
        total_tokens=sum(usage.tokens_in + usage.tokens_out for usage in types),
        types=types,
    )


# ---------------------------------------------------------------------------------------------
# Any date range, grouped, from the ledger (`/api/usage`, the admin chart)
# ---------------------------------------------------------------------------------------------
GROUPINGS = ("day", "model", "swarm", "template")
# A run belongs to exactly one swarm and one template, so its count adds up across these rows;
# by day or model one run can fall in several rows, so rows carry no run count there.
RUN_GROUPINGS = ("swarm", "template")
_GROUP_KEYS = {
    "day": TruncDate("created_at", tzinfo=UTC),
    "model": F("model"),
    "swarm": F("swarm_id"),
    "template": F("swarm_type"),
}


@dataclass(frozen=True)
class UsageGroup:
    key: str | None
    cost_usd: Decimal
    tokens_in: int
    tokens_out: int
    calls: int
    runs: int | None = None


@dataclass(frozen=True)
class UsageBreakdown:
    start: datetime
    end: datetime
    group_by: str
    data: list[UsageGroup]
    totals: UsageGroup


def _group_key(group_by: str, value) -> str | None:
    if group_by == "day":
        return value.isoformat()
    if group_by == "swarm":
        return value or None  # runs of a template or inline definition belong to no swarm
    return value


def usage_breakdown(
    *, records: QuerySet[UsageRecord], start: datetime, end: datetime, group_by: str
) -> UsageBreakdown:
    """The ledger rows of `records` (already scoped to the caller) created in [start, end),
    grouped by UTC day, model, swarm or template: two aggregate queries (the groups, and the
    totals with the distinct runs), served by the (workspace, created_at) index."""
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {GROUPINGS}")
    in_range = records.filter(created_at__gte=start, created_at__lt=end).order_by()
    sums = {
        "cost": Sum("cost_usd"),
        "tokens_in": Sum("tokens_in"),
        "tokens_out": Sum("tokens_out"),
        "calls": Count("id"),
        "runs": Count("run_id", distinct=True),
    }
    ordering = ["key"] if group_by == "day" else ["-cost", "key"]
    rows = list(
        in_range.annotate(key=_GROUP_KEYS[group_by]).values("key").annotate(**sums)
        .order_by(*ordering)
    )  # fmt: skip
    totals = in_range.aggregate(**sums)
    total_usd, shown = money_shares([Decimal(row["cost"]) for row in rows])
    data = [
        UsageGroup(
            key=_group_key(group_by, row["key"]),
            cost_usd=shown[index],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            calls=row["calls"],
            runs=row["runs"] if group_by in RUN_GROUPINGS else None,
        )
        for index, row in enumerate(rows)
    ]
    return UsageBreakdown(
        start=start,
        end=end,
        group_by=group_by,
        data=data,
        totals=UsageGroup(
            key=None,
            cost_usd=total_usd,
            tokens_in=totals["tokens_in"] or 0,
            tokens_out=totals["tokens_out"] or 0,
            calls=totals["calls"],
            runs=totals["runs"],
        ),
    )


@dataclass(frozen=True)
class DayCost:
    day: date
    cost_usd: Decimal


def usage_daily_cost(*, workspace_id: str, month: date) -> list[DayCost]:
    """Every UTC day of the month with its cost from the ledger (zero on quiet days), for the
    admin chart."""
    start, end = month_span(month)
    breakdown = usage_breakdown(
        records=UsageRecord.objects.in_workspace(workspace_id), start=start, end=end,
        group_by="day",
    )  # fmt: skip
    costs = {group.key: group.cost_usd for group in breakdown.data}
    days = (month_after(month) - month).days
    return [
        DayCost(day, costs.get(day.isoformat(), Decimal(0)))
        for day in (month + timedelta(days=offset) for offset in range(days))
    ]

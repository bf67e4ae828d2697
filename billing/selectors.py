"""Reads for billing: model prices and providers, and usage as `/v1/usage`, `/api/usage`
and the admin report show it. Each usage read is a fixed number of queries, whatever the
ledger's size: `/v1` reads only the monthly rollup, `/api` one GROUP BY over the ledger (and
one more for the names of keys or users it is grouped by). Money follows sverm/money.py's
rule: what totals runs is the sum of the runs' shown costs."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import ApiKey, User
from billing.models import ModelPrice, MonthlyUsage, UsageRecord
from billing.periods import month_after, month_span
from sverm.money import money_by_run


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
    tokens and cost of the LLM calls made in it, per swarm type, busiest type first. A type's
    cost is the sum of its runs' costs in the month as shown (each rounded down to 6 places),
    the month's the sum of its types'."""
    rows = list(
        MonthlyUsage.objects.filter(workspace_id=workspace_id, month=month)
        .order_by("-runs", "swarm_type")
        .values_list("swarm_type", "runs", "tokens_in", "tokens_out", "shown_cost_usd")
    )
    types = [
        SwarmTypeUsage(swarm_type, runs, tokens_in, tokens_out, Decimal(shown))
        for swarm_type, runs, tokens_in, tokens_out, shown in rows
    ]
    return MonthUsage(
        month=month,
        total_usd=sum((usage.total_usd for usage in types), Decimal(0)),
        total_swarms=sum(usage.count for usage in types),
        total_tokens=sum(usage.tokens_in + usage.tokens_out for usage in types),
        types=types,
    )


# ---------------------------------------------------------------------------------------------
# Any date range, grouped, from the ledger (`/api/usage`, the admin chart and report)
# ---------------------------------------------------------------------------------------------
GROUPINGS = ("day", "model", "swarm", "template", "api_key", "user")
# A run belongs to exactly one swarm, template, key (or none) and user (or none), so its count
# adds up across these rows; by day or model one run can fall in several rows, so rows carry
# no run count there.
RUN_GROUPINGS = ("swarm", "template", "api_key", "user")
_GROUP_KEYS = {
    "day": TruncDate("created_at", tzinfo=UTC),
    "model": F("model"),
    "swarm": F("swarm_id"),
    "template": F("swarm_type"),
    "api_key": F("api_key_id"),
    "user": F("user_id"),
}
# What a row grouped by key or user is labelled with, for a human reading it.
LABELS = {"api_key": ("name", "prefix"), "user": ("email", "name")}


@dataclass(frozen=True)
class UsageGroup:
    key: str | None
    cost_usd: Decimal
    tokens_in: int
    tokens_out: int
    calls: int
    runs: int | None = None
    # Grouped by key: the key's `name` and `prefix`; by user: their `email` and `name` (None
    # when the key or user is gone, or for the row of runs without one). Empty otherwise.
    labels: dict[str, str | None] = field(default_factory=dict)


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
    if group_by in ("swarm", "api_key", "user"):
        # Runs of a template or inline definition belong to no swarm; runs started without a
        # key, or calls recorded before the ledger kept who started them, have none.
        return value or None
    return value


def _labels(group_by: str, keys: list[str | None]) -> dict[str, dict[str, str | None]]:
    """Each key's or user's labels (one query), by id; ids from the ledger need no scoping:
    a ledger row's key is of the row's workspace, its user is who started one of its runs."""
    ids = [key for key in keys if key is not None]
    if group_by == "api_key":
        found = ApiKey.objects.filter(pk__in=ids).values_list("pk", "name", "prefix")
        return {pk: {"name": name, "prefix": prefix} for pk, name, prefix in found}
    found = User.objects.filter(pk__in=ids).values_list("pk", "email", "name")
    return {pk: {"email": email, "name": name or None} for pk, email, name in found}


def usage_breakdown(
    *, records: QuerySet[UsageRecord], start: datetime, end: datetime, group_by: str
) -> UsageBreakdown:
    """The ledger rows of `records` (already scoped to the caller) created in [start, end),
    grouped by UTC day, model, swarm, template, API key or user: one aggregate query (by group
    and run), served by the (workspace, created_at) index, and for keys and users one more for
    their names.

    Money by sverm/money.py's rule: each run's cost in the range is shown rounded down to 6
    places; a row is the sum of its runs' shown costs (by day or model, of the pieces a run's
    shown cost is split into), the total the sum of the rows. So the total is the same whatever
    the grouping, and over a month it is what `/v1/usage` reports."""
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {GROUPINGS}")
    in_range = records.filter(created_at__gte=start, created_at__lt=end).order_by()
    parts = list(
        in_range.annotate(key=_GROUP_KEYS[group_by])
        .values("key", "workspace_id", "run_id", "swarm_type")
        .annotate(cost=Sum("cost_usd"), tokens_in=Sum("tokens_in"),
                  tokens_out=Sum("tokens_out"), calls=Count("id"))
    )  # fmt: skip
    total_usd, shown = money_by_run(
        # a run's part, keyed as the rollup keys it (services.RunPart, less the month)
        ((part["workspace_id"], part["run_id"], part["swarm_type"]), part["key"], part["cost"])
        for part in parts
    )
    sums: dict = {}
    for part in parts:
        row = sums.setdefault(part["key"], {"tokens_in": 0, "tokens_out": 0, "calls": 0,
                                            "runs": set()})  # fmt: skip
        row["tokens_in"] += part["tokens_in"]
        row["tokens_out"] += part["tokens_out"]
        row["calls"] += part["calls"]
        row["runs"].add(part["run_id"])
    keys = {raw: _group_key(group_by, raw) for raw in sums}
    labels = _labels(group_by, list(keys.values())) if group_by in LABELS else {}
    empty = dict.fromkeys(LABELS.get(group_by, ()))
    data = [
        UsageGroup(
            key=keys[raw],
            cost_usd=shown[raw],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            calls=row["calls"],
            runs=len(row["runs"]) if group_by in RUN_GROUPINGS else None,
            labels=labels.get(keys[raw], empty) if group_by in LABELS else {},
        )
        for raw, row in sums.items()
    ]
    if group_by == "day":
        data.sort(key=lambda group: group.key)
    else:  # costliest first; ties by key, the row without one last
        data.sort(key=lambda group: (-group.cost_usd, group.key is None, group.key or ""))
    return UsageBreakdown(
        start=start,
        end=end,
        group_by=group_by,
        data=data,
        totals=UsageGroup(
            key=None,
            cost_usd=total_usd,
            tokens_in=sum(group.tokens_in for group in data),
            tokens_out=sum(group.tokens_out for group in data),
            calls=sum(group.calls for group in data),
            runs=len({part["run_id"] for part in parts}),
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

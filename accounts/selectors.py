"""Reads for accounts: memberships and roles, API keys, workspace plans and what each plan
allows."""

from django.core.cache import cache
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import ApiKey, Membership, Plan, PlanLimits, User, Workspace

# Plan limits are read on every authenticated request: they are cached this long (one cache
# hit per request), and forgotten when changed through the service or the admin.
PLAN_LIMITS_CACHE_SECONDS = 30


def user_workspace_roles(*, user_id: str) -> dict[str, str]:
    """Workspace id -> role, oldest membership first (the /v1 default workspace)."""
    memberships = Membership.objects.filter(user_id=user_id).order_by("created_at", "id")
    return dict(memberships.values_list("workspace_id", "role"))


def user_get_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email.strip()).first()


def api_keys_for_listing(queryset: QuerySet) -> QuerySet:
    """API keys annotated with their `status` now (for filtering) and `replacement_id`, the key
    each was rotated to (one subquery, so a page of keys costs no query per row)."""
    replacement = ApiKey.objects.filter(replaces=OuterRef("pk")).order_by("created_at", "id")
    return queryset.with_status().annotate(replacement_id=Subquery(replacement.values("pk")[:1]))


def workspace_plan(*, workspace_id: str) -> str:
    """The workspace's plan slug; free for a workspace that does not exist."""
    plan = Workspace.objects.filter(pk=workspace_id).values_list("plan", flat=True).first()
    return plan or Plan.FREE


def _plan_limits_cache_key(plan: str) -> str:
    return f"sverm:plan-limits:v2:{plan}"


def plan_limits(*, plan: str) -> PlanLimits:
    """What `plan` allows (unsaved instance): its row, cached briefly, else seed 002's default."""
    key = _plan_limits_cache_key(plan)
    cached = cache.get(key)
    if cached is None:
        row = PlanLimits.objects.filter(pk=plan).first() or PlanLimits.default_for(plan)
        cached = (row.requests_per_minute, row.concurrent_runs, row.runs_per_day,
                  row.batches_per_hour, row.audit_retention_days)  # fmt: skip
        cache.set(key, cached, PLAN_LIMITS_CACHE_SECONDS)
    requests, concurrent, daily, batches, audit_days = cached
    return PlanLimits(
        plan=plan, requests_per_minute=requests, concurrent_runs=concurrent, runs_per_day=daily,
        batches_per_hour=batches, audit_retention_days=audit_days,
    )  # fmt: skip


def plan_limits_forget(*, plan: str) -> None:
    """Drop the cached limits of `plan` now and again once the transaction commits, so a reader
    that cached the old row between the two does not keep it for the cache's lifetime."""
    key = _plan_limits_cache_key(plan)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key), robust=True)

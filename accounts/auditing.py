"""Accounts' side of the audit trail (the `audit` app is a leaf that knows no user, key or
plan): naming a request's actor once DRF has authenticated it, and pruning each workspace's
events past its plan's retention."""

from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import ApiKey, Plan, Workspace
from accounts.selectors import plan_limits
from audit.context import API_KEY, USER, audit_actor_set
from audit.middleware import request_ip
from audit.services import audit_retention_prune


def audit_actor_name(request) -> None:
    """Name the authenticated caller of this DRF request as the actor of what it changes: the
    API key (id and name) when one authenticated it, else the user (id and email)."""
    credential = getattr(request, "auth", None)
    user = getattr(request, "user", None)
    if isinstance(credential, ApiKey):
        actor = (API_KEY, credential.pk, credential.name)
    elif user is not None and user.is_authenticated:
        actor = (USER, user.pk, user.email)
    else:
        return
    actor_type, actor_id, actor_label = actor
    audit_actor_set(
        actor_type=actor_type, actor_id=actor_id, actor_label=actor_label, ip=request_ip(request)
    )


def audit_trail_prune(*, now: datetime | None = None) -> int:
    """Delete each workspace's audit events older than its plan's `audit_retention_days`; the
    events of workspaces that no longer exist, and platform-wide ones, are kept as long as the
    longest plan keeps them. Returns how many went."""
    now = now or timezone.now()
    days = {plan: plan_limits(plan=plan).audit_retention_days for plan in Plan.values}
    pruned = 0
    for plan, kept_days in days.items():
        pruned += audit_retention_prune(
            cutoff=now - timedelta(days=kept_days),
            workspace_ids=Workspace.objects.filter(plan=plan).values("id"),
        )
    pruned += audit_retention_prune(
        cutoff=now - timedelta(days=max(days.values())),
        other_than=Workspace.objects.values("id"),
    )
    return pruned

"""Celery tasks of accounts: the audit trail's retention (declared in sverm/periodic.py)."""

from celery import shared_task

from accounts.auditing import audit_trail_prune


@shared_task(name="accounts.prune_audit_trail")
def prune_audit_trail_task() -> int:
    """Delete audit events older than their workspace plan's `audit_retention_days`."""
    return audit_trail_prune()

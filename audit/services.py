"""Writing the audit trail (`audit_record`, called by every state-changing service inside its
transaction) and pruning it past each plan's retention (`audit_retention_prune`, the one
sanctioned deleter)."""

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router, transaction
from django.db.models import Q

from audit.context import audit_context
from audit.models import PRUNE_SETTING, AuditEvent

MAX_ACTION_LENGTH = AuditEvent._meta.get_field("action").max_length
PRUNE_BATCH_SIZE = 1000


class _AuditJSONEncoder(DjangoJSONEncoder):
    """Decimal -> str, date-times -> ISO 8601 (`Z` for UTC), and what fields hold besides:
    sets (sorted), enums (their value), model instances (their pk), bytes (their length)."""

    def default(self, o):
        if isinstance(o, datetime):  # to the microsecond (Django's encoder stops at the ms)
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, set | frozenset):
            return sorted(o, key=str)
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, models.Model):
            return o.pk
        if isinstance(o, bytes | bytearray | memoryview):
            return f"<{len(o)} bytes>"
        return super().default(o)


def json_safe(values: Mapping[str, Any] | None) -> dict | None:
    """`values` as plain JSON (strings, numbers, booleans, null, lists, objects)."""
    if values is None:
        return None
    return json.loads(json.dumps(dict(values), cls=_AuditJSONEncoder))


def audit_record(
    *,
    action: str,
    workspace_id: str | None,
    target_type: str,
    target_id: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Record one state-changing action, stamped with the current actor, IP and correlation id
    (audit/context.py). Call it INSIDE the transaction that makes the change, so the two commit
    or roll back together; `before`/`after` hold the changed fields only (None for a creation's
    `before` or a deletion's `after`). A failure here raises, and so undoes the change."""
    if not action or action != action.lower() or "." not in action:
        raise ValueError(f"audit action {action!r}: expected '<resource>.<verb>', lowercase")
    if len(action) > MAX_ACTION_LENGTH:
        raise ValueError(f"audit action {action!r} is longer than {MAX_ACTION_LENGTH}")
    context = audit_context()
    event = AuditEvent(
        workspace_id=workspace_id or None,
        actor_type=context.actor_type,
        actor_id=context.actor_id,
        actor_label=context.actor_label,
        action=action,
        target_type=target_type,
        target_id="" if target_id is None else str(target_id),
        before=json_safe(before),
        after=json_safe(after),
        ip=context.ip,
        correlation_id=context.correlation_id,
    )
    # A savepoint when called inside a transaction, which it should be: the event commits or
    # rolls back with the change.
    with transaction.atomic(using=router.db_for_write(AuditEvent)):
        event.save()
    captured = _captured.get()
    if captured is not None:
        captured.append(event)
    return event


_captured: ContextVar[list[AuditEvent] | None] = ContextVar("audit_captured", default=None)


@contextmanager
def audit_capture() -> Iterator[list[AuditEvent]]:
    """The events recorded inside the block, e.g. for the admin to know whether the service it
    called recorded the change already."""
    events: list[AuditEvent] = []
    token = _captured.set(events)
    try:
        yield events
    finally:
        _captured.reset(token)
        outer = _captured.get()
        if outer is not None:  # an enclosing capture sees them too
            outer.extend(events)


def audit_fields(obj: models.Model, names: Iterable[str]) -> dict[str, Any]:
    """`obj`'s values of the fields `names` (a foreign key by its `<name>_id`), to keep before a
    change and diff after it with `audit_diff`."""
    values = {}
    for name in names:
        field = obj._meta.get_field(name)
        values[field.attname] = getattr(obj, field.attname)
    return values


def audit_diff(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields whose values differ, as (before, after); both empty when nothing changed."""
    old, new = json_safe(before) or {}, json_safe(after) or {}
    changed = [name for name in new if old.get(name) != new[name]]
    changed += [name for name in old if name not in new]
    return {name: old.get(name) for name in changed}, {name: new.get(name) for name in changed}


def audit_retention_prune(
    *,
    cutoff: datetime,
    workspace_ids: Iterable[str] | None = None,
    other_than: Iterable[str] | None = None,
    batch_size: int = PRUNE_BATCH_SIZE,
) -> int:
    """Delete the events created before `cutoff` of the workspaces `workspace_ids`, or with
    `other_than` instead, of every workspace not in it and the platform-wide events (either may
    be a list or a subquery of ids). Returns how many went.

    The ONE sanctioned deleter of audit events. It deletes in batches of `batch_size`, each in
    its own short transaction, so the table is never locked for long; on PostgreSQL each batch
    first sets the session flag the table's trigger asks for (`SET LOCAL`: it ends with the
    batch's transaction)."""
    if (workspace_ids is None) == (other_than is None):
        raise ValueError("give exactly one of workspace_ids and other_than")
    database = router.db_for_write(AuditEvent)
    scope = AuditEvent.objects.using(database).filter(created_at__lt=cutoff)
    if workspace_ids is not None:
        scope = scope.filter(workspace_id__in=workspace_ids)
    else:
        scope = scope.filter(~Q(workspace_id__in=other_than) | Q(workspace_id__isnull=True))
    total = 0
    while True:
        with transaction.atomic(using=database):
            _prune_flag(database, True)
            batch = list(
                scope.order_by("created_at", "id").values_list("id", flat=True)[:batch_size]
            )
            if batch:
                total += AuditEvent.objects.using(database).filter(id__in=batch)._retention_delete()
            # Off again at once: called inside a caller's transaction, `SET LOCAL` would last
            # until that one ends.
            _prune_flag(database, False)
        if len(batch) < batch_size:
            return total


def _prune_flag(database: str, on: bool) -> None:
    connection = connections[database]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config(%s, %s, true)", [PRUNE_SETTING, "on" if on else "off"]
            )

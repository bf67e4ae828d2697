"""Who is acting, from where, in which request: what `audit_record` stamps on every event.

A request sets it where the caller becomes known: the middleware (audit/middleware.py) opens a
fresh context per request with its IP and correlation id (and, in the Django admin, the signed-in
operator as the `admin` actor); the workspace-scoped viewset base (accounts/viewsets.py) names the
user or API key once DRF has authenticated it. Outside a request (Celery tasks, the periodic
timer, management commands) the actor is `system`. This leaf app imports no other, so the context
takes plain values.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace

from sverm.api.middleware import current_request_id

USER, API_KEY, SYSTEM, ADMIN = "user", "api_key", "system", "admin"


@dataclass(frozen=True)
class AuditContext:
    actor_type: str = SYSTEM
    actor_id: str = ""
    actor_label: str = ""
    ip: str | None = None
    # Empty: the request id of the running request, if any (sverm/api/middleware.py).
    correlation_id: str = ""


SYSTEM_CONTEXT = AuditContext()

_context: ContextVar[AuditContext] = ContextVar("audit_context", default=SYSTEM_CONTEXT)


def audit_context() -> AuditContext:
    """The current context, its correlation id filled from the request id when unset."""
    context = _context.get()
    if not context.correlation_id:
        request_id = current_request_id()
        if request_id != "-":
            context = replace(context, correlation_id=request_id)
    return context


def audit_context_set(context: AuditContext) -> Token:
    """Make `context` current; undo with `audit_context_reset(token)`."""
    return _context.set(context)


def audit_context_reset(token: Token) -> None:
    _context.reset(token)


def audit_actor_set(
    *, actor_type: str, actor_id: str = "", actor_label: str = "", ip: str | None = None
) -> None:
    """Name the actor of the rest of this request, keeping its IP (`ip` stands in when the
    context has none) and correlation id; the request's middleware resets the whole context
    when the request ends."""
    current = _context.get()
    _context.set(
        replace(
            current,
            actor_type=actor_type,
            actor_id=actor_id,
            actor_label=actor_label,
            ip=current.ip or ip,
        )
    )


@contextmanager
def audit_context_use(
    *,
    actor_type: str = SYSTEM,
    actor_id: str = "",
    actor_label: str = "",
    ip: str | None = None,
    correlation_id: str = "",
) -> Iterator[AuditContext]:
    """Act as the given actor inside the block (a task replaying a user's request, tests)."""
    context = AuditContext(actor_type, actor_id, actor_label, ip, correlation_id)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)

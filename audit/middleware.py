"""Opens each request's audit context (audit/context.py): the client's IP, the request id as
correlation id, and in the Django admin the signed-in operator as the `admin` actor. The API's
viewset base names the user or API key once DRF has authenticated it; the context is reset when
the request ends, so nothing of it outlives the request on a reused thread."""

import ipaddress
from functools import cache

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.urls import NoReverseMatch, reverse

from audit.context import ADMIN, AuditContext, audit_context_reset, audit_context_set
from sverm.api.middleware import SyncAndAsyncMiddleware
from sverm.api.throttling import client_ip


def request_ip(request) -> str | None:
    """The client's IP (sverm.api.throttling.client_ip, so NUM_PROXIES is honoured), or None
    when what the proxies sent is not an address."""
    value = (client_ip(request) or "").strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def request_audit_context(request, user=None) -> AuditContext:
    """The context of `request`; `user` (an authenticated Django user) acting through the
    admin makes it the `admin` actor."""
    context = AuditContext(
        ip=request_ip(request), correlation_id=getattr(request, "request_id", "") or ""
    )
    if user is not None and user.is_authenticated:
        context = AuditContext(
            actor_type=ADMIN,
            actor_id=str(user.pk),
            actor_label=getattr(user, "email", "") or str(user),
            ip=context.ip,
            correlation_id=context.correlation_id,
        )
    return context


@cache
def _admin_prefix(urlconf: str) -> str | None:
    """Where the admin is served under `urlconf` (None: it is not)."""
    try:
        return reverse("admin:index", urlconf=urlconf)
    except NoReverseMatch:
        return None


def _in_admin(request) -> bool:
    prefix = _admin_prefix(getattr(request, "urlconf", None) or settings.ROOT_URLCONF)
    return prefix is not None and request.path.startswith(prefix)


class AuditContextMiddleware(SyncAndAsyncMiddleware):
    """After AuthenticationMiddleware (the admin's user comes from the session)."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        user = request.user if _in_admin(request) else None
        token = audit_context_set(request_audit_context(request, user))
        try:
            return self.get_response(request)
        finally:
            audit_context_reset(token)

    async def __acall__(self, request):
        user = await request.auser() if _in_admin(request) else None
        token = audit_context_set(request_audit_context(request, user))
        try:
            return await self.get_response(request)
        finally:
            audit_context_reset(token)

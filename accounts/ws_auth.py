"""WebSocket authentication: `?token=` (a JWT or an `sk-sverm-` API key, as seed 000 says),
an `Authorization: Bearer` header where the client can send one, else the session cookie (the
live page for signed-in staff). Sets `scope["caller"]`, or `scope["auth_error"]` for a bad
credential; consumers decide, before accepting, what to do with it."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from accounts.authentication import credential_authenticate
from accounts.tenancy import ANONYMOUS, Caller, caller_build
from sverm.api.errors import Unauthorized


def _token_from(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                return parts[1]
    return None


@database_sync_to_async
def _caller_of(scope) -> Caller:
    """The token's caller, else the session user's (channels' AuthMiddleware loads it lazily,
    so this reads the database too)."""
    token = _token_from(scope)
    if token:
        user, credential = credential_authenticate(token=token)
        return caller_build(user=user, credential=credential)
    return caller_build(user=scope.get("user"))


class CallerMiddleware:
    """Needs channels' AuthMiddlewareStack inside it (`scope["user"]` from the session)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        try:
            scope["caller"] = await _caller_of(scope)
        except Unauthorized as exc:
            scope["caller"], scope["auth_error"] = ANONYMOUS, exc.message
        return await self.app(scope, receive, send)

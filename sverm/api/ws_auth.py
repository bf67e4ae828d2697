"""WebSocket authentication: `?token=` (a JWT or an `sk-sverm-` API key, as seed 000 says),
an `Authorization: Bearer` header where the client can send one, else the session cookie (the
live page for signed-in staff). Sets `scope["caller"]`, or `scope["auth_error"]` for a bad
credential; consumers decide, before accepting, what to do with it."""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from sverm.api.errors import Unauthorized
from sverm.api.scoping import ANONYMOUS, Caller


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
def _caller_for_token(token: str) -> Caller:
    from accounts.models import User
    from accounts.selectors import user_workspace_roles
    from accounts.services import API_KEY_PREFIX, api_key_authenticate

    if token.startswith(API_KEY_PREFIX):
        key = api_key_authenticate(raw_key=token)
        return Caller(
            user_id=key.created_by_id, api_key_id=key.pk, roles={key.workspace_id: key.role}
        )
    try:
        user_id = AccessToken(token)[settings.SIMPLE_JWT.get("USER_ID_CLAIM", "user_id")]
    except (TokenError, KeyError):
        raise Unauthorized("The access token is invalid or expired.") from None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise Unauthorized("The token's user is unknown or deactivated.")
    return Caller(
        user_id=user.pk, is_staff=user.is_staff, roles=user_workspace_roles(user_id=user.pk)
    )


@database_sync_to_async
def _caller_for_user(user) -> Caller:
    from accounts.selectors import user_workspace_roles

    if user is None or not user.is_authenticated or not user.is_active:
        return ANONYMOUS
    return Caller(
        user_id=user.pk, is_staff=user.is_staff, roles=user_workspace_roles(user_id=user.pk)
    )


class CallerMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        token = _token_from(scope)
        try:
            if token:
                scope["caller"] = await _caller_for_token(token)
            else:
                scope["caller"] = await _caller_for_user(scope.get("user"))
        except Unauthorized as exc:
            scope["caller"], scope["auth_error"] = ANONYMOUS, exc.message
        return await self.app(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin: it must be one of ALLOWED_HOSTS (the session cookie would
    otherwise let any site open a socket as the signed-in user). Non-browser clients send no
    Origin and authenticate with a token, which no other site can attach."""

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)

    def validate_origin(self, parsed_origin):
        host, _port = split_domain_port(parsed_origin.netloc)
        return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


def websocket_stack(app):
    """Origin check, session (for the live page), then the token or session caller."""
    return BrowserOriginValidator(AuthMiddlewareStack(CallerMiddleware(app)), allowed_origins=[])

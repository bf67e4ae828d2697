"""Who a request or a WebSocket is: `Authorization: Bearer sk-sverm-…` API keys, else simplejwt
access tokens. One function (`credential_authenticate`) checks a token for DRF's authentication
classes and for the WebSocket middleware (accounts/ws_auth.py) alike."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import Token

from accounts.models import ApiKey, User
from accounts.services import API_KEY_PREFIX, api_key_authenticate
from sverm.api.errors import Unauthorized

API_KEY_SCHEME = "Bearer"


def credential_authenticate(*, token: str) -> tuple[User, ApiKey | Token]:
    """The user a bearer token acts as and the credential itself: the ApiKey of an `sk-sverm-…`
    token, else the validated JWT access token. Unauthorized for a bad or unknown token, or a
    deactivated user."""
    if token.startswith(API_KEY_PREFIX):
        api_key = api_key_authenticate(raw_key=token)
        return api_key.created_by, api_key
    jwt = JWTAuthentication()
    try:
        access = jwt.get_validated_token(token)
        return jwt.get_user(access), access
    except (InvalidToken, TokenError):
        # One readable message instead of simplejwt's nested report on each token class.
        raise Unauthorized(
            "The access token is invalid or expired; log in again or refresh it."
        ) from None
    except exceptions.AuthenticationFailed as exc:  # the token's user is unknown or inactive
        raise Unauthorized(_message(exc)) from None


def _message(exc: exceptions.AuthenticationFailed) -> str:
    """The message alone of simplejwt's refusals, which carry `{"detail", "code"}`."""
    detail = exc.detail
    if isinstance(detail, dict):
        detail = detail.get("detail", "Authentication failed.")
    return str(detail)


def bearer_token(request) -> str | None:
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].decode("latin-1").lower() != API_KEY_SCHEME.lower():
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("The bearer token is not valid ASCII.") from None


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates workspace API keys; leaves any other bearer token to the JWT class."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None or not token.startswith(API_KEY_PREFIX):
            return None
        return credential_authenticate(token=token)

    def authenticate_header(self, request):
        return f'{API_KEY_SCHEME} realm="sverm"'


class BearerJWTAuthentication(JWTAuthentication):
    """simplejwt's reading of the header; the token is checked by `credential_authenticate`."""

    def authenticate(self, request):
        header = self.get_header(request)
        try:
            raw_token = None if header is None else self.get_raw_token(header)
        except exceptions.AuthenticationFailed as exc:  # not two values
            raise exceptions.AuthenticationFailed(_message(exc)) from None
        if raw_token is None:
            return None
        try:
            return credential_authenticate(token=raw_token.decode("latin-1"))
        except Unauthorized as exc:
            # DRF's own refusal, so the 401 says how to authenticate (WWW-Authenticate).
            raise exceptions.AuthenticationFailed(exc.message) from None

    def authenticate_header(self, request):
        return f'{API_KEY_SCHEME} realm="sverm"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A workspace API key: `Authorization: Bearer sk-sverm-…`.",
        }


class JWTScheme(OpenApiAuthenticationExtension):
    target_class = BearerJWTAuthentication
    name = "jwt"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /api/auth/login`.",
        }

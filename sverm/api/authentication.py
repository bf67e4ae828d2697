"""DRF authentication: `Authorization: Bearer sk-sverm-…` API keys, else simplejwt access tokens."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

API_KEY_SCHEME = "Bearer"


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
        from accounts.services import API_KEY_PREFIX, api_key_authenticate

        token = bearer_token(request)
        if token is None or not token.startswith(API_KEY_PREFIX):
            return None
        api_key = api_key_authenticate(raw_key=token)
        return api_key.created_by, api_key

    def authenticate_header(self, request):
        return f'{API_KEY_SCHEME} realm="sverm"'


class BearerJWTAuthentication(JWTAuthentication):
    """simplejwt with one readable message instead of its nested token report."""

    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except (InvalidToken, TokenError):
            raise exceptions.AuthenticationFailed(
                "The access token is invalid or expired; log in again or refresh it."
            ) from None
        except exceptions.AuthenticationFailed as exc:
            detail = exc.detail
            if isinstance(detail, dict):
                detail = detail.get("detail", "Authentication failed.")
            raise exceptions.AuthenticationFailed(str(detail)) from None

    def authenticate_header(self, request):
        return f'{API_KEY_SCHEME} realm="sverm"'

"""The webhooks' SSRF guard: `webhook_url_check` when a run is created, `resolve_target` when an
attempt is sent. The guard itself (every spelling of a non-public address refused after DNS
resolution, the request pinned to the checked address) is sverm/ssrf.py; this layer adds the
webhooks' allowed hosts (SVERM_WEBHOOK_ALLOWED_HOSTS), their wording and the field validator.
"""

import socket  # noqa: F401  (tests patch `ssrf.socket.getaddrinfo`: the module the guard calls)

from django.conf import settings
from django.core.exceptions import ValidationError

from sverm import ssrf as guard
from sverm.ssrf import Target, address_refusal, literal_ip

__all__ = [
    "Target",
    "WebhookRefused",
    "address_refusal",
    "literal_ip",
    "resolve_target",
    "webhook_url_check",
    "webhook_url_validator",
]


class WebhookRefused(guard.DestinationRefused):
    """A URL the SSRF guard will not send to."""


def resolve_target(url: str) -> Target:
    """Check `url` (after DNS resolution) and pin the address to connect to.
    Raises WebhookRefused for a refused destination, OSError when the name does not resolve."""
    try:
        return guard.resolve_target(
            url, allowed_hosts=settings.SVERM_WEBHOOK_ALLOWED_HOSTS, what="webhook"
        )
    except guard.DestinationRefused as exc:
        raise WebhookRefused(str(exc)) from None


def webhook_url_check(url: str) -> None:
    """Creation-time check (literal addresses in every spelling, and names that resolve now);
    a name that does not resolve yet is accepted: it is checked again at send time."""
    if not url:
        return
    try:
        resolve_target(url)
    except WebhookRefused:
        raise
    except (OSError, UnicodeError):
        return


def webhook_url_validator(value: str) -> None:
    """Serializer/model field validator: refuses non-public webhook destinations."""
    try:
        webhook_url_check(value)
    except WebhookRefused as exc:
        raise ValidationError(str(exc), code="webhook_url_refused") from None

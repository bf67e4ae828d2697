"""The exceptions the SDK raises: one hierarchy, read from either error shape sverm answers with."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Run

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SvermError",
    "TransportError",
    "UnprocessableError",
    "ValidationError",
    "WaitTimeout",
    "error_from_close",
    "error_from_response",
    "retry_after_seconds",
]

# The members every problem+json body has; the rest (e.g. `errors`) are the error's details.
_PROBLEM_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "instance", "code", "correlation_id"}
)


class SvermError(Exception):
    """Anything the SDK raises about sverm. `status` is the HTTP status (None when there was no
    response), `code` sverm's stable error code, `details` its extra data (a /v1 error's
    `details`, or a problem's other members such as `errors`), `correlation_id` the request id
    to quote to support (the X-Request-ID of the response)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.correlation_id = correlation_id
        self.headers: dict[str, str] = dict(headers or {})
        self.body = body

    @property
    def request_id(self) -> str | None:
        """The same as `correlation_id` (the response's X-Request-ID)."""
        return self.correlation_id

    def __str__(self) -> str:
        extra = [f"HTTP {self.status}"] if self.status else []
        if self.code:
            extra.append(f"code {self.code}")
        if self.correlation_id:
            extra.append(f"correlation id {self.correlation_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, correlation_id={self.correlation_id!r})"
        )


class ValidationError(SvermError):
    """400: the request is malformed or a field is invalid (`details["errors"]` names them on
    /api)."""


class AuthenticationError(SvermError):
    """401: missing, bad, expired or revoked credential (after a refresh, when one was possible)."""


class PermissionDeniedError(SvermError):
    """403: the credential's role is too low for this."""


class NotFoundError(SvermError):
    """404: unknown, or in a workspace the caller is not a member of (sverm answers the same)."""


class ConflictError(SvermError):
    """409: conflicts with the resource's state (e.g. cancelling a finished run)."""


class UnprocessableError(SvermError):
    """422: understood but refused (e.g. `idempotency_key_reused`, an invalid definition)."""


class BudgetExceededError(UnprocessableError):
    """422 `budget_exceeded`: even the cheapest completing path of the run is above its budget
    (`details["minimum_cost"]` is the least budget it would accept)."""


class RateLimitError(SvermError):
    """429, after the retries: `retry_after` says how many seconds to wait (None if not said)."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)


class ServerError(SvermError):
    """5xx, after the retries (for requests safe to retry)."""


class TransportError(SvermError):
    """No usable answer: the connection failed, timed out or was dropped, after the retries (and
    at once for a request that is not safe to send twice). The cause is `__cause__`."""


class WaitTimeout(SvermError, TimeoutError):
    """`runs.wait(..., timeout=...)` gave up: `run` is the run as last seen (still unfinished)."""

    def __init__(self, message: str, *, run: Run | None = None, timeout: float | None = None):
        super().__init__(message, code="wait_timeout")
        self.run = run
        self.timeout = timeout


_BY_STATUS: dict[int, type[SvermError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
    429: RateLimitError,
}


def _error_class(status: int, code: str | None) -> type[SvermError]:
    if status == 422 and code == "budget_exceeded":
        return BudgetExceededError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, SvermError)


def error_from_response(
    status: int, headers: Mapping[str, str], body: Any, *, reason: str = ""
) -> SvermError:
    """The exception for an error response, from a /v1 envelope
    (`{"error": {"code", "message", "details", "correlation_id"}}`), a problem+json body
    (`{type, title, status, detail, instance, code, correlation_id, errors?}`) or anything else
    (a proxy's HTML page: its text, shortened)."""
    headers = {key.lower(): value for key, value in headers.items()}
    code: str | None = None
    details: dict[str, Any] = {}
    correlation_id: str | None = None
    envelope = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(envelope, Mapping):
        code = _text(envelope.get("code"))
        message = _text(envelope.get("message"))
        found = envelope.get("details")
        details = dict(found) if isinstance(found, Mapping) else {}
        correlation_id = _text(envelope.get("correlation_id"))
    elif isinstance(body, Mapping) and ("title" in body or "detail" in body or "code" in body):
        code = _text(body.get("code"))
        message = _text(body.get("detail")) or _text(body.get("title"))
        details = {key: value for key, value in body.items() if key not in _PROBLEM_MEMBERS}
        correlation_id = _text(body.get("correlation_id"))
    else:
        text = " ".join(str(body).split()) if isinstance(body, str) else ""
        message = text[:200] if text and not text.startswith("<") else None
    message = message or f"HTTP {status}{' ' + reason if reason else ''}"
    correlation_id = correlation_id or headers.get("x-request-id")
    return _error_class(status, code)(
        message,
        status=status,
        code=code,
        details=details,
        correlation_id=correlation_id,
        headers=headers,
        body=body,
    )


# The WebSocket refusals: the close code, its HTTP status and sverm's code for it.
_CLOSE_REFUSALS = {
    4400: (400, "invalid_request"),
    4401: (401, "unauthorized"),
    4403: (403, "forbidden"),
    4404: (404, "not_found"),
}


def error_from_close(close_code: int, reason: str = "") -> SvermError:
    """The exception for a stream the server refused by closing it with 4400/4401/4403/4404."""
    status, code = _CLOSE_REFUSALS.get(close_code, (None, "stream_closed"))
    message = reason or f"the stream was refused (close code {close_code})"
    kind = _error_class(status, code) if status else SvermError
    return kind(message, status=status, code=code, details={"close_code": close_code})


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (None when absent or
    unreadable)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

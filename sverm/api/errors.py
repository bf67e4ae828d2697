"""One error hierarchy and one handler, rendered in two wire formats.

`/v1/*` answers seed 002's envelope `{"error": {"code", "message", "details"}}`; everything else
answers RFC 9457 problem details (`application/problem+json`). Unknown routes, malformed JSON,
405s and uncaught exceptions all pass through `render_error`.
"""

import json
import logging
from typing import Any

from django.core.exceptions import (
    ObjectDoesNotExist,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf
from rest_framework.settings import api_settings

from sverm import metrics
from sverm.api.middleware import current_request_id, error_mark

logger = logging.getLogger("sverm.api")

PROBLEM_TYPE_BASE = "https://sverm.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApplicationError(Exception):
    """An error a client can act on: an HTTP status, a stable `code`, a message, extra details."""

    status = 400
    code = "invalid_request"
    title = "Invalid request"
    default_message = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        field_errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.message = message or self.default_message
        self.details = details or {}
        self.field_errors = field_errors or []
        self.headers = headers or {}
        super().__init__(self.message)


def field_error(field: str, detail: str, code: str = "invalid") -> dict[str, str]:
    """One entry of a validation error's `errors`: the field as named on the wire (`name`,
    `models[1]`) with its JSON pointer into the body."""
    pointer = field.replace("[", "/").replace("]", "").replace(".", "/")
    return {"field": field, "pointer": f"#/{pointer}", "detail": detail, "code": code}


class InvalidRequest(ApplicationError):
    @classmethod
    def for_field(
        cls, field: str, detail: str, *, code: str = "invalid", message: str | None = None
    ) -> "InvalidRequest":
        """A 400 naming one body field (the message defaults to `field: detail`)."""
        return cls(message or f"{field}: {detail}", field_errors=[field_error(field, detail, code)])


class Unauthorized(ApplicationError):
    status, code, title = 401, "unauthorized", "Unauthorized"
    default_message = "Authentication credentials were missing or invalid."


class Forbidden(ApplicationError):
    status, code, title = 403, "forbidden", "Forbidden"
    default_message = "You do not have permission to perform this action."


class NotFound(ApplicationError):
    status, code, title = 404, "not_found", "Not found"
    default_message = "The requested resource was not found."


class MethodNotAllowed(ApplicationError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"
    default_message = "This method is not allowed on this resource."


class NotAcceptable(ApplicationError):
    status, code, title = 406, "not_acceptable", "Not acceptable"
    default_message = "The requested response format is not available."


class Conflict(ApplicationError):
    status, code, title = 409, "conflict", "Conflict"
    default_message = "The request conflicts with the current state of the resource."


class PayloadTooLarge(ApplicationError):
    status, code, title = 413, "payload_too_large", "Payload too large"
    default_message = "The request body is too large."


class UnsupportedMediaType(ApplicationError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"
    default_message = "Send the body as application/json."


class Unprocessable(ApplicationError):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class BudgetExceeded(ApplicationError):
    status, code, title = 422, "budget_exceeded", "Budget exceeded"
    default_message = "The run's cost would exceed its maximum budget."


class RateLimited(ApplicationError):
    status, code, title = 429, "rate_limited", "Too many requests"
    default_message = "Too many requests."
    # /metrics' labels of the refusal (sverm/metrics): what the refused limit counts against
    # (`key`, `user`, `ip`; else the limit says) and which limit, when `details` do not say.
    scope = ""
    limit = ""


class InternalError(ApplicationError):
    status, code, title = 500, "internal_error", "Internal server error"
    default_message = "Something went wrong on our end."


class ServiceUnavailable(ApplicationError):
    status, code, title = 503, "service_unavailable", "Service unavailable"
    default_message = "The service is temporarily unavailable."


# What a 503 for a database connection that did not come in time tells the client to wait.
DATABASE_RETRY_AFTER_SECONDS = 5


ERROR_CLASSES: list[type[ApplicationError]] = [
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    BudgetExceeded,
    RateLimited,
    InternalError,
    ServiceUnavailable,
]


# ---------------------------------------------------------------------------------------------
# Translation of framework exceptions
# ---------------------------------------------------------------------------------------------
def _field_errors(detail: Any, path: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Flatten DRF's nested full details into `[{field, pointer, detail, code}]`."""
    if isinstance(detail, dict) and set(detail) == {"message", "code"}:
        field = ".".join(path) if path else None
        return [
            {
                "field": field,
                "pointer": "#/" + "/".join(path) if path else "#",
                "detail": str(detail["message"]),
                "code": str(detail["code"]),
            }
        ]
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            sub = path if key == api_settings.NON_FIELD_ERRORS_KEY else (*path, str(key))
            errors.extend(_field_errors(value, sub))
        return errors
    if isinstance(detail, list):
        errors = []
        for index, item in enumerate(detail):
            if isinstance(item, dict) and set(item) == {"message", "code"}:
                errors.extend(_field_errors(item, path))
            else:
                errors.extend(_field_errors(item, (*path, str(index))))
        return errors
    return []


def _summarise(field_errors: list[dict[str, str]]) -> str:
    parts = [f"{e['field']}: {e['detail']}" if e["field"] else e["detail"] for e in field_errors]
    return "Invalid input. " + " ".join(parts[:5]) if parts else "Invalid input."


def no_database_connection(exc: BaseException) -> bool:
    """Whether `exc` is (or was raised from) psycopg_pool's PoolTimeout: no connection of the
    process's pool came free, or could be opened, within DB_POOL_TIMEOUT. Django raises it as
    its own OperationalError, with the PoolTimeout as the cause."""
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # pragma: no cover - installed with psycopg[pool]
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PoolTimeout):
            return True
        seen = seen.__cause__
    return False


def to_application_error(exc: BaseException) -> ApplicationError:
    if isinstance(exc, ApplicationError):
        return exc
    if no_database_connection(exc):
        return ServiceUnavailable(
            "No database connection came free in time: the service is overloaded; try again "
            "shortly.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, drf.ValidationError):
        field_errors = _field_errors(exc.get_full_details())
        return InvalidRequest(_summarise(field_errors), field_errors=field_errors)
    if isinstance(exc, drf.ParseError):
        return InvalidRequest(f"Malformed request body: {exc.detail}")
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return Unauthorized(str(exc.detail), headers=headers)
    if isinstance(exc, drf.PermissionDenied | DjangoPermissionDenied):
        return Forbidden(str(getattr(exc, "detail", "")) or None)
    if isinstance(exc, drf.NotFound | Http404 | ObjectDoesNotExist):
        return NotFound()
    if isinstance(exc, drf.MethodNotAllowed):
        return MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return NotAcceptable(str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaType(f"{exc.detail} Send the body as application/json.")
    if isinstance(exc, drf.Throttled):  # a DRF throttle (sverm's own raise RateLimited)
        wait = int(exc.wait) if exc.wait is not None else 60
        return RateLimited(str(exc.detail), headers={"Retry-After": str(max(wait, 1))})
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(str(exc) or None)
    if isinstance(exc, TooManyFieldsSent | SuspiciousOperation):
        return InvalidRequest(str(exc) or None)
    if isinstance(exc, drf.APIException):
        error = ApplicationError(str(exc.detail))
        error.status = exc.status_code
        return error
    return InternalError()


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def is_v1_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def is_api_path(path: str) -> bool:
    return is_v1_path(path) or path == "/api" or path.startswith("/api/")


def error_body(path: str, error: ApplicationError) -> tuple[dict[str, Any], str]:
    """The error's body and content type in the wire format of `path`."""
    correlation_id = current_request_id()
    if is_v1_path(path):
        details = dict(error.details)
        if error.field_errors:
            fields: dict[str, list[str]] = {}
            for item in error.field_errors:
                fields.setdefault(item["field"] or "non_field_errors", []).append(item["detail"])
            details["fields"] = fields
        body = {
            "error": {
                "code": error.code,
                "message": error.message,
                "details": details,
                "correlation_id": correlation_id,
            }
        }
        return body, "application/json"
    body = {
        "type": PROBLEM_TYPE_BASE + error.code.replace("_", "-"),
        "title": error.title,
        "status": error.status,
        "detail": error.message,
        "instance": path,
        "code": error.code,
        "correlation_id": correlation_id,
    }
    if error.field_errors:
        body["errors"] = error.field_errors
    for key, value in error.details.items():
        body.setdefault(key, value)
    return body, PROBLEM_CONTENT_TYPE


# What every 401 says about how to authenticate (RFC 9110 §11.6.1): a bearer token, a JWT or
# an API key alike.
WWW_AUTHENTICATE = 'Bearer realm="sverm"'


def render_error(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    if isinstance(error, RateLimited):  # every 429 sverm answers is rendered here, once
        limit = error.limit or error.details.get("limit") or "unknown"
        metrics.rate_limit_refused(limit=limit, scope=error.scope)
    body, content_type = error_body(request.path, error)
    response = HttpResponse(
        json.dumps(body, default=str), status=error.status, content_type=content_type
    )
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return error_mark(response, error.code, error.message)


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    """DRF's EXCEPTION_HANDLER: every exception raised in an API view ends here."""
    from rest_framework.views import set_rollback

    error = to_application_error(exc)
    request = context["request"]
    if isinstance(error, InternalError) and error is not exc:
        # A bug: its traceback. A 5xx sverm answers on purpose (503 while a service is down or
        # no database connection came free) is logged like every error response, in one
        # line, by the request-id middleware.
        logger.exception("Unhandled error on %s %s", request.method, request.path, exc_info=exc)
    set_rollback()
    return render_error(request, error)


# ---------------------------------------------------------------------------------------------
# Django-level handlers, for what never reaches a DRF view
# ---------------------------------------------------------------------------------------------
def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return render_error(request, NotFound(f"No route matches {request.path}."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return render_error(request, InternalError())
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return render_error(request, InvalidRequest(str(exception) if exception else None))
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return render_error(request, Forbidden())
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)

"""The request id: taken from `X-Request-ID` or generated, echoed, on every log line, and on the
one line logged for every error response (seed 000: the correlation id "is logged
server-side"); the rate-limit headers a throttle left on the request, on whatever response the
request got; and the refusal of URLs no database can look up (a NUL character)."""

import logging
import re
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import BadRequest
from django.utils.encoding import escape_uri_path
from ulid import ULID

from sverm.api.deprecation import request_deprecation

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# The throttle stores {header: value} here on the Django request; errors (404, 400, 429…)
# carry the headers too because they are set on the final response.
RATE_LIMIT_HEADERS_ATTR = "sverm_rate_limit_headers"
# An error response's (code, message), left on it by whatever rendered it (sverm/api/errors.py,
# an idempotent replay) for the log line.
ERROR_ATTR = "sverm_error"
MAX_LOGGED_MESSAGE = 300

logger = logging.getLogger("sverm.api")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def current_request_id() -> str:
    return request_id_var.get()


def new_request_id() -> str:
    return f"req_{str(ULID()).lower()}"


def request_id_from(meta_value: str | None) -> str:
    """The caller's id when it is a sane token, else a fresh one (log lines stay unbroken)."""
    if meta_value and _VALID_REQUEST_ID.match(meta_value):
        return meta_value
    return new_request_id()


def error_mark(response, code: str, message: str):
    """Note on `response` the error it carries, for its log line."""
    setattr(response, ERROR_ATTR, (code, message))
    return response


def error_log(request, response) -> None:
    """One line per error response (4xx and 5xx, whatever rendered it): method, path, status,
    error code and the correlation id, so a support request quoting the id finds it."""
    code, message = getattr(response, ERROR_ATTR, ("-", ""))
    logger.log(
        logging.ERROR if response.status_code >= 500 else logging.WARNING,
        "%s %s -> %s %s correlation_id=%s %r",
        request.method,
        escape_uri_path(request.path),  # as sent: a %00 or %0A stays escaped in the log
        response.status_code,
        code,
        request.request_id,
        message[:MAX_LOGGED_MESSAGE],
    )


def _finish(request, response):
    response[REQUEST_ID_HEADER] = request.request_id
    for name, value in getattr(request, RATE_LIMIT_HEADERS_ATTR, {}).items():
        response[name] = value
    if (deprecation := request_deprecation(request)) is not None:
        for name, value in deprecation.headers().items():
            response[name] = value
    if response.status_code >= 400:
        error_log(request, response)
    return response


class SyncAndAsyncMiddleware:
    """A middleware that serves sync and async stacks alike (Django calls it as the chain is)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)


class RequestIdMiddleware(SyncAndAsyncMiddleware):
    """Sets the id for the request's context and on its response, with the request's rate-limit
    headers; works sync and async."""

    def _begin(self, request):
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        return request_id_var.set(request_id)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = self._begin(request)
        try:
            return _finish(request, self.get_response(request))
        finally:
            request_id_var.reset(token)

    async def __acall__(self, request):
        # Each ASGI request runs in its own context, so the id is not reset here: Django logs
        # the request's errors ("django.request") after the middleware chain has returned.
        self._begin(request)
        return _finish(request, await self.get_response(request))


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def nul_in_url(request) -> str | None:
    """Where the URL carries a NUL character (`%00`), which no id, filter or database text can
    hold (PostgreSQL refuses it in any text): `the path` or `query parameter 'x'`; else None."""
    if "\x00" in request.path:
        return "the path"
    if "%00" not in request.META.get("QUERY_STRING", ""):
        return None
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return f"query parameter {name.replace(chr(0), '%00')!r}"
    return None


class NulRefusingMiddleware(SyncAndAsyncMiddleware):
    """Refuses a URL with a NUL character before any view looks it up: 400 `invalid_request` on
    the API (a lookup would otherwise fail in the database, a 500 on PostgreSQL), Django's 400
    page elsewhere (the admin)."""

    def refusal(self, request):
        where = nul_in_url(request)
        if where is None:
            return None
        from sverm.api.errors import InvalidRequest, is_api_path, render_error

        message = f"The URL must not contain NUL characters (%00), found in {where}."
        if is_api_path(request.path):
            return render_error(request, InvalidRequest(message))
        raise BadRequest(message)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        return self.refusal(request) or await self.get_response(request)

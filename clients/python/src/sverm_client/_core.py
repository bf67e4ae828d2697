"""The SDK without I/O: how a call becomes an HTTP request, how answers become values or errors,
when to retry and refresh. Operations are generators that yield I/O steps (Send, Sleep, the
WebSocket steps) and get their outcome back; the sync and async clients only perform the steps."""

from __future__ import annotations

import json
import math
import platform
import random
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from ._version import __version__
from .errors import (
    SvermError,
    TransportError,
    error_from_response,
    retry_after_seconds,
)
from .models import Credentials

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3
# Longest Retry-After the client sleeps through; a longer one is raised (RateLimitError) at once.
MAX_RETRY_AFTER = 60.0
# Exponential backoff between retries that the server did not time: 0.5 s, 1 s, 2 s... up to 8 s.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
USER_AGENT = f"sverm-client/{__version__} python/{platform.python_version()}"


# --- the steps operations yield ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Send this HTTP request; the outcome is a Reply, or ConnectionFailed thrown in."""

    method: str
    url: str
    headers: dict[str, str]
    params: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server answered: status, headers (lower-case names) and body bytes."""

    status: int
    headers: dict[str, str]
    content: bytes
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Item:
    """Not I/O: a value for the caller of an iterating operation (a list row, a stream event)."""

    value: Any


@dataclass(frozen=True, slots=True)
class WsOpen:
    """Open the operation's WebSocket (closing one it had); outcome None, or WsRefused /
    ConnectionFailed thrown in."""

    url: str
    headers: dict[str, str]
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class WsReceive:
    """The next text message of the open WebSocket; WsClosed thrown in when it closed."""


@dataclass(frozen=True, slots=True)
class WsClose:
    """Close the open WebSocket (waiting for the server's close frame, briefly)."""


class ConnectionFailed(Exception):
    """The request got no answer. `sent` is False when it cannot have reached the server (the
    connection was never made), so resending it is safe whatever it does."""

    def __init__(self, error: BaseException, *, sent: bool) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.error = error
        self.sent = sent


class WsRefused(Exception):
    """The WebSocket handshake was answered with an HTTP status instead of 101."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply


class WsClosed(Exception):
    """The WebSocket closed; `code` 1006 when it was dropped without a close frame."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = 1006 if code is None else code
        self.reason = reason


Step = Send | Sleep | Item | WsOpen | WsReceive | WsClose
Flow = Generator[Step, Any, T]


# --- calls and responses -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Call:
    """One API request as operations describe it. `idempotent`: sending it twice does no harm
    (GET, DELETE, and POSTs with an Idempotency-Key), so a dropped connection or a 502/504 is
    retried. `timeout`: the read timeout for this call (e.g. a long wait), else the client's."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] | None = None
    idempotent: bool | None = None
    timeout: float | None = None
    authenticated: bool = True

    @property
    def safe_to_repeat(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in ("GET", "HEAD", "OPTIONS", "DELETE")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")


def json_loads(content: bytes | str) -> Any:
    """JSON with every number that has a fraction or exponent read as Decimal, from its text."""
    return json.loads(content, parse_float=Decimal)


def json_dumps(value: Any) -> str:
    """Compact JSON where a Decimal is written as its exact number text (never through float)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            out.append(("," if index else "") + json.dumps(str(key)) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        out.append(repr(value))
    else:
        out.append(json.dumps(value))


def to_decimal(value: Any) -> Decimal:
    """A money argument as Decimal: Decimal, int, str ("2.50"), or a float via its shortest text."""
    if isinstance(value, bool):
        raise TypeError("a money amount cannot be a bool")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, int | str):
        amount = Decimal(str(value).strip().removeprefix("$"))
    else:
        raise TypeError(f"a money amount must be a Decimal, int, str or float, not {value!r}")
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount of USD")
    return amount


def query_value(value: Any) -> str:
    """A query parameter's text: JSON for lists and dicts (filter, orderBy), true/false for
    bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json_dumps(value)
    return str(value)


def camel(name: str) -> str:
    """snake_case keyword to the /api body's camelCase (`max_budget_usd` -> `maxBudgetUsd`)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


# --- the core -------------------------------------------------------------------------------------
class Core:
    """What a client knows (server, credentials, workspace, retry budget) and the flows every
    request goes through. Shared by Client and AsyncClient; does no I/O itself."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        workspace: str | None,
        max_retries: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.credentials = credentials
        self.workspace = workspace
        self.max_retries = max_retries
        self.default_headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            **(headers or {}),
        }

    # --- requests ---------------------------------------------------------------------------------
    def auth_headers(self, path: str) -> dict[str, str]:
        credentials = self.credentials
        token = credentials.api_key or credentials.access
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.workspace and not credentials.api_key and path.startswith("/v1/"):
            headers["Sverm-Workspace"] = self.workspace
        return headers

    def build(self, call: Call) -> Send:
        headers = dict(self.default_headers)
        if call.authenticated:
            headers.update(self.auth_headers(call.path))
        content = None
        if call.body is not None:
            content = json_dumps(call.body).encode()
            headers["Content-Type"] = "application/json"
        headers.update(call.headers or {})
        params = [
            (key, query_value(value))
            for key, value in (call.params or {}).items()
            if value is not None
        ]
        return Send(call.method, self.base_url + call.path, headers, params, content, call.timeout)

    def request(self, call: Call) -> Flow[Response]:
        """Send `call` until it has an answer worth returning: retried per `retry_delay` and
        `failure_delay`, the access token refreshed once on a 401 when a refresh token is
        known. Returns the 2xx response; raises the SvermError for anything else."""
        if call.authenticated:
            yield from self.ensure_access()
        attempt = 0
        refreshed = False
        while True:
            try:
                reply = yield self.build(call)
            except ConnectionFailed as failure:
                delay = self.failure_delay(call, failure, attempt)
                if delay is None:
                    raise TransportError(
                        f"{call.method} {call.path}: {failure}", code="connection_failed"
                    ) from failure.error
                attempt += 1
                yield Sleep(delay)
                continue
            if reply.status == 401 and call.authenticated and self.can_refresh and not refreshed:
                refreshed = True
                yield from self.refresh()
                continue
            if reply.status >= 400:
                delay = self.retry_delay(call, reply, attempt)
                if delay is not None:
                    attempt += 1
                    yield Sleep(delay)
                    continue
                raise error_from_response(
                    reply.status, reply.headers, decode(reply), reason=reply.reason
                )
            return Response(reply.status, reply.headers, decode(reply))

    # --- retry policy -----------------------------------------------------------------------------
    def retry_delay(self, call: Call, reply: Reply, attempt: int) -> float | None:
        """Seconds to wait before sending `call` again after this error reply, or None to raise.
        429, and 503 with Retry-After, mean the server did nothing: any call is retried, after
        Retry-After. 502/503/504, and 409 `idempotency_key_in_flight` (the first of two
        identical creations is still running), are retried for calls safe to repeat."""
        if attempt >= self.max_retries:
            return None
        status = reply.status
        retry_after = retry_after_seconds(reply.headers)
        server_did_nothing = status == 429 or (status == 503 and retry_after is not None)
        transient = call.safe_to_repeat and (
            status in (502, 503, 504)
            or (status == 409 and _code(reply) == "idempotency_key_in_flight")
        )
        if not (server_did_nothing or transient):
            return None
        if retry_after is not None:
            return retry_after if retry_after <= MAX_RETRY_AFTER else None
        return backoff(attempt)

    def failure_delay(self, call: Call, failure: ConnectionFailed, attempt: int) -> float | None:
        """Seconds to wait before resending after no answer, or None to raise: a connection
        never made is always retried, a dropped one only for calls safe to repeat."""
        if attempt >= self.max_retries:
            return None
        if failure.sent and not call.safe_to_repeat:
            return None
        return backoff(attempt)

    # --- authentication ---------------------------------------------------------------------------
    @property
    def can_refresh(self) -> bool:
        return bool(self.credentials.refresh) and not self.credentials.api_key

    def ensure_access(self) -> Flow[None]:
        """With a refresh token and no access token yet, get one first."""
        if self.can_refresh and not self.credentials.access:
            yield from self.refresh()

    def refresh(self) -> Flow[None]:
        """POST /api/auth/refresh: a new access token (and refresh token, if the server rotates
        them) in place of the old."""
        response = yield from self.request(
            Call(
                "POST",
                "/api/auth/refresh",
                body={"refresh": self.credentials.refresh},
                idempotent=True,
                authenticated=False,
            )
        )
        body = response.body if isinstance(response.body, Mapping) else {}
        access = body.get("token") or body.get("access")
        if not isinstance(access, str):
            raise SvermError("the refresh answer has no access token", body=response.body)
        refresh = body.get("refresh") if isinstance(body.get("refresh"), str) else None
        self.credentials = Credentials(access, refresh or self.credentials.refresh, None)

    def login(self, email: str, password: str) -> Flow[None]:
        response = yield from self.request(
            Call(
                "POST",
                "/api/auth/login",
                body={"email": email, "password": password},
                idempotent=True,
                authenticated=False,
            )
        )
        body = response.body if isinstance(response.body, Mapping) else {}
        access, refresh = body.get("token") or body.get("access"), body.get("refresh")
        if not isinstance(access, str):
            raise SvermError("the login answer has no access token", body=response.body)
        self.credentials = Credentials(access, refresh if isinstance(refresh, str) else None)

    # --- WebSockets -------------------------------------------------------------------------------
    def ws_target(self, path: str, params: Mapping[str, Any]) -> WsOpen:
        """The stream's ws(s):// URL and headers. The credential goes in the Authorization header,
        not the URL (which proxies and servers log)."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode([(key, query_value(value)) for key, value in params.items()])
        url = urlunsplit((scheme, parts.netloc, parts.path + path, query, ""))
        return WsOpen(url, self.auth_headers(path), self.default_headers["User-Agent"])


def decode(reply: Reply) -> Any:
    """The body: JSON (numbers with fractions as Decimal) when it says so, else text."""
    content_type = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if not reply.content:
        return None
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json_loads(reply.content)
        except ValueError:
            pass
    return reply.content.decode("utf-8", errors="replace")


def _code(reply: Reply) -> str | None:
    body = decode(reply)
    if not isinstance(body, Mapping):
        return None
    envelope = body.get("error")
    found = envelope.get("code") if isinstance(envelope, Mapping) else body.get("code")
    return found if isinstance(found, str) else None


def backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, 4 s, 8 s... each shortened by up to a quarter at random (jitter), so
    clients that failed together do not retry together."""
    delay = min(BACKOFF_BASE * 2**attempt, BACKOFF_MAX)
    return delay * (1 - 0.25 * random.random())  # noqa: S311 (jitter, not a secret)


def pages(core: Core, call: Call, parse: Any, *, limit: int | None = None) -> Flow[None]:
    """Every row of an /api keyset list (`{"data", "pageInfo": {"endCursor", "hasNextPage"}}`),
    page after page, as Items parsed with `parse`; at most `limit` rows."""
    params = dict(call.params or {})
    count = 0
    if limit is not None and limit <= 0:
        return
    while True:
        response = yield from core.request(_with_params(call, params))
        body = response.body if isinstance(response.body, Mapping) else {}
        for row in body.get("data") or []:
            yield Item(parse(row))
            count += 1
            if limit is not None and count >= limit:
                return
        info = body.get("pageInfo") or {}
        cursor = info.get("endCursor")
        if not info.get("hasNextPage") or not cursor:
            return
        params["after"] = cursor


def _with_params(call: Call, params: Mapping[str, Any]) -> Call:
    return Call(
        call.method,
        call.path,
        params=dict(params),
        body=call.body,
        headers=call.headers,
        idempotent=call.idempotent,
        timeout=call.timeout,
        authenticated=call.authenticated,
    )


def collect(flow: Flow[Any]) -> Flow[list[Any]]:
    """An iterating flow's Items as one list (for the calls that answer lists)."""
    found: list[Any] = []
    outcome: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(outcome)
        except StopIteration:
            return found
        outcome = error = None
        if isinstance(step, Item):
            found.append(step.value)
            continue
        try:
            outcome = yield step
        except Exception as thrown:  # the step's failure, for the flow to handle
            error = thrown


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}

"""The synchronous client: `Client`, its resources, and the driver that performs the core's steps
with httpx and websockets' threading client."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Iterator, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from . import _operations as ops
from ._core import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ConnectionFailed,
    Core,
    Flow,
    Item,
    Reply,
    Send,
    Sleep,
    WsClose,
    WsClosed,
    WsOpen,
    WsReceive,
    WsRefused,
)
from .models import (
    Credentials,
    Event,
    Run,
    RunCreated,
    RunResult,
    Swarm,
    SwarmVersion,
    Template,
    Usage,
    Workspace,
)

T = TypeVar("T")

# Connecting (TCP and TLS) should be quick; reads may be long (GET .../wait sets its own).
CONNECT_TIMEOUT = 10.0
WS_MAX_MESSAGE_BYTES = 16 * 2**20


def _reply(response: httpx.Response) -> Reply:
    return Reply(
        response.status_code,
        {key.lower(): value for key, value in response.headers.items()},
        response.content,
        response.reason_phrase,
    )


def _connection_failed(error: httpx.TransportError) -> ConnectionFailed:
    # A request that never had a connection cannot have reached the server.
    never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return ConnectionFailed(error, sent=not never_sent)


def _ws_refused(error: InvalidStatus) -> WsRefused:
    response = error.response
    headers = {key.lower(): value for key, value in response.headers.raw_items()}
    return WsRefused(
        Reply(response.status_code, headers, response.body or b"", response.reason_phrase)
    )


def resolve_settings(
    base_url: str | None,
    api_key: str | None,
    token: str | None,
    refresh_token: str | None,
) -> tuple[str, Credentials]:
    """The server and credentials: as given, else $SVERM_URL and $SVERM_API_KEY (the key only
    when no credential was given at all, so an explicit token is never overridden)."""
    url = base_url or os.environ.get("SVERM_URL") or DEFAULT_BASE_URL
    if api_key is None and token is None and refresh_token is None:
        api_key = os.environ.get("SVERM_API_KEY") or None
    return url, Credentials(access=token, refresh=refresh_token, api_key=api_key)


class _Driver:
    """Performs a flow's steps: HTTP through httpx, sleeps, one WebSocket per flow."""

    def __init__(self, http: httpx.Client, core: Core) -> None:
        self.http = http
        self.core = core

    def run(self, flow: Flow[T]) -> T:
        """Drive a flow that answers one value."""
        socket: list[ClientConnection] = []
        outcome: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    step = flow.throw(error) if error is not None else flow.send(outcome)
                except StopIteration as stop:
                    return stop.value
                if isinstance(step, Item):
                    raise TypeError("this operation yields items: iterate it")
                outcome, error = self.perform(step, socket)
        finally:
            flow.close()
            self.close_socket(socket)

    def iterate(self, flow: Flow[Any]) -> Generator[Any, None, None]:
        """Drive a flow that yields items (list rows, stream events), yielding them."""
        socket: list[ClientConnection] = []
        outcome: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    step = flow.throw(error) if error is not None else flow.send(outcome)
                except StopIteration:
                    return
                if isinstance(step, Item):
                    outcome, error = None, None
                    yield step.value
                    continue
                outcome, error = self.perform(step, socket)
        finally:
            flow.close()
            self.close_socket(socket)

    def perform(self, step: Any, socket: list[ClientConnection]) -> tuple[Any, Exception | None]:
        """Do one step: its outcome, or the exception to throw into the flow."""
        if isinstance(step, Send):
            try:
                return self.send(step), None
            except httpx.TransportError as failure:
                return None, _connection_failed(failure)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None, None
        if isinstance(step, WsOpen):
            self.close_socket(socket)
            try:
                socket.append(
                    ws_connect(
                        step.url,
                        additional_headers=step.headers,
                        user_agent_header=step.user_agent or None,
                        open_timeout=CONNECT_TIMEOUT,
                        max_size=WS_MAX_MESSAGE_BYTES,
                    )
                )
            except InvalidStatus as refused:
                return None, _ws_refused(refused)
            except (OSError, InvalidHandshake, TimeoutError) as failure:
                return None, ConnectionFailed(failure, sent=False)
            return None, None
        if isinstance(step, WsReceive):
            try:
                return socket[0].recv(), None
            except ConnectionClosed as closed:
                self.close_socket(socket)
                frame = closed.rcvd
                return None, WsClosed(frame.code if frame else None, frame.reason if frame else "")
        if isinstance(step, WsClose):
            self.close_socket(socket)
            return None, None
        raise TypeError(f"unknown step {step!r}")

    def send(self, step: Send) -> Reply:
        request = self.http.build_request(
            step.method,
            step.url,
            params=step.params,
            headers=step.headers,
            content=step.content,
            timeout=self.http.timeout if step.timeout is None else _timeout(step.timeout),
        )
        response = self.http.send(request)
        try:
            response.read()
        finally:
            response.close()
        return _reply(response)

    @staticmethod
    def close_socket(socket: list[ClientConnection]) -> None:
        while socket:
            with contextlib.suppress(Exception):
                socket.pop().close()


def _timeout(read: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=CONNECT_TIMEOUT)


# --- resources -----------------------------------------------------------------------------------
class _Resource:
    def __init__(self, client: Client) -> None:
        self._core = client._core
        self._driver = client._driver


class Templates(_Resource):
    def list(self) -> list[Template]:
        """The templates (built-in and the workspace's), with cost ranges."""
        return self._driver.run(ops.template_list(self._core))

    def get(self, template_id: str) -> str:
        """A template's YAML definition, as text."""
        return self._driver.run(ops.template_get(self._core, template_id))


class EventStream:
    """A run's live events (`client.runs.stream(...)`): iterate it; it ends after the terminal
    event. Use it as a context manager, or call `close()`, to let go of it earlier."""

    def __init__(self, driver: _Driver, flow: Flow[None], position: ops.StreamPosition) -> None:
        self._position = position
        self._events = driver.iterate(flow)

    @property
    def last_seq(self) -> int:
        """The seq of the last event delivered (where a new stream would resume)."""
        return self._position.last_seq

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Runs(_Resource):
    def create(
        self,
        task: str,
        *,
        template: str | None = None,
        definition: Mapping[str, Any] | str | None = None,
        max_budget_usd: Decimal | str | int | float | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> RunCreated:
        """Start a run of a template (its id) or a definition (a dict, or YAML/JSON text) on
        `task`, under `max_budget_usd` (default: the server's, $5.00). Extra keywords go into the
        body as they are (`webhook_url=`, `pause_on_budget=`). An Idempotency-Key is always sent
        (`idempotency_key`, else a new uuid4), so a retried create never starts two runs."""
        return self._driver.run(
            ops.run_create(
                self._core,
                task,
                template=template,
                definition=definition,
                max_budget_usd=max_budget_usd,
                idempotency_key=idempotency_key,
                extra=extra,
            )
        )

    def get(self, run_id: str) -> Run:
        return self._driver.run(ops.run_get(self._core, run_id))

    def list(
        self,
        *,
        status: str | None = None,
        limit: int | None = None,
        filter: Mapping[str, Any] | str | None = None,
        order_by: Any = None,
        page_size: int = 100,
        **params: Any,
    ) -> Iterator[Run]:
        """The workspace's runs, newest first (or by `order_by`), fetched `page_size` at a time
        as you iterate; at most `limit`. `filter`: the /api filter (a dict, sent as JSON)."""
        return self._driver.iterate(
            ops.run_list(
                self._core,
                status=status,
                limit=limit,
                filter=filter,
                order_by=order_by,
                page_size=page_size,
                params=params,
            )
        )

    def result(self, run_id: str) -> RunResult:
        """The output (markdown), cost report, agent log and elapsed time."""
        return self._driver.run(ops.run_result(self._core, run_id))

    def cancel(self, run_id: str) -> Run:
        """Cancel: a queued run answers `cancelled`, a running one `running` and stops within a
        second (`wait` for it)."""
        return self._driver.run(ops.run_cancel(self._core, run_id))

    def events(self, run_id: str, *, after: int = 0, page_size: int = 100) -> Iterator[Event]:
        """The run's stored events after seq `after`, in order, paged as you iterate."""
        return self._driver.iterate(
            ops.run_events(self._core, run_id, after=after, page_size=page_size)
        )

    def stream(
        self,
        run_id: str,
        *,
        after: int = 0,
        max_reconnects: int = ops.STREAM_MAX_RECONNECTS,
    ) -> EventStream:
        """The run's events live over its WebSocket (stored ones after `after` first), ending
        after the terminal event. A dropped connection is reopened from the last event seen: no
        gap, no duplicate."""
        position = ops.StreamPosition()
        flow = ops.run_stream(
            self._core, run_id, after=after, position=position, max_reconnects=max_reconnects
        )
        return EventStream(self._driver, flow, position)

    def wait(self, run_id: str, *, timeout: float | None = None, poll: float = 30) -> Run:
        """Block until the run has finished (completed, failed, cancelled) or waits for an
        operator (awaiting_approval, awaiting_budget), and return it. Raises WaitTimeout (with the
        run as last seen) after `timeout` seconds; None waits for ever. Each request holds up to
        `poll` seconds on the server."""
        return self._driver.run(ops.run_wait(self._core, run_id, timeout=timeout, poll=poll))


class UsageResource(_Resource):
    def get(self, month: str | None = None) -> Usage:
        """Spend of a month (`YYYY-MM`, default this one) by swarm type (/v1/usage)."""
        return self._driver.run(ops.usage_get(self._core, month))

    def report(self, **params: Any) -> dict[str, Any]:
        """The /api/usage dashboard report (`group_by=`, `from_=`, `to=`...), as its JSON."""
        return self._driver.run(ops.usage_report(self._core, params))


class Swarms(_Resource):
    def list(
        self, *, limit: int | None = None, page_size: int = 100, **params: Any
    ) -> Iterator[Swarm]:
        """Swarms you can see, paged as you iterate; params are the API's (`include_deleted=`,
        `filter=`, `order_by=`, `source=`)."""
        return self._driver.iterate(
            ops.swarm_list(self._core, limit=limit, page_size=page_size, params=params)
        )

    def get(self, swarm_id: str) -> Swarm:
        return self._driver.run(ops.swarm_get(self._core, swarm_id))

    def create(self, *, workspace_id: str, name: str, **fields: Any) -> Swarm:
        """A swarm in the workspace; its version 1 from `instructions=`, `models=`... (snake_case
        keywords, sent camelCase)."""
        return self._driver.run(
            ops.swarm_create(self._core, workspace_id=workspace_id, name=name, fields=fields)
        )

    def delete(self, swarm_id: str) -> Swarm:
        """Move to the trash; the swarm as it now is (`deleted_at` set)."""
        return self._driver.run(ops.swarm_delete(self._core, swarm_id))

    def restore(self, swarm_id: str) -> Swarm:
        return self._driver.run(ops.swarm_restore(self._core, swarm_id))

    def run(
        self,
        swarm_id: str,
        task: str,
        *,
        max_budget_usd: Decimal | str | int | float | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Run:
        """Start a run of the swarm's default version (`version_id=` for another)."""
        return self._driver.run(
            ops.swarm_run(
                self._core,
                swarm_id,
                task,
                max_budget_usd=max_budget_usd,
                idempotency_key=idempotency_key,
                extra=extra,
            )
        )

    def versions(self, swarm_id: str, *, page_size: int = 100) -> Iterator[SwarmVersion]:
        return self._driver.iterate(ops.swarm_versions(self._core, swarm_id, page_size=page_size))


class Workspaces(_Resource):
    def list(self) -> list[Workspace]:
        """Every workspace you are a member of, with your role."""
        return self._driver.run(ops.workspace_list(self._core))


# --- the client ----------------------------------------------------------------------------------
class Client:
    """The synchronous sverm client.

    `Client(base_url, api_key="sk-sverm-...")`, or `token=`/`refresh_token=` for a JWT, or
    `Client.login(base_url, email, password)`. Without a credential it reads $SVERM_API_KEY (and
    $SVERM_URL without a base_url). Close it, or use it as a context manager."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        token: str | None = None,
        refresh_token: str | None = None,
        workspace: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        url, credentials = resolve_settings(base_url, api_key, token, refresh_token)
        self._core = Core(
            base_url=url,
            credentials=credentials,
            workspace=workspace,
            max_retries=max_retries,
            headers=headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=_timeout(timeout))
        self._driver = _Driver(self._http, self._core)
        self.templates = Templates(self)
        self.runs = Runs(self)
        self.usage = UsageResource(self)
        self.swarms = Swarms(self)
        self.workspaces = Workspaces(self)

    @classmethod
    def login(cls, base_url: str, email: str, password: str, **options: Any) -> Client:
        """A client logged in with email and password (POST /api/auth/login): it holds the
        access and refresh tokens, and refreshes the access token when it expires."""
        client = cls(base_url, token=None, refresh_token=None, api_key=None, **options)
        try:
            client._driver.run(client._core.login(email, password))
        except BaseException:
            client.close()
            raise
        return client

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def credentials(self) -> Credentials:
        """The credentials in use (after a refresh, the new access token)."""
        return self._core.credentials

    @property
    def workspace(self) -> str | None:
        """The workspace (`wsp_...`) /v1 calls act in with a JWT (header Sverm-Workspace)."""
        return self._core.workspace

    @workspace.setter
    def workspace(self, value: str | None) -> None:
        self._core.workspace = value

    @property
    def max_retries(self) -> int:
        return self._core.max_retries

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

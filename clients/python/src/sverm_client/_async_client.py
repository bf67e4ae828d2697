"""The asyncio client: `AsyncClient`, the same resources and operations as `Client` (the flows of
_operations), performed with httpx.AsyncClient and websockets' asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import _operations as ops
from ._client import (
    CONNECT_TIMEOUT,
    WS_MAX_MESSAGE_BYTES,
    _connection_failed,
    _reply,
    _timeout,
    _ws_refused,
    resolve_settings,
)
from ._core import (
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


class _AsyncDriver:
    """Performs a flow's steps with asyncio: HTTP through httpx, one WebSocket per flow."""

    def __init__(self, http: httpx.AsyncClient, core: Core) -> None:
        self.http = http
        self.core = core

    async def run(self, flow: Flow[T]) -> T:
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
                outcome, error = await self.perform(step, socket)
        finally:
            flow.close()
            await self.close_socket(socket)

    async def iterate(self, flow: Flow[Any]) -> AsyncGenerator[Any, None]:
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
                outcome, error = await self.perform(step, socket)
        finally:
            flow.close()
            await self.close_socket(socket)

    async def perform(
        self, step: Any, socket: list[ClientConnection]
    ) -> tuple[Any, Exception | None]:
        if isinstance(step, Send):
            try:
                return await self.send(step), None
            except httpx.TransportError as failure:
                return None, _connection_failed(failure)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None, None
        if isinstance(step, WsOpen):
            await self.close_socket(socket)
            try:
                socket.append(
                    await ws_connect(
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
                return await socket[0].recv(), None
            except ConnectionClosed as closed:
                await self.close_socket(socket)
                frame = closed.rcvd
                return None, WsClosed(frame.code if frame else None, frame.reason if frame else "")
        if isinstance(step, WsClose):
            await self.close_socket(socket)
            return None, None
        raise TypeError(f"unknown step {step!r}")

    async def send(self, step: Send) -> Reply:
        request = self.http.build_request(
            step.method,
            step.url,
            params=step.params,
            headers=step.headers,
            content=step.content,
            timeout=self.http.timeout if step.timeout is None else _timeout(step.timeout),
        )
        response = await self.http.send(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return _reply(response)

    @staticmethod
    async def close_socket(socket: list[ClientConnection]) -> None:
        while socket:
            with contextlib.suppress(Exception):
                await socket.pop().close()


# --- resources -----------------------------------------------------------------------------------
class _AsyncResource:
    def __init__(self, client: AsyncClient) -> None:
        self._core = client._core
        self._driver = client._driver


class AsyncTemplates(_AsyncResource):
    async def list(self) -> list[Template]:
        return await self._driver.run(ops.template_list(self._core))

    async def get(self, template_id: str) -> str:
        return await self._driver.run(ops.template_get(self._core, template_id))


class AsyncEventStream:
    """A run's live events (`client.runs.stream(...)`): `async for` over it; it ends after the
    terminal event. Use `async with`, or `await close()`, to let go of it earlier."""

    def __init__(
        self, driver: _AsyncDriver, flow: Flow[None], position: ops.StreamPosition
    ) -> None:
        self._position = position
        self._events = driver.iterate(flow)

    @property
    def last_seq(self) -> int:
        return self._position.last_seq

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def close(self) -> None:
        await self._events.aclose()

    aclose = close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncRuns(_AsyncResource):
    async def create(
        self,
        task: str,
        *,
        template: str | None = None,
        definition: Mapping[str, Any] | str | None = None,
        max_budget_usd: Decimal | str | int | float | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> RunCreated:
        """As `Client.runs.create`: always with an Idempotency-Key."""
        return await self._driver.run(
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

    async def get(self, run_id: str) -> Run:
        return await self._driver.run(ops.run_get(self._core, run_id))

    def list(
        self,
        *,
        status: str | None = None,
        limit: int | None = None,
        filter: Mapping[str, Any] | str | None = None,
        order_by: Any = None,
        page_size: int = 100,
        **params: Any,
    ) -> AsyncIterator[Run]:
        """As `Client.runs.list`, for `async for`."""
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

    async def result(self, run_id: str) -> RunResult:
        return await self._driver.run(ops.run_result(self._core, run_id))

    async def cancel(self, run_id: str) -> Run:
        return await self._driver.run(ops.run_cancel(self._core, run_id))

    def events(self, run_id: str, *, after: int = 0, page_size: int = 100) -> AsyncIterator[Event]:
        return self._driver.iterate(
            ops.run_events(self._core, run_id, after=after, page_size=page_size)
        )

    def stream(
        self,
        run_id: str,
        *,
        after: int = 0,
        max_reconnects: int = ops.STREAM_MAX_RECONNECTS,
    ) -> AsyncEventStream:
        """As `Client.runs.stream`, for `async for`."""
        position = ops.StreamPosition()
        flow = ops.run_stream(
            self._core, run_id, after=after, position=position, max_reconnects=max_reconnects
        )
        return AsyncEventStream(self._driver, flow, position)

    async def wait(self, run_id: str, *, timeout: float | None = None, poll: float = 30) -> Run:
        """As `Client.runs.wait`."""
        return await self._driver.run(ops.run_wait(self._core, run_id, timeout=timeout, poll=poll))


class AsyncUsage(_AsyncResource):
    async def get(self, month: str | None = None) -> Usage:
        return await self._driver.run(ops.usage_get(self._core, month))

    async def report(self, **params: Any) -> dict[str, Any]:
        return await self._driver.run(ops.usage_report(self._core, params))


class AsyncSwarms(_AsyncResource):
    def list(
        self, *, limit: int | None = None, page_size: int = 100, **params: Any
    ) -> AsyncIterator[Swarm]:
        return self._driver.iterate(
            ops.swarm_list(self._core, limit=limit, page_size=page_size, params=params)
        )

    async def get(self, swarm_id: str) -> Swarm:
        return await self._driver.run(ops.swarm_get(self._core, swarm_id))

    async def create(self, *, workspace_id: str, name: str, **fields: Any) -> Swarm:
        return await self._driver.run(
            ops.swarm_create(self._core, workspace_id=workspace_id, name=name, fields=fields)
        )

    async def delete(self, swarm_id: str) -> Swarm:
        return await self._driver.run(ops.swarm_delete(self._core, swarm_id))

    async def restore(self, swarm_id: str) -> Swarm:
        return await self._driver.run(ops.swarm_restore(self._core, swarm_id))

    async def run(
        self,
        swarm_id: str,
        task: str,
        *,
        max_budget_usd: Decimal | str | int | float | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Run:
        return await self._driver.run(
            ops.swarm_run(
                self._core,
                swarm_id,
                task,
                max_budget_usd=max_budget_usd,
                idempotency_key=idempotency_key,
                extra=extra,
            )
        )

    def versions(self, swarm_id: str, *, page_size: int = 100) -> AsyncIterator[SwarmVersion]:
        return self._driver.iterate(ops.swarm_versions(self._core, swarm_id, page_size=page_size))


class AsyncWorkspaces(_AsyncResource):
    async def list(self) -> list[Workspace]:
        return await self._driver.run(ops.workspace_list(self._core))


# --- the client ----------------------------------------------------------------------------------
class AsyncClient:
    """The asyncio sverm client: `Client`'s surface with awaitable methods and async iterators
    (`async for run in client.runs.list()`). Use `async with`, or `await client.close()`."""

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
        http_client: httpx.AsyncClient | None = None,
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
        self._http = http_client or httpx.AsyncClient(timeout=_timeout(timeout))
        self._driver = _AsyncDriver(self._http, self._core)
        self.templates = AsyncTemplates(self)
        self.runs = AsyncRuns(self)
        self.usage = AsyncUsage(self)
        self.swarms = AsyncSwarms(self)
        self.workspaces = AsyncWorkspaces(self)

    @classmethod
    async def login(cls, base_url: str, email: str, password: str, **options: Any) -> AsyncClient:
        """As `Client.login`: `client = await AsyncClient.login(url, email, password)`."""
        client = cls(base_url, token=None, refresh_token=None, api_key=None, **options)
        try:
            await client._driver.run(client._core.login(email, password))
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def credentials(self) -> Credentials:
        return self._core.credentials

    @property
    def workspace(self) -> str | None:
        return self._core.workspace

    @workspace.setter
    def workspace(self, value: str | None) -> None:
        self._core.workspace = value

    @property
    def max_retries(self) -> int:
        return self._core.max_retries

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"

"""WebSocket stream tests: the real ASGI application (origin check, session and token auth,
routing, consumers) driven by Channels' `WebsocketCommunicator` on the in-memory channel layer.

The consumers read the database from asgiref's worker thread, so these tests commit for real
(`django_db(transaction=True)`) and do their own ORM work through `database_sync_to_async`.
"""

import functools
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection, connections
from django.db.backends.sqlite3.base import SQLiteCursorWrapper
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from sverm.asgi import application
from swarms.models import Run, RunEvent
from tests.factories import add_event, add_events, make_run
from tests.runs.conftest import _waiting_on_locks

# Long enough for a cold first query, short enough that a missing message fails fast.
TIMEOUT = 5
MESSAGE_KEYS = {"seq", "type", "run_id", "agent_id", "data", "ts"}
STATUS_KEYS = {
    "type", "run_id", "swarm_id", "template_id", "status", "progress", "cost_usd",
    "agents_active", "agents_total", "ts",
}  # fmt: skip


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def _sqlite_waits_on_locks(monkeypatch):
    """The tests write from threads of their own (`in_own_thread`) while consumers read: on the
    suite's in-memory SQLite, a statement that meets another connection's table lock fails at
    once, so it is retried here as a file database's busy timeout would (as `executing` does
    for run threads, tests/runs/conftest.py)."""
    if connection.vendor == "sqlite":
        for name in ("execute", "executemany"):
            method = getattr(SQLiteCursorWrapper, name)
            monkeypatch.setattr(SQLiteCursorWrapper, name, _waiting_on_locks(method))


def jwt_for(user: User) -> str:
    return str(AccessToken.for_user(user))


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


class Stream:
    """One client socket: what it was told on connect, then its frames."""

    def __init__(self, communicator: WebsocketCommunicator, accepted: bool, detail: Any):
        self.communicator = communicator
        self.accepted = accepted
        # (False, close code) when refused before accept, as the origin check does.
        self.refused_code = None if accepted else detail

    async def next_output(self, timeout: float = TIMEOUT) -> dict:
        """The next ASGI message the server sends; fails the test after `timeout` (which also
        stops the application, as the communicator does)."""
        try:
            return await self.communicator.receive_output(timeout)
        except TimeoutError:
            pytest.fail(f"the server sent nothing within {timeout} s")

    async def next_json(self, timeout: float = TIMEOUT) -> dict:
        output = await self.next_output(timeout)
        assert output["type"] == "websocket.send", output
        return json.loads(output["text"])

    async def json_messages(self, count: int) -> list[dict]:
        return [await self.next_json() for _ in range(count)]

    async def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """The code of the server's close frame, which must be the next output."""
        output = await self.next_output(timeout)
        assert output["type"] == "websocket.close", output
        return output.get("code")

    async def until_close(self, limit: int = 5000) -> tuple[list[dict], int | None]:
        """Every JSON message up to the server's close frame, and that frame's code."""
        messages = []
        while len(messages) <= limit:
            output = await self.next_output()
            if output["type"] == "websocket.close":
                return messages, output.get("code")
            assert output["type"] == "websocket.send", output
            messages.append(json.loads(output["text"]))
        pytest.fail(f"no close after {limit} messages")

    async def assert_marker_next(self, group: str) -> None:
        """A marker sent to the workspace stream's group is what it sends next: it is open and
        sent nothing before the marker (instead of watching it stay quiet for a while)."""
        marker = {"marker": secrets.token_hex(8)}
        await get_channel_layer().group_send(group, {"type": "run.status", "run": marker})
        assert await self.next_json() == marker


@asynccontextmanager
async def open_stream(
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    token: str | None = None,
    timeout: float = TIMEOUT,
) -> AsyncIterator[Stream]:
    """Connect to `path` (with `?token=` appended when given) and hang up on the way out."""
    if token is not None:
        path += ("&" if "?" in path else "?") + f"token={token}"
    communicator = WebsocketCommunicator(application, path, headers=headers)
    accepted, detail = await communicator.connect(timeout=timeout)
    try:
        yield Stream(communicator, accepted, detail)
    finally:
        # A receive that timed out has cancelled the application already (and failed the test);
        # otherwise hang up, which also raises anything the application died of.
        if not communicator.future.cancelled():
            await communicator.disconnect(timeout=timeout)


async def refusal(path: str, timeout: float = TIMEOUT, **kwargs) -> int | None:
    """Connect and return the close code of a stream that is accepted only to be refused."""
    async with open_stream(path, timeout=timeout, **kwargs) as stream:
        assert stream.accepted, "refused before accept; expected an application close code"
        return await stream.close_code(timeout)


def store_silently(run: Run, count: int) -> list[RunEvent]:
    """Store the run's next `count` events without publishing them: what a channel layer that
    dropped the messages leaves behind."""
    events = []
    for _ in range(count):
        seq = Run.objects.get(pk=run.pk).last_seq + 1
        Run.objects.filter(pk=run.pk).update(last_seq=seq)
        events.append(
            RunEvent.objects.create(run=run, seq=seq, type="agent.message", data={"silent": seq})
        )
    return events


def in_own_thread(func):
    """`func` on a fresh thread (not the one the consumers query from, so it may block), which
    closes its database connections when done: one left open would keep PostgreSQL from
    dropping the test database."""

    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(call, thread_sensitive=False)


# The same helpers for the async tests (the ORM may not run on the event loop).
amake_run = database_sync_to_async(make_run)
aadd_event = database_sync_to_async(add_event)
aadd_events = database_sync_to_async(add_events)
astore_silently = database_sync_to_async(store_silently)


def seqs(messages: list[dict]) -> list[int]:
    return [message["seq"] for message in messages]

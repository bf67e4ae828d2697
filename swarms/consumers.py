"""WebSocket streams: one run's events (`/v1/swarms/{id}/stream`, `/api/runs/{id}/stream`) and a
workspace's run status changes (`/api/workspaces/{id}/stream`).

A run stream joins the run's group before it replays stored events (seq > `after`), then sends
live ones; anything already sent is dropped and any gap in seq is filled from the database, so a
client sees every event once, in order. After the terminal event the server closes normally.
"""

import re

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.roles import Role
from sverm.api.errors import Forbidden, NotFound
from swarms import selectors
from swarms.realtime import (
    TERMINAL_EVENT_TYPES,
    event_message,
    run_group,
    status_message,
    workspace_group,
)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
REPLAY_BATCH = 500
AFTER = re.compile(r"[0-9]{1,10}")


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """Shared refusal path: accept, then close with a 44xx code the client can read."""

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    def authenticated_caller(self):
        caller = self.scope.get("caller")
        if self.scope.get("auth_error") or caller is None or caller.user_id is None:
            return None
        return caller


class RunStreamConsumer(StreamConsumer):
    # "v1": the run must be in the call's one workspace; "api": anywhere the caller may see.
    flavour = "api"

    async def connect(self):
        self.group = None
        self.last_seq = 0
        self.closed = False
        caller = self.authenticated_caller()
        if caller is None:
            return await self.refuse(CLOSE_UNAUTHORIZED)
        after = self.query_param("after", "0")
        if not AFTER.fullmatch(after):
            return await self.refuse(CLOSE_BAD_REQUEST)
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        try:
            workspace_id = None
            if self.flavour == "v1":
                workspace_id = caller.v1_workspace(self.header("sverm-workspace"))
            run = await database_sync_to_async(selectors.run_for_stream)(
                caller=caller, run_id=run_id, workspace_id=workspace_id
            )
        except NotFound:
            return await self.refuse(CLOSE_NOT_FOUND)
        except Forbidden:
            return await self.refuse(CLOSE_FORBIDDEN)
        self.run_id = run.pk
        self.last_seq = int(after)
        # Join first, replay second: nothing published in between can be missed.
        self.group = run_group(run.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.replay(upto=None)
        if not self.closed:
            # A client resuming after the terminal event (its close frame lost) is done too.
            terminal = await database_sync_to_async(selectors.run_terminal_seq)(run_id=run.pk)
            if terminal is not None and terminal <= self.last_seq:
                self.closed = True
                await self.close(code=1000)

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    def query_param(self, name: str, default: str) -> str:
        from urllib.parse import parse_qs

        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        for key, value in self.scope.get("headers", []):
            if key.decode("latin-1").lower() == name:
                return value.decode("latin-1")
        return None

    async def replay(self, upto: int | None) -> None:
        """Send stored events after the last one sent (up to `upto`), in batches."""
        while not self.closed:
            events = await database_sync_to_async(selectors.run_events_after)(
                run_id=self.run_id, after=self.last_seq, upto=upto, limit=REPLAY_BATCH
            )
            for event in events:
                await self.deliver(event_message(event))
                if self.closed:
                    return
            if len(events) < REPLAY_BATCH:
                return

    async def deliver(self, message: dict) -> None:
        await self.send_json(message)
        self.last_seq = message["seq"]
        if message["type"] in TERMINAL_EVENT_TYPES:
            self.closed = True
            await self.close(code=1000)

    async def run_event(self, message):
        """A live event from the group: drop what was sent, fill a gap from the database."""
        event = message["event"]
        if self.closed or event["seq"] <= self.last_seq:
            return
        if event["seq"] > self.last_seq + 1:
            await self.replay(upto=event["seq"] - 1)
            if self.closed:
                return
        await self.deliver(event)


class V1RunStreamConsumer(RunStreamConsumer):
    """`/v1/swarms/{id}/stream`: only runs of the call's one workspace."""

    flavour = "v1"


class WorkspaceStreamConsumer(StreamConsumer):
    """Status, progress and cost of every run in a workspace: a snapshot of the active runs on
    connect, then each change as it happens."""

    async def connect(self):
        self.group = None
        caller = self.authenticated_caller()
        if caller is None:
            return await self.refuse(CLOSE_UNAUTHORIZED)
        workspace_id = self.scope["url_route"]["kwargs"]["workspace_id"]
        try:
            caller.require_role(workspace_id, Role.VIEWER)
        except NotFound:
            return await self.refuse(CLOSE_NOT_FOUND)
        except Forbidden:
            return await self.refuse(CLOSE_FORBIDDEN)
        self.group = workspace_group(workspace_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        runs = await database_sync_to_async(selectors.workspace_active_runs)(
            workspace_id=workspace_id
        )
        for run in runs:
            await self.send_json(status_message(run))

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_status(self, message):
        await self.send_json(message["run"])


class NoRouteConsumer(StreamConsumer):
    async def connect(self):
        await self.refuse(CLOSE_NOT_FOUND)

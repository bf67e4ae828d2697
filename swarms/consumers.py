"""WebSocket streams: one run's events (`/v1/swarms/{id}/stream`, `/api/runs/{id}/stream`) and a
workspace's run status changes (`/api/workspaces/{id}/stream`); SeqStreamConsumer, the run
stream's machinery, also serves other apps' streams of numbered events (a batch's).

A run stream joins the run's group before it replays stored events (seq > `after`), then sends
live ones; anything already sent is dropped and any gap in seq is filled from the database, so a
client sees every event once, in order. After the terminal event the server closes normally.

Live messages reach a stream through this process's relay of its group (swarms/fanout.py): one
channel-layer membership per group and process, whatever the number of streams. Each message's
JSON is encoded once per process, and the live messages are sent by a task of the stream's own,
so a busy stream neither waits on the others nor on Channels' per-message database cleanup.

The channel layer is at-most-once: a full mailbox drops messages, and a restarted Redis forgets
every group. So a stream whose relay is back in its group after the channel layer failed catches
up from the database at once; a stream that hears nothing live for RESYNC_SECONDS re-joins its
group and sends what the database has that it has not (which also catches a dropped terminal
event); and a stream whose channel layer fails waits the outage out instead of dying with the
connection.

Each consumer class declares the group kinds it joins (`joins`, swarms/realtime.py says which
message types each carries) and its handler table (`handlers`: message type -> method); a class
that would join a group whose messages it has no handler for is refused when it is defined, and
joining a group kind it did not declare raises. How to add a stream: StreamConsumer's docstring.
"""

import asyncio
import inspect
import json
import logging
import random
import re

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings

from accounts.roles import Role
from sverm import metrics
from sverm.api.errors import Forbidden, NotFound
from swarms import selectors
from swarms.engine.events import TERMINAL_EVENTS
from swarms.fanout import fanout
from swarms.realtime import (
    LAYER_ERRORS,
    RUN_GROUP,
    WORKSPACE_GROUP,
    StreamGroup,
    event_message,
    status_message,
)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
REPLAY_BATCH = 500
AFTER = re.compile(r"[0-9]{1,10}")
# A stream quiet for about this long (settings, with jitter so many streams do not resync at
# once) re-joins its group and catches up from the database.
RESYNC_SECONDS = settings.SVERM_STREAM_RESYNC_SECONDS
# Live messages a stream holds unsent before it drops (as a full channel-layer mailbox does).
LIVE_CAPACITY = settings.CHANNEL_CAPACITY

logger = logging.getLogger(__name__)


def frames(message: dict, key: str) -> list[tuple[dict, str]]:
    """The items under `key` of a live message (one dict or a list), each with its JSON text.
    Encoded once per message: the relay hands every stream of the process the same object."""
    cached = message.get("_frames")
    if cached is None:
        items = message[key]
        items = [items] if isinstance(items, dict) else items
        cached = message["_frames"] = [(item, json.dumps(item)) for item in items]
    return cached


def handlers_check(cls: type) -> None:
    """Refuse a stream class whose handler table misses a message type of the groups it joins,
    or names a method it does not have (its messages would be dropped, with a warning, live)."""
    name = cls.__name__
    for group in cls.joins:
        missing = sorted(group.message_types - cls.handlers.keys())
        if missing:
            raise TypeError(
                f"{name} joins {group.prefix!r} groups but has no handler for their "
                f"{', '.join(map(repr, missing))} messages: add them to {name}.handlers"
            )
    for message_type, method in cls.handlers.items():
        if not inspect.iscoroutinefunction(getattr(cls, method, None)):
            raise TypeError(
                f"{name}.handlers sends {message_type!r} to {method!r}, which is not an "
                f"async method of {name}"
            )


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """What every stream shares: the refusal path (accept, then close with a 44xx code the
    client can read), joining its group's relay without failing when the channel layer is
    down, the task that sends live messages, and a background resync that heals lost group
    membership and dropped messages.

    How to add a stream:
    1. Declare its group kind in swarms/realtime.py (a `StreamGroup`: the name prefix and every
       message type sent to it), with a group-name helper, and send to it from there.
    2. Subclass StreamConsumer with `joins = (THAT_GROUP,)` and `handlers` mapping each of its
       message types to an `async def handler(self, message)` of the class (which sends to the
       client). A type left out, or a method missing, fails when the class is defined.
    3. In `connect`: authenticate (`authenticated_caller`), check access with a selector and
       `refuse` with a 44xx code if need be; then `await self.join(THAT_GROUP, key)` before
       `accept()` and anything read from the database, and `self.start()` once it is sent.
       Override `rejoined` (the channel layer was lost: send a snapshot again) or `resync` (a
       quiet spell: catch up from the database) where messages can be lost.
    4. Route it in swarms/routing.py (another app's streams: in its own routing module, which
       sverm/asgi.py puts before swarms' catch-all, so swarms never imports that app).
    A stream of an object's numbered events (seq, `after=` resume, gap filling, closing after
    the terminal event) subclasses SeqStreamConsumer instead, which does steps 3's connect.
    """

    # The group kinds this stream joins, and its handler for each of their message types.
    joins: tuple[StreamGroup, ...] = ()
    handlers: dict[str, str] = {}

    group: str | None = None
    joined = False  # in the group as far as we know (a restarted Redis forgets groups)
    layer_up = True  # for logging the loss of the channel layer once
    heard_live = False  # a live message arrived since the last resync tick
    overflowing = False  # dropping live messages (logged once per spell)
    live: asyncio.Queue
    wake: asyncio.Event  # set by the relay when it is back in the group: resync now
    live_task: asyncio.Task | None = None
    resync_task: asyncio.Task | None = None
    refusing = False  # accepted only to be closed with a 44xx code
    counted = False  # in /metrics' open WebSockets

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        handlers_check(cls)

    async def __call__(self, scope, receive, send):
        """Channels' consumer loop for the client's messages only: live messages come from the
        group's relay into `self.live`, and `live_loop` sends them once the stream started."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = None  # no channel of its own: the relay's is in the group
        self.base_send = send
        self.live = asyncio.Queue()
        self.wake = asyncio.Event()
        try:
            await await_many_dispatch([receive], self.dispatch)
        except StopConsumer:
            pass
        finally:
            self.stop()

    async def dispatch(self, message):
        """Channels' dispatch without the `close_old_connections` hop it makes before every
        handler (connect, each client message, disconnect): that hop is a thread-sensitive
        `sync_to_async`, so it queues on the one thread that every stream's database reads share,
        behind all of them, for nothing. The streams read the database only through
        `database_sync_to_async`, which closes stale connections around each call itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def live_put(self, message: dict) -> None:
        """A message from the group's relay (which must not wait on any one stream)."""
        if self.live.qsize() >= LIVE_CAPACITY:
            if not self.overflowing:
                logger.info(
                    "stream %s over capacity (%d live messages unsent): dropping; the database "
                    "fills the gap", self.group, self.live.qsize(),
                )  # fmt: skip
            self.overflowing = True
            self.joined = False  # so the next resync also sends what the drop lost
            return
        self.overflowing = False
        self.live.put_nowait(message)

    async def live_loop(self) -> None:
        while True:
            message = await self.live.get()
            self.heard_live = True
            method = self.handlers.get(message["type"])
            if method is None:
                logger.warning("stream %s: no handler for %r", self.group, message["type"])
                continue
            try:
                await getattr(self, method)(message)
            except Exception:
                # The stream goes on: the next event's gap fill or the resync sends what this
                # one did not.
                logger.warning(
                    "stream %s: a live message failed; catching up later", self.group,
                    exc_info=True,
                )  # fmt: skip

    def layer_lost(self, error: Exception) -> None:
        if self.layer_up:
            logger.warning(
                "stream %s: the channel layer is unreachable (%r); serving from the database",
                self.group, error,
            )  # fmt: skip
        self.layer_up = self.joined = False

    def layer_back(self) -> None:
        self.wake.set()

    async def refuse(self, code: int) -> None:
        self.refusing = True
        await self.accept()
        await self.close(code=code)

    async def accept(self, subprotocol=None, headers=None):
        if not self.refusing and not self.counted:  # `stop` uncounts it, however it ends
            self.counted = True
            metrics.websocket_opened(self.stream_name())
        await super().accept(subprotocol, headers)

    def stream_name(self) -> str:
        """The kind of stream for /metrics: its group kind (`run`, `workspace`, `batch`)."""
        return type(self).joins[0].prefix if type(self).joins else "none"

    async def join(self, group: StreamGroup, key: str) -> None:
        """Join the group of kind `group` for `key` (a run's or workspace's id): only a kind the
        class declared in `joins`, so its handlers cover every message the group carries."""
        if group not in type(self).joins:
            raise TypeError(
                f"{type(self).__name__} may not join {group.prefix!r} groups: they are not in "
                f"its `joins`, so nothing checked that its handlers take their messages"
            )
        self.group = group.name(key)
        await self.subscribe()

    async def subscribe(self) -> None:
        """Join (or re-join: it is idempotent) the stream's group; a channel layer that is down
        leaves the stream on the database until a later resync joins."""
        if self.channel_layer is None:
            return
        try:
            await fanout().join(self.channel_layer, self.group, self)
        except LAYER_ERRORS as error:
            self.layer_lost(error)
            return
        self.layer_up = True
        if not self.joined:
            self.joined = True
            await self.rejoined()

    async def rejoined(self) -> None:
        """Called when the group is joined after not being (on connect too)."""

    async def disconnect(self, code):
        self.stop()

    def start(self) -> None:
        """Send live messages (those held since the join first) and resync when quiet."""
        self.live_task = asyncio.create_task(self.live_loop())
        self.resync_task = asyncio.create_task(self.resync_loop())

    def stop(self) -> None:
        if self.counted:  # once, though both the disconnect and the consumer's end stop it
            self.counted = False
            metrics.websocket_closed(self.stream_name())
        for task in (self.live_task, self.resync_task):
            if task is not None:
                task.cancel()
        if self.group and self.channel_layer is not None:
            fanout().leave(self.channel_layer, self.group, self)

    def finished(self) -> bool:
        """The stream has said all it will (its socket is closing)."""
        return False

    async def resync_loop(self) -> None:
        while not self.finished():
            quiet = RESYNC_SECONDS * random.uniform(0.75, 1.25)  # noqa: S311
            try:
                await asyncio.wait_for(self.wake.wait(), quiet)
            except TimeoutError:
                # Live messages since the last tick, and nothing known lost: all is well. (A
                # membership known lost is never skipped: live messages heard before an outage
                # said nothing about after it.)
                if self.heard_live and self.joined:
                    self.heard_live = False
                    continue
            self.wake.clear()
            self.heard_live = False
            try:
                await self.subscribe()
                await self.resync()
            except Exception:
                logger.warning(
                    "stream %s could not resync; trying again", self.group, exc_info=True
                )

    async def resync(self) -> None:
        """Catch up after a quiet spell, once the group is (re-)joined or found unreachable."""

    def authenticated_caller(self):
        caller = self.scope.get("caller")
        if self.scope.get("auth_error") or caller is None or caller.user_id is None:
            return None
        return caller


class SeqStreamConsumer(StreamConsumer):
    """A stream of one object's numbered events (seq 1, 2, 3 ... stored before they are sent),
    resumable with `?after=<seq>`: it joins the object's group before it replays what is stored
    after `after`, drops what it already sent, fills any gap in seq from the database, and
    closes with 1000 after a terminal event. A run's events are one (RunStreamConsumer), a
    batch's another (batches/consumers.py).

    A subclass declares `joins` (the one group kind its object's events are published to),
    `handlers` (each of the group's message types to `on_live_events`, whose messages carry
    their events under `live_key`, or a method that calls `send_live`), `url_kwarg` and
    `terminal_types`, and implements `find` (the object's id when the caller may follow it,
    NotFound or Forbidden otherwise), `events_after`, `terminal_seq` and `message_of`: the
    three database reads run in a thread (`database_sync_to_async`)."""

    url_kwarg = ""
    terminal_types: frozenset[str] = frozenset()
    live_key = "events"

    async def find(self, caller, key: str) -> str:
        raise NotImplementedError

    def events_after(self, *, after: int, upto: int | None, limit: int) -> list:
        """Stored events with seq in (after, upto], oldest first, at most `limit`."""
        raise NotImplementedError

    def terminal_seq(self) -> int | None:
        """The seq of the object's terminal event, when it has one."""
        raise NotImplementedError

    def message_of(self, event) -> dict:
        """The wire shape of a stored event (with `seq` and `type`)."""
        raise NotImplementedError

    async def connect(self):
        self.last_seq = 0
        self.closed = False
        self.lock = asyncio.Lock()  # one sender at a time: live events, gap fills, the resync
        caller = self.authenticated_caller()
        if caller is None:
            return await self.refuse(CLOSE_UNAUTHORIZED)
        after = self.query_param("after", "0")
        if not AFTER.fullmatch(after):
            return await self.refuse(CLOSE_BAD_REQUEST)
        try:
            key = await self.find(caller, self.scope["url_route"]["kwargs"][self.url_kwarg])
        except NotFound:
            return await self.refuse(CLOSE_NOT_FOUND)
        except Forbidden:
            return await self.refuse(CLOSE_FORBIDDEN)
        self.last_seq = int(after)
        # Join first, replay second: nothing published in between can be missed.
        await self.join(self.joins[0], key)
        await self.accept()
        async with self.lock:
            await self.replay(upto=None)
        if not self.closed:
            # A client resuming after the terminal event (its close frame lost) is done too.
            terminal = await database_sync_to_async(self.terminal_seq)()
            if terminal is not None and terminal <= self.last_seq:
                self.closed = True
                await self.close(code=1000)
        if not self.closed:
            self.start()

    def finished(self) -> bool:
        return self.closed

    async def resync(self) -> None:
        """Send what the database has and the channel layer did not deliver (dropped from a full
        mailbox, or published while Redis restarted), the terminal event included."""
        async with self.lock:
            sent = await self.replay(upto=None)
        if sent:
            logger.info("stream %s: sent %d events the channel layer lost", self.group, sent)

    def query_param(self, name: str, default: str) -> str:
        from urllib.parse import parse_qs

        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        for key, value in self.scope.get("headers", []):
            if key.decode("latin-1").lower() == name:
                return value.decode("latin-1")
        return None

    async def replay(self, upto: int | None) -> int:
        """Send stored events after the last one sent (up to `upto`), in batches; how many."""
        sent = 0
        while not self.closed:
            events = await database_sync_to_async(self.events_after)(
                after=self.last_seq, upto=upto, limit=REPLAY_BATCH
            )
            for event in events:
                message = self.message_of(event)
                await self.deliver(message, json.dumps(message))
                sent += 1
                if self.closed:
                    return sent
            if len(events) < REPLAY_BATCH:
                return sent
        return sent

    async def deliver(self, message: dict, text: str) -> None:
        await self.send(text_data=text)
        self.last_seq = message["seq"]
        if message["type"] in self.terminal_types:
            self.closed = True
            await self.close(code=1000)

    async def on_live_events(self, message):
        """Live events from the group, in order (one publish's batch): drop what was sent, fill
        a gap from the database."""
        await self.send_live(frames(message, self.live_key))

    async def send_live(self, events: list[tuple[dict, str]]) -> None:
        async with self.lock:
            for event, text in events:
                if self.closed:
                    return
                if event["seq"] <= self.last_seq:
                    continue
                if event["seq"] > self.last_seq + 1:
                    logger.info(
                        "stream %s: seq %d arrived after %d; filling the gap from the "
                        "database", self.group, event["seq"], self.last_seq,
                    )  # fmt: skip
                    await self.replay(upto=event["seq"] - 1)
                    if self.closed:
                        return
                await self.deliver(event, text)


class RunStreamConsumer(SeqStreamConsumer):
    # "v1": the run must be in the call's one workspace; "api": anywhere the caller may see.
    flavour = "api"
    joins = (RUN_GROUP,)
    handlers = {"run.events": "run_events", "run.event": "run_event"}
    url_kwarg = "run_id"
    terminal_types = frozenset(TERMINAL_EVENTS)

    async def find(self, caller, key: str) -> str:
        workspace_id = None
        if self.flavour == "v1":
            workspace_id = caller.v1_workspace(self.header("sverm-workspace"))
        run = await database_sync_to_async(selectors.run_for_stream)(
            caller=caller, run_id=key, workspace_id=workspace_id
        )
        self.run_id = run.pk
        return run.pk

    def events_after(self, *, after: int, upto: int | None, limit: int) -> list:
        return selectors.run_events_after(run_id=self.run_id, after=after, upto=upto, limit=limit)

    def terminal_seq(self) -> int | None:
        return selectors.run_terminal_seq(run_id=self.run_id)

    def message_of(self, event) -> dict:
        return event_message(event)

    async def run_events(self, message):
        """Live events from the group, in order (one publish's batch)."""
        await self.send_live(frames(message, "events"))

    async def run_event(self, message):
        """One live event (what publishers before `run.events` sent)."""
        await self.send_live(frames(message, "event"))


class V1RunStreamConsumer(RunStreamConsumer):
    """`/v1/swarms/{id}/stream`: only runs of the call's one workspace."""

    flavour = "v1"


class WorkspaceStreamConsumer(StreamConsumer):
    """Status, progress and cost of every run in a workspace: a snapshot of the active runs on
    connect (and again after the channel layer was lost), then each change as it happens."""

    joins = (WORKSPACE_GROUP,)
    handlers = {"run.status": "run_status"}
    accepted = False

    async def connect(self):
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
        self.workspace_id = workspace_id
        await self.join(WORKSPACE_GROUP, workspace_id)
        await self.accept()
        self.accepted = True
        await self.send_snapshot()
        self.start()

    async def send_snapshot(self) -> None:
        runs = await database_sync_to_async(selectors.workspace_active_runs)(
            workspace_id=self.workspace_id
        )
        for run in runs:
            await self.send_json(status_message(run))

    async def rejoined(self) -> None:
        # Back in the group after the channel layer was lost: changes may have been missed.
        if self.accepted:
            await self.send_snapshot()

    async def run_status(self, message):
        ((_, text),) = frames(message, "run")
        await self.send(text_data=text)


class NoRouteConsumer(StreamConsumer):
    async def connect(self):
        await self.refuse(CLOSE_NOT_FOUND)

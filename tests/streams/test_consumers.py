"""The run and workspace streams over the real ASGI stack (origin check -> session/token auth ->
routing -> consumer) with Channels' WebsocketCommunicator on the in-memory channel layer.

Close codes: 4400 bad `after`, 4401 bad or missing credential, 4404 unknown or foreign run,
workspace or route, 1000 after a run's terminal event.
"""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import ApiKey, Membership, User
from accounts.roles import Role
from accounts.services import api_key_create, api_key_revoke, workspace_create
from sverm.money import money_json
from swarms import consumers
from swarms.models import Run, RunEvent
from swarms.realtime import event_message, publish, publish_many, run_group, workspace_group
from swarms.services.runs import run_cancel
from tests.factories import add_events, create_run, make_run
from tests.runs.conftest import executing  # noqa: F401  (the thread executor, for real runs)
from tests.streams.conftest import (
    MESSAGE_KEYS,
    STATUS_KEYS,
    aadd_event,
    aadd_events,
    amake_run,
    astore_silently,
    bearer,
    in_own_thread,
    jwt_for,
    open_stream,
    refusal,
    seqs,
)

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

# Every type a run emits, in a plausible order, ending in its terminal event.
LIFECYCLE = [
    "run.started",
    "agent.started",
    "agent.delegated",
    "agent.message",
    "agent.completed",
    "run.progress",
    "run.completed",
]
ORIGIN = b"origin"


@pytest.fixture
def jwt(user) -> str:
    return jwt_for(user)


@pytest.fixture
def key_of(user):
    """The raw secret of a new API key of `workspace` with `role`."""

    def make(workspace, role: str = Role.VIEWER) -> str:
        return api_key_create(workspace=workspace, name="stream", role=role, created_by=user)[1]

    return make


@pytest.fixture
def finished(workspace) -> Run:
    """A completed run of `workspace` whose events 1..7 are stored (published to nobody)."""
    run = make_run(workspace, status="completed")
    add_events(run, LIFECYCLE)
    return run


def run_path(run: Run | str, flavour: str = "api", after: int | str | None = None) -> str:
    run_id = run if isinstance(run, str) else run.pk
    path = f"/api/runs/{run_id}/stream" if flavour == "api" else f"/v1/swarms/{run_id}/stream"
    return path if after is None else f"{path}?after={after}"


def stored(run: Run) -> list[dict]:
    return [event_message(e) for e in RunEvent.objects.filter(run=run).order_by("seq")]


astored = database_sync_to_async(stored)


async def follow(path: str, **kwargs) -> tuple[list[dict], int | None]:
    """Everything a stream sends up to its close, and the close code."""
    async with open_stream(path, **kwargs) as stream:
        assert stream.accepted
        return await stream.until_close()


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------
ROUTES = ["/api/runs/{run}/stream", "/v1/swarms/{run}/stream", "/api/workspaces/{wsp}/stream"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "credential",
    [
        pytest.param({}, id="none"),
        pytest.param({"headers": [(b"authorization", b"Token abc")]}, id="not-bearer"),
        pytest.param({"token": "not-a-jwt"}, id="garbage-token"),
        pytest.param({"token": "sk-sverm-thisisnotakeyatall0123456789"}, id="unknown-key"),
        pytest.param({"headers": bearer("sk-sverm-nope")}, id="unknown-key-header"),
    ],
)
async def test_a_missing_or_bad_credential_is_closed_4401(finished, workspace, route, credential):
    path = route.format(run=finished.pk, wsp=workspace.pk)
    assert await refusal(path, **credential) == 4401


@pytest.mark.parametrize("route", ROUTES)
async def test_an_expired_tampered_or_refresh_jwt_is_closed_4401(user, finished, workspace, route):
    path = route.format(run=finished.pk, wsp=workspace.pk)
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    valid = jwt_for(user)
    tampered = valid[:-2] + ("AA" if not valid.endswith("AA") else "BB")
    refresh = str(RefreshToken.for_user(user))  # a refresh token is not an access token
    for token in (str(expired), tampered, refresh):
        assert await refusal(path, token=token) == 4401, token
    # The same user with a fresh access token gets in: the refusals were about the tokens.
    async with open_stream(path, token=valid) as stream:
        if route.startswith("/api/workspaces/"):
            await stream.assert_marker_next(workspace_group(workspace.pk))
        else:
            assert seqs([await stream.next_json()]) == [1]  # the replay


async def test_a_deactivated_users_jwt_and_keys_are_closed_4401(user, finished, key_of):
    raw = await database_sync_to_async(key_of)(finished.workspace)
    token = jwt_for(user)
    messages, code = await follow(run_path(finished), token=raw)
    assert code == 1000 and len(messages) == len(LIFECYCLE)
    await database_sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
    assert await refusal(run_path(finished), token=token) == 4401
    assert await refusal(run_path(finished), token=raw) == 4401


async def test_a_revoked_key_is_closed_4401(finished, key_of):
    raw = await database_sync_to_async(key_of)(finished.workspace)
    messages, code = await follow(run_path(finished, "v1"), headers=bearer(raw))
    assert (seqs(messages), code) == (list(range(1, 8)), 1000)

    key = await database_sync_to_async(ApiKey.objects.get)(workspace=finished.workspace)
    await database_sync_to_async(api_key_revoke)(api_key=key)
    assert await refusal(run_path(finished, "v1"), headers=bearer(raw)) == 4401
    assert await refusal(run_path(finished), token=raw) == 4401


@pytest.mark.parametrize("flavour", ["api", "v1"])
@pytest.mark.parametrize("kind", ["jwt", "key"])
@pytest.mark.parametrize("via", ["query", "header"])
async def test_a_jwt_or_key_in_the_query_or_header_opens_the_stream(
    finished, jwt, key_of, flavour, kind, via
):
    secret = jwt if kind == "jwt" else await database_sync_to_async(key_of)(finished.workspace)
    credential = {"token": secret} if via == "query" else {"headers": bearer(secret)}
    messages, code = await follow(run_path(finished, flavour), **credential)
    assert seqs(messages) == list(range(1, 8))
    assert code == 1000


async def test_the_session_cookie_of_a_signed_in_user_opens_the_stream(user, finished):
    browser = Client()
    await database_sync_to_async(browser.force_login)(user)
    cookie = [(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())]

    messages, code = await follow(run_path(finished), headers=cookie)
    assert (seqs(messages), code) == (list(range(1, 8)), 1000)
    same_site = [*cookie, (ORIGIN, b"http://localhost:8000")]
    messages, code = await follow(run_path(finished), headers=same_site)
    assert (seqs(messages), code) == (list(range(1, 8)), 1000)
    # A page on another site cannot ride the cookie.
    async with open_stream(
        run_path(finished), headers=[*cookie, (ORIGIN, b"http://evil.example")]
    ) as stream:
        assert not stream.accepted
    assert await refusal(run_path(finished), headers=[(b"cookie", b"sessionid=forged")]) == 4401


# ---------------------------------------------------------------------------------------------
# Origin
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example", b"https://localhost.evil.example", b"null", b"http://127.0.0.2"],
)
async def test_a_foreign_origin_is_refused_before_accept(finished, jwt, origin):
    async with open_stream(run_path(finished), token=jwt, headers=[(ORIGIN, origin)]) as stream:
        assert not stream.accepted
        assert stream.refused_code == 1000  # Daphne answers a close before accept with 403


@pytest.mark.parametrize(
    "origin", [b"http://localhost", b"http://localhost:8000", b"https://127.0.0.1:8443"]
)
async def test_an_allowed_origin_or_none_is_accepted(finished, jwt, origin):
    messages, code = await follow(run_path(finished), token=jwt, headers=[(ORIGIN, origin)])
    assert (seqs(messages), code) == (list(range(1, 8)), 1000)


# ---------------------------------------------------------------------------------------------
# Which runs, routes and `after` values
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["api", "v1"])
async def test_a_foreign_or_unknown_run_is_closed_4404(
    finished, other_workspace, jwt, key_of, flavour
):
    foreign = await amake_run(other_workspace, status="completed")
    await aadd_events(foreign, ["run.started", "run.completed"])
    raw = await database_sync_to_async(key_of)(finished.workspace)
    for credential in ({"token": jwt}, {"headers": bearer(raw)}):
        assert await refusal(run_path(foreign, flavour), **credential) == 4404
        assert await refusal(run_path("run_doesnotexist", flavour), **credential) == 4404
        # Same caller, own run: open.
        messages, code = await follow(run_path(finished, flavour), **credential)
        assert (len(messages), code) == (len(LIFECYCLE), 1000)


@pytest.mark.parametrize(
    "path",
    ["/", "/nothing", "/api/runs/run_x/stream/more", "/api/runs/run_x", "/v1/swarms/run_x",
     "/api/workspaces/wsp_x/streams"],
)  # fmt: skip
async def test_an_unknown_route_is_closed_4404(jwt, path):
    assert await refusal(path, token=jwt) == 4404
    assert await refusal(path) == 4404


@pytest.mark.parametrize(
    "path",
    ["/api/runs/run_%00x/stream", "/v1/swarms/run_%00x/stream", "/api/workspaces/%00/stream"],
)
async def test_a_nul_in_a_stream_id_is_closed_4404_not_a_database_error(
    jwt, key_of, workspace, path
):
    raw = await database_sync_to_async(key_of)(workspace)
    assert await refusal(path, token=jwt) == 4404
    assert await refusal(path, headers=bearer(raw)) == 4404


@pytest.mark.parametrize("token", ["sk-sverm-abcd%00efgh0123456789", "sk-sverm-%00"])
async def test_a_key_with_a_nul_is_closed_4401(finished, token):
    assert await refusal(run_path(finished), token=token) == 4401


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "1e3", "0x10", "%201", "1%20"])
@pytest.mark.parametrize("flavour", ["api", "v1"])
async def test_a_bad_after_is_closed_4400(finished, jwt, after, flavour):
    assert await refusal(run_path(finished, flavour, after), token=jwt) == 4400


async def test_a_non_decimal_digit_after_is_closed_4400(finished, jwt):
    assert await refusal(run_path(finished, after="%C2%B2"), token=jwt, timeout=1) == 4400


@pytest.mark.parametrize("after", ["", "00", "0"])
async def test_an_empty_or_zero_after_replays_from_the_start(finished, jwt, after):
    messages, code = await follow(run_path(finished, after=after), token=jwt)
    assert (seqs(messages), code) == (list(range(1, 8)), 1000)


# ---------------------------------------------------------------------------------------------
# /v1 acts in one workspace
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def two_workspaces(user, workspace, other_workspace, make_user, key_of):
    """`user` is admin of `workspace` (A, its oldest membership) and viewer of `other_workspace`
    (B); each has a finished run. A third workspace exists that `user` is not in."""
    Membership.objects.create(workspace=other_workspace, user=user, role=Role.VIEWER)
    runs = {}
    for name, ws in (("A", workspace), ("B", other_workspace)):
        runs[name] = make_run(ws, status="completed")
        add_events(runs[name], ["run.started", "run.completed"])
    third = workspace_create(name="Third", owner=make_user())
    return {
        "runs": runs,
        "ids": {"A": workspace.pk, "B": other_workspace.pk, "C": third.pk},
        "key_a": key_of(workspace),
        "jwt": jwt_for(user),
    }


WSP = b"sverm-workspace"


@pytest.mark.parametrize(
    "credential, flavour, run, header, expected",
    [
        ("key_a", "v1", "A", None, 1000),
        ("key_a", "v1", "B", None, 4404),  # the key acts in A only, though its user is in B
        ("key_a", "api", "B", None, 4404),
        ("key_a", "v1", "A", "A", 1000),
        ("key_a", "v1", "B", "B", 4404),  # a header cannot widen a key
        ("key_a", "v1", "A", "B", 4404),  # nor point it elsewhere
        ("jwt", "api", "A", None, 1000),
        ("jwt", "api", "B", None, 1000),  # /api: anywhere the user is a member
        ("jwt", "v1", "A", None, 1000),  # /v1 default: the oldest membership
        ("jwt", "v1", "B", None, 4404),
        ("jwt", "v1", "B", "B", 1000),
        ("jwt", "v1", "A", "B", 4404),
        ("jwt", "v1", "A", "C", 4404),  # not a member of C
        ("jwt", "v1", "A", "wsp_unknown", 4404),
    ],
)
async def test_v1_streams_only_runs_of_the_calls_one_workspace(
    two_workspaces, credential, flavour, run, header, expected
):
    headers = bearer(two_workspaces[credential])
    if header is not None:
        headers.append((WSP, two_workspaces["ids"].get(header, header).encode()))
    async with open_stream(run_path(two_workspaces["runs"][run], flavour), headers=headers) as s:
        assert s.accepted
        messages, code = await s.until_close()
    assert code == expected
    assert seqs(messages) == ([1, 2] if expected == 1000 else [])


# ---------------------------------------------------------------------------------------------
# Replay, live, dedupe, gap fill
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["api", "v1"])
@pytest.mark.parametrize("after", [0, 1, 4, 6])
async def test_a_finished_run_replays_what_is_after_after_then_closes_1000(
    finished, jwt, flavour, after
):
    messages, code = await follow(run_path(finished, flavour, after), token=jwt)
    assert seqs(messages) == list(range(after + 1, 8))
    assert messages == (await astored(finished))[after:]
    assert messages[-1]["type"] == "run.completed"
    assert code == 1000


async def test_a_message_is_seq_type_run_agent_data_and_ts(finished, jwt):
    messages, _ = await follow(run_path(finished), token=jwt)
    events = await database_sync_to_async(list)(RunEvent.objects.filter(run=finished))
    assert len(messages) == len(events) == len(LIFECYCLE)
    for message, event in zip(messages, sorted(events, key=lambda e: e.seq), strict=True):
        assert set(message) == MESSAGE_KEYS
        assert message["seq"] == event.seq
        assert message["type"] == event.type
        assert message["run_id"] == finished.pk
        assert message["agent_id"] == event.agent_id
        assert message["data"] == event.data
        assert message["ts"] == event.created_at.isoformat().replace("+00:00", "Z")
        assert message["ts"].endswith("Z")
    # An event with no agent says null, not "".
    run = await amake_run(finished.workspace, status="completed")
    await aadd_event(run, "run.completed", cost_usd="0")
    (message,), _ = await follow(run_path(run), token=jwt)
    assert message["agent_id"] is None


async def test_replay_crosses_batch_boundaries(finished, jwt, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 2)
    for after in (0, 1, 2, 5):
        messages, code = await follow(run_path(finished, after=after), token=jwt)
        assert (seqs(messages), code) == (list(range(after + 1, 8)), 1000)


async def test_a_run_with_no_events_yet_says_nothing_until_one_is_stored(workspace, jwt):
    run = await amake_run(workspace, status="queued")
    async with open_stream(run_path(run), token=jwt) as stream:
        await aadd_event(run, "run.started")
        assert seqs([await stream.next_json()]) == [1]  # its first frame: nothing before it


async def test_live_events_follow_the_replay_in_order_and_the_terminal_one_closes_1000(
    workspace, jwt
):
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started", "agent.started"])
    async with open_stream(run_path(run), token=jwt) as stream:
        assert seqs(await stream.json_messages(2)) == [1, 2]
        for kind in ("agent.message", "agent.message", "run.progress", "agent.completed"):
            await aadd_event(run, kind, agent_id="w1")
        live = await stream.json_messages(4)
        assert seqs(live) == [3, 4, 5, 6]
        assert live == (await astored(run))[2:6]
        await aadd_event(run, "run.completed", cost_usd="0.01")
        last = await stream.next_json()
        assert (last["seq"], last["type"]) == (7, "run.completed")
        assert await stream.close_code() == 1000


@pytest.mark.parametrize("terminal", ["run.failed", "run.cancelled"])
async def test_every_terminal_event_closes_1000(workspace, jwt, terminal):
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started"])
    async with open_stream(run_path(run, "v1"), token=jwt) as stream:
        assert seqs([await stream.next_json()]) == [1]
        await aadd_event(run, terminal)
        assert (await stream.next_json())["type"] == terminal
        assert await stream.close_code() == 1000


async def test_cancelling_a_queued_run_closes_its_stream_1000(workspace, jwt):
    run = await amake_run(workspace, status="queued")
    async with open_stream(run_path(run), token=jwt) as stream:
        await in_own_thread(run_cancel)(run=run)
        message = await stream.next_json()
        assert (message["seq"], message["type"]) == (1, "run.cancelled")
        assert await stream.close_code() == 1000


async def test_events_already_sent_are_not_sent_again_when_published_live(workspace, jwt):
    run = await amake_run(workspace)
    events = await aadd_events(run, ["run.started", "agent.started", "agent.message"])
    layer = get_channel_layer()
    async with open_stream(run_path(run), token=jwt) as stream:
        assert seqs(await stream.json_messages(3)) == [1, 2, 3]
        # Re-published stored events (a retry, or a publish racing the replay) and a stale
        # message straight on the group are all dropped.
        await database_sync_to_async(publish)(events[0])
        await database_sync_to_async(publish)(events[2])
        stale = {"type": "run.event", "event": event_message(events[1])}
        await layer.group_send(run_group(run.pk), stale)
        await aadd_event(run, "agent.completed")
        assert seqs([await stream.next_json()]) == [4]
        await database_sync_to_async(publish)(events[2])
        await aadd_event(run, "run.completed", cost_usd="0")
        messages, code = await stream.until_close()
        assert (seqs(messages), code) == ([5], 1000)  # nothing of 3 again before it


async def test_a_reconnect_with_after_gets_no_duplicate_of_what_it_had(workspace, jwt):
    run = await amake_run(workspace)
    events = await aadd_events(run, ["run.started", "agent.started", "agent.message"])
    async with open_stream(run_path(run, after=2), token=jwt) as stream:
        assert seqs([await stream.next_json()]) == [3]
        for event in events:
            await database_sync_to_async(publish)(event)
        await aadd_event(run, "run.completed", cost_usd="0")
        messages, code = await stream.until_close()
        assert (seqs(messages), code) == ([4], 1000)  # nothing re-sent before it


async def test_a_gap_in_live_events_is_filled_from_the_database_in_order(workspace, jwt):
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started", "agent.started"])
    async with open_stream(run_path(run), token=jwt) as stream:
        assert seqs(await stream.json_messages(2)) == [1, 2]
        # 3 and 4 are stored, but their messages were lost; 5 is published.
        await astore_silently(run, 2)
        await aadd_event(run, "agent.message")
        filled = await stream.json_messages(3)
        assert seqs(filled) == [3, 4, 5]
        assert filled == (await astored(run))[2:5]
        # A gap that ends in the terminal event is filled, then the stream closes.
        await astore_silently(run, 1)
        await aadd_event(run, "run.completed")
        assert seqs(await stream.json_messages(2)) == [6, 7]
        assert await stream.close_code() == 1000


async def test_a_batch_message_is_sent_in_order_without_duplicates_and_with_gaps_filled(
    workspace, jwt
):
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started", "agent.started"])
    layer = get_channel_layer()
    async with open_stream(run_path(run), token=jwt) as stream:
        assert seqs(await stream.json_messages(2)) == [1, 2]
        # 3..6 are stored; one batch brings 2 (sent already), 5 and 6: 3 and 4 come from the
        # database, before 5.
        await astore_silently(run, 4)
        stored_now = await astored(run)
        batch = [stored_now[1], stored_now[4], stored_now[5]]
        await layer.group_send(run_group(run.pk), {"type": "run.events", "events": batch})
        filled = await stream.json_messages(4)
        assert seqs(filled) == [3, 4, 5, 6]
        assert filled == (await astored(run))[2:6]
        # The same batch again, and an old-style single event (publishers before run.events):
        # only what is new is sent.
        await layer.group_send(run_group(run.pk), {"type": "run.events", "events": batch})
        (seventh,) = await astore_silently(run, 1)
        old_style = {"type": "run.event", "event": event_message(seventh)}
        await layer.group_send(run_group(run.pk), old_style)
        assert seqs([await stream.next_json()]) == [7]
        # A published batch ending in the terminal event closes the stream after it.
        last = await astore_silently(run, 2)
        await database_sync_to_async(RunEvent.objects.filter(pk=last[1].pk).update)(
            type="run.completed"
        )
        last[1].type = "run.completed"
        await database_sync_to_async(publish_many)(last)
        messages, code = await stream.until_close()
    assert (seqs(messages), code) == ([8, 9], 1000)
    assert messages[-1]["type"] == "run.completed"


async def test_a_group_message_of_an_unknown_type_is_ignored(workspace, jwt):
    run = await amake_run(workspace)
    layer = get_channel_layer()
    async with open_stream(run_path(run), token=jwt) as stream:
        for kind in ("websocket.close", "websocket.disconnect", "run.later", "run_event"):
            await layer.group_send(run_group(run.pk), {"type": kind, "code": 4000})
        await aadd_event(run, "run.started")
        assert seqs([await stream.next_json()]) == [1]  # neither closed nor sent anything before


async def test_a_gap_longer_than_a_replay_batch_is_filled_whole(workspace, jwt, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 2)
    run = await amake_run(workspace)
    async with open_stream(run_path(run, after=0), token=jwt) as stream:
        await astore_silently(run, 5)
        await aadd_event(run, "run.completed")
        messages, code = await stream.until_close()
    assert (seqs(messages), code) == ([1, 2, 3, 4, 5, 6], 1000)


async def test_a_reconnect_after_a_gap_then_live_sees_each_seq_once(workspace, jwt):
    """Connected with after=1 while 2..3 were stored unseen; 4 arrives live."""
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started"])
    await astore_silently(run, 2)
    async with open_stream(run_path(run, after=1), token=jwt) as stream:
        assert seqs(await stream.json_messages(2)) == [2, 3]
        await aadd_event(run, "agent.message")
        assert seqs([await stream.next_json()]) == [4]
        await aadd_event(run, "run.completed", cost_usd="0")
        messages, code = await stream.until_close()
        assert (seqs(messages), code) == ([5], 1000)


@pytest.mark.parametrize("after", [7, 8])
async def test_reconnecting_after_the_terminal_event_closes_1000(finished, jwt, after):
    async with open_stream(run_path(finished, after=after), token=jwt, timeout=1) as stream:
        assert await stream.close_code(timeout=1) == 1000


# ---------------------------------------------------------------------------------------------
# The workspace stream
# ---------------------------------------------------------------------------------------------
def ws_path(workspace_id: str) -> str:
    return f"/api/workspaces/{workspace_id}/stream"


async def test_the_workspace_stream_is_for_members_only(
    workspace, other_workspace, jwt, key_of, member_of, make_user
):
    raw_a = await database_sync_to_async(key_of)(workspace)
    viewer = await database_sync_to_async(member_of)(workspace, Role.VIEWER)
    staff = await database_sync_to_async(make_user)(is_staff=True)
    assert await refusal(ws_path(other_workspace.pk), token=jwt) == 4404
    assert await refusal(ws_path(other_workspace.pk), headers=bearer(raw_a)) == 4404
    assert await refusal(ws_path("wsp_doesnotexist"), token=jwt) == 4404
    for credential in (jwt, raw_a, jwt_for(viewer)):
        async with open_stream(ws_path(workspace.pk), token=credential) as stream:
            assert stream.accepted
            await stream.assert_marker_next(workspace_group(workspace.pk))  # nothing is active
    async with open_stream(ws_path(other_workspace.pk), token=jwt_for(staff)) as stream:
        assert stream.accepted
        await stream.assert_marker_next(workspace_group(other_workspace.pk))


async def test_the_workspace_stream_starts_with_a_snapshot_of_active_runs(
    workspace, other_workspace, jwt
):
    new = amake_run
    queued = await new(workspace, status="queued")
    running = await new(workspace, status="running", agents_total=3)
    for status in ("completed", "failed", "cancelled"):
        await new(workspace, status=status)
    await new(other_workspace, status="running")
    async with open_stream(ws_path(workspace.pk), token=jwt) as stream:
        snapshot = await stream.json_messages(2)
        await stream.assert_marker_next(workspace_group(workspace.pk))  # no third active run
    assert [(m["run_id"], m["status"]) for m in snapshot] == [
        (queued.pk, "queued"),
        (running.pk, "running"),
    ]
    for message in snapshot:
        assert set(message) == STATUS_KEYS
        assert message["type"] == "run.status"
        assert message["swarm_id"] is None and message["template_id"] is None
        assert (message["progress"], message["cost_usd"], message["agents_active"]) == (0, 0.0, 0)
    assert snapshot[1]["agents_total"] == 3
    assert snapshot[0]["ts"] == queued.created_at.isoformat().replace("+00:00", "Z")


async def test_the_workspace_stream_sends_run_status_on_status_events_only(
    workspace, other_workspace, jwt
):
    run = await amake_run(workspace, agents_total=2)
    elsewhere = await amake_run(other_workspace)
    async with open_stream(ws_path(workspace.pk), token=jwt) as stream:
        assert (await stream.next_json())["run_id"] == run.pk  # the snapshot

        await aadd_event(run, "run.started")
        started = await stream.next_json()
        assert (started["type"], started["run_id"], started["status"]) == (
            "run.status", run.pk, "running",
        )  # fmt: skip

        for kind in ("agent.started", "agent.delegated", "agent.message", "agent.completed"):
            await aadd_event(run, kind, agent_id="w1")
        await aadd_event(elsewhere, "run.started")
        await aadd_event(elsewhere, "run.completed", cost_usd="1")

        await aadd_event(run, "run.progress", progress=0.5, cost_usd="0.012300", agents_active=2)
        progress = await stream.next_json()
        assert set(progress) == STATUS_KEYS
        assert (progress["status"], progress["progress"], progress["cost_usd"]) == (
            "running", 0.5, 0.0123,
        )  # fmt: skip
        assert (progress["agents_active"], progress["agents_total"]) == (2, 2)

        await aadd_event(run, "run.completed", cost_usd="0.02")
        done = await stream.next_json()
        assert (done["status"], done["progress"], done["cost_usd"], done["agents_active"]) == (
            "completed", 1.0, 0.02, 0,
        )  # fmt: skip
        await stream.assert_marker_next(workspace_group(workspace.pk))  # it outlives its runs


@pytest.mark.parametrize(
    "terminal, status", [("run.failed", "failed"), ("run.cancelled", "cancelled")]
)
async def test_the_workspace_stream_reports_failed_and_cancelled(workspace, jwt, terminal, status):
    run = await amake_run(workspace)
    await aadd_event(run, "run.progress", progress=0.25, cost_usd="0.5", agents_active=1)
    async with open_stream(ws_path(workspace.pk), token=jwt) as stream:
        snapshot = await stream.next_json()
        assert snapshot["progress"] == 0.25
        await aadd_event(run, terminal, cost_usd="0.75")
        message = await stream.next_json()
        if message == snapshot:
            # The progress event's own message: the process's publisher sends in order but
            # after the commit, so on a loaded machine it can reach the group after the stream
            # joined and read its snapshot. It repeats the snapshot's state, never an older one.
            message = await stream.next_json()
    assert (message["status"], message["cost_usd"], message["agents_active"]) == (status, 0.75, 0)
    assert message["progress"] == 0.25


# ---------------------------------------------------------------------------------------------
# A real run on the thread executor, followed to the end
# ---------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("executing")
async def test_a_real_run_streams_seq_1_to_n_then_closes_1000(
    settings, workspace, user, jwt, key_of
):
    settings.SVERM_SIMULATED_LATENCY = 0.05
    raw = await database_sync_to_async(key_of)(workspace)
    async with open_stream(ws_path(workspace.pk), token=jwt) as board:
        run = await database_sync_to_async(create_run)(workspace, created_by=user)
        async with (
            open_stream(run_path(run, after=0), token=jwt) as api,
            open_stream(run_path(run, "v1"), headers=bearer(raw)) as v1,
        ):
            messages, code = await api.until_close()
            v1_messages, v1_code = await v1.until_close()
        statuses = []
        while not statuses or statuses[-1]["status"] != "completed":
            message = await board.next_json()
            if message["run_id"] == run.pk:
                statuses.append(message)

    n = len(messages)
    assert n > 5
    assert seqs(messages) == list(range(1, n + 1))
    assert messages[0]["type"] == "run.started"
    assert messages[-1]["type"] == "run.completed"
    assert [m["type"] for m in messages].count("run.completed") == 1
    assert code == 1000
    assert (v1_messages, v1_code) == (messages, 1000)
    assert messages == await astored(run)

    assert statuses[0]["status"] in ("queued", "running")
    assert {m["status"] for m in statuses[1:-1]} <= {"running"}
    progress = [m["progress"] for m in statuses]
    assert progress == sorted(progress) and progress[-1] == 1.0
    finished = await database_sync_to_async(Run.objects.get)(pk=run.pk)
    # Rounded down to 6 places as in REST bodies (sverm/api/money.py), and as the terminal event.
    assert statuses[-1]["cost_usd"] == money_json(finished.current_cost_usd)
    assert statuses[-1]["cost_usd"] == messages[-1]["data"]["cost_usd"]


@pytest.mark.usefixtures("executing")
async def test_a_real_run_cancelled_mid_stream_ends_with_run_cancelled(
    settings, workspace, user, jwt
):
    settings.SVERM_SIMULATED_LATENCY = 0.2
    run = await database_sync_to_async(create_run)(workspace, created_by=user)
    async with open_stream(run_path(run), token=jwt) as stream:
        first = await stream.next_json()
        assert (first["seq"], first["type"]) == (1, "run.started")
        await in_own_thread(run_cancel)(run=run)
        rest, code = await stream.until_close()
    messages = [first, *rest]
    assert seqs(messages) == list(range(1, len(messages) + 1))
    assert messages[-1]["type"] == "run.cancelled"
    assert "run.completed" not in [m["type"] for m in messages]
    assert code == 1000
    assert messages == await astored(run)


async def test_a_lost_last_event_reaches_a_quiet_stream_by_the_resync(workspace, jwt, monkeypatch):
    """No later event reveals a gap when the terminal one is the message that was lost: a stream
    that hears nothing for RESYNC_SECONDS looks in the database itself."""
    monkeypatch.setattr(consumers, "RESYNC_SECONDS", 0.2)
    run = await amake_run(workspace)
    await aadd_events(run, ["run.started"])
    async with open_stream(run_path(run), token=jwt) as stream:
        assert seqs(await stream.json_messages(1)) == [1]
        await astore_silently(run, 1)

        @database_sync_to_async
        def finish_unpublished():
            Run.objects.filter(pk=run.pk).update(status="completed", last_seq=3)
            RunEvent.objects.create(run=run, seq=3, type="run.completed", data={"cost_usd": "0"})

        await finish_unpublished()
        messages, code = await stream.until_close()
    assert (seqs(messages), code) == ([2, 3], 1000)
    assert messages[-1]["type"] == "run.completed"


async def test_a_stream_makes_no_connection_cleanup_hop_of_its_own(finished, jwt, monkeypatch):
    """Channels' dispatch hops to the shared sync thread to close old connections before every
    handler; the streams' reads close them around themselves, so the streams skip that hop (it
    queued each of 100 streams opened at once behind all the others' reads)."""
    hops = []

    async def counted() -> None:
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counted)
    messages, code = await follow(run_path(finished, "v1"), token=jwt)
    assert seqs(messages) == list(range(1, 8)) and code == 1000
    assert hops == []

"""`WS /api/batches/{id}/stream`: on a real embedded server (Daphne, the thread executor, the
simulated provider), each item's start and end and the batch's progress arrive in seq order and
as the AsyncAPI document says, the stream closes with 1000 after `batch.completed`, a resume
with `after=<seq>` sends the rest without gap or duplicate, and refusals close 44xx. In process,
a gap in the live events is filled from the database as on run streams (the same machinery)."""

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.db.backends.sqlite3.base import SQLiteCursorWrapper

from batches.models import Batch, BatchEvent
from batches.realtime import batch_event_message
from swarms.realtime import BATCH_GROUP
from tests.batches.factories import make_batch
from tests.processes import embedded_server_env, manage, start_embedded_server, stop
from tests.runs.conftest import _waiting_on_locks
from tests.streams.conftest import jwt_for, open_stream, refusal, seqs
from tests.sverm.test_asyncapi import (
    API_KEY,
    TIMEOUT,
    WORKSPACE,
    ChannelMessages,
    close_code,
    read_stream,
)

ITEMS = 3


async def check_batch_stream(base: str, key: str) -> None:
    ws_base = "ws" + base.removeprefix("http")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT, headers=headers) as http:
        document = (await http.get("/asyncapi.json")).json()
        check = ChannelMessages(document, "batchStream")
        normal = close_code(document, "batchStream", "normal")
        created = await http.post(
            "/api/batches",
            json={"templateId": "research-swarm-v1", "totalBudgetUsd": 1.5, "concurrency": 2,
                  "inputs": [f"Hydrogen question {n}" for n in range(ITEMS)]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        url = f"{ws_base}/api/batches/{batch_id}/stream?token={key}"
        messages, code = await read_stream(url)

        assert code == normal
        for message in messages:
            check.check(message)
        assert seqs(messages) == list(range(1, len(messages) + 1))
        assert {m["batch_id"] for m in messages} == {batch_id}
        types = [m["type"] for m in messages]
        assert types[0] == "batch.progress" and types[-1] == "batch.completed"
        assert types.count("item.started") == types.count("item.completed") == ITEMS
        completed = [m["data"] for m in messages if m["type"] == "item.completed"]
        assert sorted(d["index"] for d in completed) == list(range(ITEMS))
        assert all(d["cost_usd"] > 0 and d["run_id"].startswith("run_") for d in completed)
        progress = [m["data"]["progress"] for m in messages if m["type"] == "batch.progress"]
        assert progress == sorted(progress) and progress[0] == 0  # it only goes up
        final = messages[-1]["data"]
        assert (final["completed"], final["progress"], final["status"]) == (ITEMS, 1, "completed")
        # Money adds up: the batch's cost is its items' (each rounded down), within the budget.
        item_costs = sum(Decimal(str(d["cost_usd"])) for d in completed)
        assert item_costs <= Decimal(str(final["cost_usd"])) <= Decimal("1.5")

        # Resuming after any seq sends exactly the rest; at or after the end, 1000 at once.
        resumed, code = await read_stream(f"{url}&after=4")
        assert (resumed, code) == (messages[4:], normal)
        assert await read_stream(f"{url}&after={messages[-1]['seq']}") == ([], normal)

        # The REST view of the same batch, and its results streamed through Daphne.
        body = (await http.get(f"/api/batches/{batch_id}")).json()
        assert (body["status"], body["counts"]["completed"]) == ("completed", ITEMS)
        response = await http.get(f"/api/batches/{batch_id}/results")
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert [line["index"] for line in lines] == list(range(ITEMS))
        assert all(line["status"] == "completed" and line["output"] for line in lines)

        refusals = [
            (f"/api/batches/{batch_id}/stream?token=sk-sverm-nope", "unauthorized"),
            (f"/api/batches/{batch_id}/stream", "unauthorized"),
            (f"/api/batches/{batch_id}/stream?after=-1&token={key}", "bad_request"),
            (f"/api/batches/bat_nothing/stream?token={key}", "not_found"),
        ]
        for path, name in refusals:
            expected = close_code(document, "batchStream", name)
            assert await read_stream(ws_base + path) == ([], expected), path


def test_a_running_server_streams_a_batch_to_its_end_and_resumes(tmp_path):
    env = embedded_server_env(tmp_path, SVERM_SIMULATED_LATENCY="0.05")
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", "batches@example.com", "--plan", "team")
    key = API_KEY.search(out).group(1)
    assert WORKSPACE.search(out)
    process, base, _ = start_embedded_server(env, tmp_path)
    try:
        asyncio.run(check_batch_stream(base, key))
    finally:
        stop(process)


# --- in process: the run stream's machinery, for batches ----------------------------------------
def store_silently(batch: Batch, types: list[str]) -> list[BatchEvent]:
    """Store the batch's next events without publishing them (a dropped live message)."""
    events = []
    for event_type in types:
        batch.last_seq += 1
        Batch.objects.filter(pk=batch.pk).update(last_seq=batch.last_seq)
        events.append(BatchEvent.objects.create(batch=batch, seq=batch.last_seq, type=event_type,
                                                data={"index": batch.last_seq}))  # fmt: skip
    return events


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def no_dispatch(monkeypatch):
    """No dispatch pass runs (the test writes the batch's events itself), and statements that
    meet the consumers' table locks on the in-memory SQLite wait (tests/streams/conftest.py)."""
    from batches import services

    monkeypatch.setattr(services.jobs, "enqueue", lambda *args, **kwargs: None)
    if connection.vendor == "sqlite":
        for name in ("execute", "executemany"):
            method = getattr(SQLiteCursorWrapper, name)
            monkeypatch.setattr(SQLiteCursorWrapper, name, _waiting_on_locks(method))


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_gap_in_live_batch_events_is_filled_from_the_database(
    user, workspace, other_user, catalog, no_dispatch
):
    from tests.factories import make_swarm

    swarm = await database_sync_to_async(make_swarm)(workspace, user)
    batch = await database_sync_to_async(make_batch)(swarm, tasks=2, concurrency=1)
    path = f"/api/batches/{batch.pk}/stream"
    async with open_stream(path, token=jwt_for(user)) as stream:
        assert seqs(await stream.json_messages(1)) == [1]  # the creation's progress
        # 2 and 3 stored but lost; 4 published live: 2 and 3 come from the database first.
        await database_sync_to_async(store_silently)(batch, ["item.started", "item.completed"])
        (fourth,) = await database_sync_to_async(store_silently)(batch, ["batch.progress"])
        live = {"type": "batch.events", "events": [batch_event_message(fourth)]}
        await get_channel_layer().group_send(BATCH_GROUP.name(batch.pk), live)
        filled = await stream.json_messages(3)
        assert seqs(filled) == [2, 3, 4]
        assert [m["type"] for m in filled] == ["item.started", "item.completed", "batch.progress"]
        # The same message again sends nothing new; a terminal event closes the stream.
        await get_channel_layer().group_send(BATCH_GROUP.name(batch.pk), live)
        (last,) = await database_sync_to_async(store_silently)(batch, ["batch.completed"])
        await get_channel_layer().group_send(
            BATCH_GROUP.name(batch.pk),
            {"type": "batch.events", "events": [batch_event_message(last)]},
        )
        messages, code = await stream.until_close()
    assert (seqs(messages), code) == ([5], 1000)
    # Another workspace's member: 4404, as for a batch that does not exist.
    assert await refusal(path, token=jwt_for(other_user)) == 4404

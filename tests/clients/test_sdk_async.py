"""The asyncio SDK (`sverm_client.AsyncClient`): the same operations as the sync client, awaited
and iterated with `async for`, against the real embedded server and the misbehaving helpers."""

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sverm_client import (
    AsyncClient,
    AsyncEventStream,
    AuthenticationError,
    BudgetExceededError,
    NotFoundError,
    RateLimitError,
    Run,
    ServerError,
    TransportError,
    WaitTimeout,
)

from tests.clients.conftest import Scripted
from tests.clients.test_sdk import GATED_YAML, RUN_BODY, SLOW_YAML, unique

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client_for(server, **options) -> AsyncClient:
    return AsyncClient(server.base_url, api_key=server.api_key, **options)


async def test_a_run_created_streamed_waited_for_and_its_result(sverm_server):
    async with client_for(sverm_server) as client:
        created = await client.runs.create(
            unique("Async hydrogen"), template="research-swarm-v1", max_budget_usd="2.50"
        )
        assert created.id.startswith("run_") and isinstance(created.estimated_cost_usd, Decimal)
        stream = client.runs.stream(created.id)
        assert isinstance(stream, AsyncEventStream)
        async with stream:
            events = [event async for event in stream]
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert events[-1].type == "run.completed" and stream.last_seq == events[-1].seq
        run = await client.runs.wait(created.id, timeout=30)
        assert isinstance(run, Run) and run.status == "completed" and run.finished
        assert run.max_budget_usd == Decimal("2.5") and run.cost_usd <= run.max_budget_usd
        assert run.finished_at.tzinfo is not None
        result = await client.runs.result(created.id)
        assert sum(agent["cost_usd"] for agent in result.cost_report["agents"]) == run.cost_usd
        stored = [event async for event in client.runs.events(created.id, page_size=5)]
        assert [(e.seq, e.type) for e in stored] == [(e.seq, e.type) for e in events]
        templates = await client.templates.list()
        assert "research-swarm-v1" in {template.id for template in templates}
        assert "agents:" in await client.templates.get("debate-swarm-v1")


async def test_async_lists_page_with_keyset_cursors(sverm_server):
    async with client_for(sverm_server) as client:
        ids = [
            (await client.runs.create(unique(f"async page {n}"), template="pipeline-swarm-v1")).id
            for n in range(5)
        ]
        runs = [run async for run in client.runs.list(filter={"id": {"in": ids}}, page_size=2)]
        assert sorted(run.id for run in runs) == sorted(ids) and len(runs) == 5
        capped = [
            run async for run in client.runs.list(filter={"id": {"in": ids}}, page_size=2, limit=3)
        ]
        assert [run.id for run in capped] == [run.id for run in runs[:3]]
        for run_id in ids:
            await client.runs.wait(run_id, timeout=30)
        workspaces = await client.workspaces.list()
        assert [workspace.name for workspace in workspaces] == ["Default"]
        usage = await client.usage.get()
        assert isinstance(usage.total_usd, Decimal) and usage.total_runs >= 5


async def test_a_dropped_async_stream_resumes_without_gap_or_duplicate(sverm_server, faulty_proxy):
    proxy = faulty_proxy("cut_stream", frames=3)
    async with AsyncClient(proxy.url, api_key=sverm_server.api_key) as client:
        created = await client.runs.create(unique("Async cut"), definition=SLOW_YAML)
        events = [event async for event in client.runs.stream(created.id)]
        stored = [event async for event in client.runs.events(created.id)]
    assert proxy.faults == 1
    stream_requests = [request for request in proxy.requests if b"/stream" in request]
    assert len(stream_requests) == 2 and b"after=3 " in stream_requests[1]
    assert [event.seq for event in events] == list(range(1, len(stored) + 1))
    assert events[-1].terminal


async def test_async_errors_are_typed(sverm_server):
    async with client_for(sverm_server) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.runs.get("run_00000000000000000000000000")
        assert caught.value.correlation_id.startswith("req_")
        with pytest.raises(BudgetExceededError) as caught:
            await client.runs.create("cheap", template="research-swarm-v1", max_budget_usd="0.0001")
        assert caught.value.details["minimum_cost"] > Decimal("0.0001")
        with pytest.raises(NotFoundError) as caught:
            [event async for event in client.runs.stream("run_00000000000000000000000000")]
        assert caught.value.details["close_code"] == 4404
    async with AsyncClient(sverm_server.base_url, api_key="sk-sverm-nope") as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.usage.get()


async def test_async_wait_times_out_returns_paused_and_cancelled_runs(sverm_server):
    async with client_for(sverm_server) as client:
        slow = await client.runs.create(unique("Async slow"), definition=SLOW_YAML)
        with pytest.raises(WaitTimeout) as caught:
            await client.runs.wait(slow.id, timeout=0.1)
        assert caught.value.run.status in ("queued", "running")
        gated = await client.runs.create("Read http://127.0.0.1:9/x", definition=GATED_YAML)
        paused = await client.runs.wait(gated.id, timeout=30)
        assert paused.status == "awaiting_approval" and paused.paused
        await client.runs.cancel(gated.id)
        assert (await client.runs.wait(gated.id, timeout=30)).status == "cancelled"
        assert (await client.runs.wait(slow.id)).status == "completed"


async def test_async_login_refresh_and_swarms(sverm_server):
    base = sverm_server.base_url
    async with await AsyncClient.login(base, sverm_server.email, sverm_server.password) as client:
        refresh = client.credentials.refresh
        workspace = (await client.workspaces.list())[0]
        swarm = await client.swarms.create(
            workspace_id=workspace.id, name=unique("Async swarm"), models=["gpt-4o-mini"]
        )
        assert [v.number async for v in client.swarms.versions(swarm.id)] == [1]
        run = await client.swarms.run(swarm.id, unique("Async swarm run"), max_budget_usd=1)
        assert (await client.runs.wait(run.id, timeout=30)).status == "completed"
        assert (await client.swarms.delete(swarm.id)).deleted
        assert not (await client.swarms.restore(swarm.id)).deleted
        listed = [item.id async for item in client.swarms.list(limit=100)]
        assert swarm.id in listed
    async with AsyncClient(base, token="expired", refresh_token=refresh) as client:
        assert (await client.runs.get(run.id)).swarm_id == swarm.id
        assert client.credentials.access != "expired"


async def test_async_retries_a_429_after_retry_after(scripted_server):
    server = scripted_server(
        Scripted(429, {"error": {"code": "rate_limited", "message": "Slow down."}},
                 {"Retry-After": "1"}),
        Scripted(200, RUN_BODY),
    )  # fmt: skip
    async with AsyncClient(server.url, api_key="sk-sverm-test") as client:
        started = time.monotonic()
        run = await client.runs.get("run_scripted")
        assert time.monotonic() - started >= 1.0
    assert run.cost_usd == Decimal("0.001234") and len(server.received) == 2

    server = scripted_server(Scripted(429, {"code": "rate_limited"}, {"Retry-After": "1"}))
    async with AsyncClient(server.url, api_key="sk-sverm-test", max_retries=0) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.runs.get("run_scripted")
    assert caught.value.retry_after == 1 and len(server.received) == 1

    server = scripted_server(Scripted(502, "bad gateway", content_type="text/plain"))
    async with AsyncClient(server.url, api_key="sk-sverm-test", max_retries=1) as client:
        with pytest.raises(ServerError):
            await client.runs.get("run_scripted")
    assert len(server.received) == 2  # once, then the one retry


async def test_an_async_create_whose_answer_was_lost_makes_one_run(sverm_server, faulty_proxy):
    proxy = faulty_proxy("drop_response")
    task = unique("Async lost answer")
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with AsyncClient(proxy.url, api_key=sverm_server.api_key) as through_proxy:
        created = await through_proxy.runs.create(task, template="pipeline-swarm-v1")
    assert proxy.faults == 1 and created.replayed
    keys = {re.search(rb"idempotency-key: (\S+)", r, re.I).group(1) for r in proxy.requests}
    assert len(proxy.requests) == 2 and len(keys) == 1
    async with client_for(sverm_server) as client:
        same = [
            run.id
            async for run in client.runs.list(created_after=since.isoformat())
            if run.task == task
        ]
        assert same == [created.id]
        await client.runs.wait(created.id, timeout=30)


async def test_concurrent_calls_share_one_async_client(sverm_server):
    async with client_for(sverm_server) as client:
        created = await asyncio.gather(
            *(
                client.runs.create(unique(f"gather {n}"), template="pipeline-swarm-v1")
                for n in range(3)
            )
        )
        runs = await asyncio.gather(*(client.runs.wait(c.id, timeout=30) for c in created))
    assert {run.status for run in runs} == {"completed"}
    assert len({run.id for run in runs}) == 3


async def test_a_refused_async_connection_is_a_transport_error(scripted_server):
    server = scripted_server(Scripted(200, RUN_BODY))
    url = server.url
    server.close()
    async with AsyncClient(url, api_key="sk-sverm-test", max_retries=1) as client:
        with pytest.raises(TransportError) as caught:
            await client.runs.get("run_scripted")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)

"""The synchronous SDK (`sverm_client.Client`) against a real embedded sverm server: typed models
with exact money, both error shapes, keyset pages, the live stream and its reconnection, waiting,
JWT login and refresh, and retries over real HTTP (a scripted server, a proxy dropping a
response)."""

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sverm_client import (
    AuthenticationError,
    BudgetExceededError,
    Client,
    ConflictError,
    Credentials,
    Event,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Run,
    RunCreated,
    ServerError,
    SvermError,
    TransportError,
    UnprocessableError,
    ValidationError,
    WaitTimeout,
    errors,
)

from tests.clients.conftest import Scripted

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# Eight agents one after the other: about 0.4 s at 0.05 s a call, long enough to catch running.
SLOW_YAML = "topology: sequential\nagents:\n" + "".join(
    f"  - {{id: step{i}, role: worker, model: gpt-4o-mini, max_tokens: 256}}\n" for i in range(8)
)
# A reader whose tool calls wait for an operator: the run pauses `awaiting_approval`.
GATED_YAML = """\
topology: parallel
limits: {max_parallel: 2, max_steps: 6, max_tool_calls: 2}
agents:
  - {id: reader, role: worker, model: gpt-4o-mini, max_tokens: 512,
     tools: [http_fetch], requires_approval: true}
  - {id: merger, role: aggregator, model: gpt-4o-mini, max_tokens: 512}
"""
RUN_BODY = {
    "id": "run_scripted",
    "workspaceId": "wsp_scripted",
    "templateId": "research-swarm-v1",
    "task": "t",
    "status": "completed",
    "progress": 1.0,
    "maxBudgetUsd": 2.5,
    "currentCostUsd": 0.001234,
    "errorCode": "",
    "createdAt": "2026-12-01T10:00:00.123456Z",
    "completedAt": "2026-12-01T10:00:01Z",
}
CREATED_BODY = {
    "swarm_id": "run_scripted",
    "status": "running",
    "estimated_cost_usd": 0.032393,
    "created_at": "2026-12-01T10:00:00Z",
}


@pytest.fixture
def client(sverm_server):
    with Client(sverm_server.base_url, api_key=sverm_server.api_key) as client:
        yield client


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:10]}"


def test_templates_are_typed_and_a_definition_is_its_yaml_text(client):
    templates = {template.id: template for template in client.templates.list()}
    research = templates["research-swarm-v1"]
    assert research.name == "Research Swarm"
    assert research.topology == "hierarchical"
    assert research.estimated_cost_range.startswith("$")
    assert research.raw["id"] == "research-swarm-v1"
    text = client.templates.get("research-swarm-v1")
    assert isinstance(text, str)
    assert "agents:" in text and "topology: hierarchical" in text
    with pytest.raises(NotFoundError) as caught:
        client.templates.get("no-such-template")
    assert caught.value.code == "not_found"


def test_a_run_from_creation_to_result_with_exact_money_and_aware_times(client):
    created = client.runs.create(
        unique("Hydrogen in Norway"), template="research-swarm-v1", max_budget_usd=Decimal("2.50")
    )
    assert isinstance(created, RunCreated)
    assert created.id.startswith("run_") and created.status == "running"
    assert isinstance(created.estimated_cost_usd, Decimal) and created.estimated_cost_usd > 0
    assert created.raw["swarm_id"] == created.id and not created.replayed

    run = client.runs.wait(created.id, timeout=30)
    assert isinstance(run, Run)
    assert run.status == "completed" and run.finished and not run.paused
    assert run.template == run.template_id == "research-swarm-v1"
    assert run.max_budget_usd == Decimal("2.5") and isinstance(run.max_budget_usd, Decimal)
    assert isinstance(run.cost_usd, Decimal) and 0 < run.cost_usd <= run.max_budget_usd
    assert run.cost_usd == run.current_cost_usd == run.raw["currentCostUsd"]
    assert run.progress == 1.0 and run.agents_total == 5 and run.agents_active == 0
    assert run.error_code is None and run.error_message is None  # "" on the wire
    assert run.created_at.tzinfo is not None and run.finished_at.tzinfo is not None
    assert run.finished_at == run.completed_at >= run.started_at >= run.created_at
    assert run.workspace_id.startswith("wsp_") and run.swarm_id is None
    assert run.output.startswith("## ")

    result = client.runs.result(created.id)
    assert result.run_id == created.id and result.status == "completed"
    assert result.output == run.output
    agents = result.cost_report["agents"]
    assert len(agents) == 5
    # Exact decimals from the JSON text: the per-agent costs add up to the total to the digit.
    assert sum(agent["cost_usd"] for agent in agents) == result.cost_usd == run.cost_usd
    assert all(isinstance(agent["cost_usd"], Decimal) for agent in agents)
    assert isinstance(result.elapsed_seconds, Decimal) and result.elapsed_seconds > 0
    assert result.agent_logs and result.error is None and result.error_code is None


def test_a_definition_runs_from_a_dict_or_yaml_text(client):
    from_dict = client.runs.create(
        unique("inline dict"),
        definition={
            "topology": "parallel",
            "agents": [
                {"id": "worker", "role": "worker", "model": "gpt-4o-mini"},
                {"id": "merger", "role": "aggregator", "model": "gpt-4o-mini"},
            ],
        },
        max_budget_usd="1.00",
    )
    from_yaml = client.runs.create(unique("inline yaml"), definition=SLOW_YAML)
    assert client.runs.wait(from_dict.id, timeout=30).status == "completed"
    finished = client.runs.wait(from_yaml.id, timeout=30)
    assert finished.status == "completed" and finished.template is None
    assert finished.agents_total == 8
    with pytest.raises(ValueError, match="exactly one"):
        client.runs.create("both", template="research-swarm-v1", definition=SLOW_YAML)


def test_the_same_idempotency_key_replays_the_first_run(client):
    key = f"sdk-test-{uuid.uuid4()}"
    task = unique("Idempotent")
    first = client.runs.create(task, template="research-swarm-v1", idempotency_key=key)
    again = client.runs.create(task, template="research-swarm-v1", idempotency_key=key)
    assert again.id == first.id
    assert (first.replayed, again.replayed) == (False, True)
    with pytest.raises(UnprocessableError) as caught:
        client.runs.create("another body", template="research-swarm-v1", idempotency_key=key)
    assert caught.value.code == "idempotency_key_reused"
    assert not isinstance(caught.value, BudgetExceededError)
    client.runs.wait(first.id, timeout=30)


def test_v1_envelope_errors_are_typed_with_code_details_and_correlation_id(client):
    with pytest.raises(BudgetExceededError) as caught:
        client.runs.create("too cheap", template="research-swarm-v1", max_budget_usd="0.0001")
    error = caught.value
    assert isinstance(error, UnprocessableError) and isinstance(error, SvermError)
    assert (error.status, error.code) == (422, "budget_exceeded")
    assert error.details["budget"] == Decimal("0.0001")
    assert isinstance(error.details["minimum_cost"], Decimal) and error.details["minimum_cost"] > 0
    assert error.correlation_id.startswith("req_")
    assert error.correlation_id == error.headers["x-request-id"]
    assert "maximum budget" in error.message and error.correlation_id in str(error)

    with pytest.raises(NotFoundError) as caught:
        client.runs.create("t", template="no-such-template")
    assert caught.value.message == "Template no-such-template not found."


def test_problem_details_errors_are_typed_too(client, sverm_server):
    with pytest.raises(NotFoundError) as caught:
        client.runs.get("run_00000000000000000000000000")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert caught.value.correlation_id.startswith("req_")
    assert caught.value.details == {}  # no members beyond the standard ones

    with pytest.raises(ValidationError) as caught:
        list(client.runs.list(filter={"noSuchField": {"eq": 1}}))
    assert caught.value.status == 400 and caught.value.code
    workspace = client.workspaces.list()[0]
    with pytest.raises(ValidationError) as caught:
        client.swarms.create(workspace_id=workspace.id, name=7)
    assert [error["field"] for error in caught.value.details["errors"]] == ["name"]

    finished = client.runs.create(unique("to cancel late"), template="pipeline-swarm-v1")
    client.runs.wait(finished.id, timeout=30)
    with pytest.raises(ConflictError) as caught:
        client.runs.cancel(finished.id)
    assert "nothing to cancel" in caught.value.message

    with (
        Client(sverm_server.base_url, api_key="sk-sverm-not-a-key", max_retries=0) as stranger,
        pytest.raises(AuthenticationError) as caught,
    ):
        stranger.runs.get(finished.id)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


def test_lists_iterate_keyset_pages_beyond_the_first(client, sverm_server):
    ids = [
        client.runs.create(unique(f"page {n}"), template="pipeline-swarm-v1").id for n in range(5)
    ]
    pages: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [pages.append]})
    with Client(sverm_server.base_url, api_key=sverm_server.api_key, http_client=http) as paged:
        runs = list(paged.runs.list(filter={"id": {"in": ids}}, page_size=2))
        assert len(pages) == 3  # 2 + 2 + 1
        assert sorted(run.id for run in runs) == sorted(ids)
        assert len({run.id for run in runs}) == 5
        assert [run.created_at for run in runs] == sorted(
            (run.created_at for run in runs), reverse=True
        )
        assert pages[1].url.params["after"] and pages[1].url.params["limit"] == "2"

        pages.clear()
        first_three = list(paged.runs.list(filter={"id": {"in": ids}}, page_size=2, limit=3))
        assert [run.id for run in first_three] == [run.id for run in runs[:3]]
        assert len(pages) == 2

        oldest_first = list(
            paged.runs.list(filter={"id": {"in": ids}}, order_by=[{"createdAt": "asc"}])
        )
        assert [run.id for run in oldest_first] == ids

        for run_id in ids:
            paged.runs.wait(run_id, timeout=30)
        pages.clear()
        events = list(paged.runs.events(ids[0], page_size=4))
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert len(pages) == -(-len(events) // 4)
        assert events[-1].terminal and events[-1].type == "run.completed"
        assert all(event.run_id == ids[0] and event.ts.tzinfo for event in events)
        later = list(paged.runs.events(ids[0], after=3, page_size=100))
        assert [event.seq for event in later] == list(range(4, len(events) + 1))
    http.close()
    with pytest.raises(ValueError, match="page_size"):
        client.runs.list(page_size=101)


def test_the_stream_yields_each_event_once_up_to_the_terminal_one(client):
    created = client.runs.create(unique("Streamed"), template="research-swarm-v1")
    with client.runs.stream(created.id) as stream:
        events = list(stream)
    assert all(isinstance(event, Event) for event in events)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run.started" and events[-1].type == "run.completed"
    assert [event for event in events if event.terminal] == [events[-1]]
    assert stream.last_seq == events[-1].seq
    progress = [event for event in events if event.type == "run.progress"]
    assert progress and isinstance(progress[-1].data["cost_usd"], Decimal)
    stored = list(client.runs.events(created.id))
    assert [(event.seq, event.type) for event in stored] == [
        (event.seq, event.type) for event in events
    ]
    resumed = list(client.runs.stream(created.id, after=10))
    assert [event.seq for event in resumed] == list(range(11, len(events) + 1))
    assert list(client.runs.stream(created.id, after=events[-1].seq)) == []


def test_a_dropped_stream_resumes_after_the_last_event_without_gap_or_duplicate(
    sverm_server, faulty_proxy
):
    proxy = faulty_proxy("cut_stream", frames=5)
    with Client(proxy.url, api_key=sverm_server.api_key) as client:
        # A slow run: the cut comes while it is running, the rest arrives live after resuming.
        created = client.runs.create(unique("Cut stream"), definition=SLOW_YAML)
        seqs = []
        for event in client.runs.stream(created.id):
            seqs.append(event.seq)
            last = event
        stored = list(client.runs.events(created.id))
    assert proxy.faults == 1
    stream_requests = [request for request in proxy.requests if b"/stream" in request]
    assert len(stream_requests) == 2
    assert b"after=0 " in stream_requests[0] and b"after=5 " in stream_requests[1]
    assert seqs == list(range(1, len(stored) + 1))  # contiguous: no gap, no duplicate
    assert last.terminal and last.seq == stored[-1].seq


def test_stream_refusals_raise_typed_errors_and_are_not_retried(sverm_server, faulty_proxy):
    proxy = faulty_proxy("none")
    with (
        Client(proxy.url, api_key="sk-sverm-not-a-key") as stranger,
        pytest.raises(AuthenticationError) as caught,
    ):
        list(stranger.runs.stream("run_00000000000000000000000000"))
    assert caught.value.details["close_code"] == 4401 and caught.value.status == 401
    with (
        Client(proxy.url, api_key=sverm_server.api_key) as client,
        pytest.raises(NotFoundError) as caught,
    ):
        list(client.runs.stream("run_00000000000000000000000000"))
    assert caught.value.details["close_code"] == 4404
    assert len(proxy.requests) == 2  # one connection each: refusals are final
    assert isinstance(errors.error_from_close(4400), ValidationError)
    assert isinstance(errors.error_from_close(4403), PermissionDeniedError)


def test_wait_returns_finished_or_paused_runs_and_times_out_otherwise(client):
    slow = client.runs.create(unique("Slow"), definition=SLOW_YAML)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.runs.wait(slow.id, timeout=0.1)
    assert time.monotonic() - started < 5
    assert caught.value.run.id == slow.id and caught.value.run.status in ("queued", "running")
    assert isinstance(caught.value, TimeoutError) and caught.value.timeout == 0.1
    assert client.runs.wait(slow.id).status == "completed"

    gated = client.runs.create("Summarise http://127.0.0.1:9/page", definition=GATED_YAML)
    paused = client.runs.wait(gated.id, timeout=30)
    assert paused.status == "awaiting_approval" and paused.paused and not paused.finished
    client.runs.cancel(gated.id)
    cancelled = client.runs.wait(gated.id, timeout=30)
    assert cancelled.status == "cancelled" and cancelled.finished and cancelled.finished_at
    with pytest.raises(ValueError, match="poll"):
        client.runs.wait(gated.id, poll=301)


def test_a_cancelled_run_ends_cancelled(client):
    created = client.runs.create(unique("Cancel me"), definition=SLOW_YAML)
    answer = client.runs.cancel(created.id)
    assert answer.id == created.id and answer.status in ("cancelled", "running")
    run = client.runs.wait(created.id, timeout=30)
    assert run.status == "cancelled" and run.finished


def test_usage_and_workspaces(client):
    usage = client.usage.get()
    assert re.fullmatch(r"\d{4}-\d{2}", usage.month)
    assert isinstance(usage.total_usd, Decimal) and usage.total_usd > 0
    assert usage.total_runs >= 1 and "research-swarm-v1" in usage.by_swarm_type
    assert client.usage.get(month="2001-01").total_runs == 0
    report = client.usage.report(group_by="model")
    assert report["data"] and isinstance(report["totals"]["costUsd"], Decimal)
    workspaces = client.workspaces.list()
    assert [workspace.name for workspace in workspaces] == ["Default"]
    assert workspaces[0].id.startswith("wsp_") and workspaces[0].role == "admin"


def test_swarms_create_run_trash_and_restore(client):
    workspace = client.workspaces.list()[0]
    swarm = client.swarms.create(
        workspace_id=workspace.id,
        name=unique("Market scan"),
        instructions="Cite sources.",
        models=["gpt-4o-mini"],
    )
    assert swarm.id.startswith("swm_") and swarm.workspace_id == workspace.id
    assert client.swarms.get(swarm.id).name == swarm.name
    versions = list(client.swarms.versions(swarm.id))
    assert [(v.number, v.instructions, v.models) for v in versions] == [
        (1, "Cite sources.", ["gpt-4o-mini"])
    ]
    assert versions[0].id == swarm.default_version_id and versions[0].definition["agents"]
    run = client.swarms.run(swarm.id, unique("EV charging"), max_budget_usd=Decimal("1.00"))
    assert run.swarm_id == swarm.id and run.max_budget_usd == Decimal("1")
    assert client.runs.wait(run.id, timeout=30).status == "completed"

    deleted = client.swarms.delete(swarm.id)
    assert deleted.id == swarm.id and deleted.deleted and deleted.deleted_at.tzinfo
    assert swarm.id in {item.id for item in client.swarms.list(include_deleted="only")}
    assert swarm.id not in {item.id for item in client.swarms.list()}
    restored = client.swarms.restore(swarm.id)
    assert not restored.deleted and swarm.id in {item.id for item in client.swarms.list()}


def test_login_refresh_and_the_workspace_header(sverm_server):
    base = sverm_server.base_url
    with pytest.raises(AuthenticationError):
        Client.login(base, sverm_server.email, "wrong password")
    with Client.login(base, sverm_server.email, sverm_server.password) as client:
        credentials = client.credentials
        assert credentials.access and credentials.refresh and credentials.api_key is None
        assert credentials.access not in repr(credentials)
        default = client.workspaces.list()[0]
        other = httpx.post(
            f"{base}/api/workspaces",
            json={"name": unique("Research"), "plan": "team"},
            headers={"Authorization": f"Bearer {credentials.access}"},
        ).json()["id"]
        # /v1 with a JWT acts in the user's oldest workspace, or in Sverm-Workspace's.
        in_default = client.runs.create(unique("JWT default"), template="pipeline-swarm-v1")
        assert client.runs.get(in_default.id).workspace_id == default.id
        client.workspace = other
        in_other = client.runs.create(unique("JWT other"), template="pipeline-swarm-v1")
        assert client.runs.get(in_other.id).workspace_id == other
        assert client.runs.wait(in_other.id, timeout=30).finished
        assert next(event.seq for event in client.runs.stream(in_other.id)) == 1

    # An expired (here: unreadable) access token is refreshed once, on the 401.
    with Client(base, token="not-a-jwt", refresh_token=credentials.refresh) as client:
        assert client.runs.get(in_other.id).id == in_other.id
        assert client.credentials.access not in (None, "not-a-jwt")
        assert client.credentials.refresh == credentials.refresh
    # A refresh token alone gets an access token first.
    with Client(base, refresh_token=credentials.refresh, workspace=other) as client:
        assert client.runs.result(in_other.id).run_id == in_other.id
        assert client.credentials.access
    with (
        Client(base, token="not-a-jwt", refresh_token="not-a-refresh-token") as client,
        pytest.raises(AuthenticationError),
    ):
        client.runs.get(in_other.id)


def test_the_environment_supplies_url_and_key_when_not_given(sverm_server, monkeypatch):
    monkeypatch.setenv("SVERM_URL", sverm_server.base_url)
    monkeypatch.setenv("SVERM_API_KEY", sverm_server.api_key)
    with Client() as client:
        assert client.base_url == sverm_server.base_url
        assert client.credentials == Credentials(api_key=sverm_server.api_key)
        assert client.workspaces.list()
    with Client(token="a-jwt") as client:  # an explicit credential wins over the environment
        assert client.credentials.api_key is None


# --- retries over real HTTP ----------------------------------------------------------------------
def test_a_429_is_retried_after_retry_after(scripted_server):
    server = scripted_server(
        Scripted(
            429,
            {"type": "about:blank", "title": "Too many requests", "status": 429,
             "detail": "Rate limit of 10 requests a minute exceeded.", "code": "rate_limited",
             "correlation_id": "req_limited"},
            {"Retry-After": "1"},
            "application/problem+json",
        ),
        Scripted(200, RUN_BODY),
    )  # fmt: skip
    with Client(server.url, api_key="sk-sverm-test") as client:
        started = time.monotonic()
        run = client.runs.get("run_scripted")
        waited = time.monotonic() - started
    assert run.id == "run_scripted" and run.cost_usd == Decimal("0.001234")
    assert run.created_at == datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert 1.0 <= waited < 5
    assert [request.path for request in server.received] == ["/api/runs/run_scripted"] * 2
    assert server.received[0].headers["Authorization"] == "Bearer sk-sverm-test"


def test_a_429_past_the_retries_or_too_long_to_wait_is_raised(scripted_server):
    limited = Scripted(
        429,
        {"error": {"code": "rate_limited", "message": "Slow down.", "details": {},
                   "correlation_id": "req_slow"}},
        {"Retry-After": "1"},
    )  # fmt: skip
    server = scripted_server(limited)
    with (
        Client(server.url, api_key="sk-sverm-test", max_retries=0) as client,
        pytest.raises(RateLimitError) as caught,
    ):
        client.usage.get()
    assert caught.value.retry_after == 1 and caught.value.correlation_id == "req_slow"
    assert caught.value.code == "rate_limited" and len(server.received) == 1

    later = Scripted(429, limited.body, {"Retry-After": "3600"})
    server = scripted_server(later)
    started = time.monotonic()
    with (
        Client(server.url, api_key="sk-sverm-test") as client,
        pytest.raises(RateLimitError) as caught,
    ):
        client.usage.get()
    assert time.monotonic() - started < 1  # not slept through
    assert caught.value.retry_after == 3600 and len(server.received) == 1


def test_a_create_is_retried_on_503_with_the_same_generated_idempotency_key(scripted_server):
    server = scripted_server(
        Scripted(503, {"error": {"code": "service_unavailable", "message": "Busy."}},
                 {"Retry-After": "0"}),
        Scripted(201, CREATED_BODY),
    )  # fmt: skip
    with Client(server.url, api_key="sk-sverm-test") as client:
        created = client.runs.create("t", template="research-swarm-v1", max_budget_usd="2.50")
    assert created.id == "run_scripted" and created.estimated_cost_usd == Decimal("0.032393")
    keys = [request.headers["Idempotency-Key"] for request in server.received]
    assert len(keys) == 2 and keys[0] == keys[1] and UUID4.match(keys[0])
    assert server.received[0].body == (
        b'{"template":"research-swarm-v1","task":"t","max_budget_usd":2.50}'
    )


def test_502_is_retried_for_a_get_but_not_for_a_post_without_a_key(scripted_server):
    gateway = Scripted(502, "<html><body>Bad gateway</body></html>", content_type="text/html")
    server = scripted_server(gateway, Scripted(200, RUN_BODY))
    with Client(server.url, api_key="sk-sverm-test") as client:
        assert client.runs.get("run_scripted").status == "completed"
    assert len(server.received) == 2

    server = scripted_server(gateway, Scripted(200, RUN_BODY))
    with (
        Client(server.url, api_key="sk-sverm-test") as client,
        pytest.raises(ServerError) as caught,
    ):
        client.runs.cancel("run_scripted")
    assert caught.value.status == 502 and caught.value.message == "HTTP 502 Bad Gateway"
    assert caught.value.correlation_id == "req_scripted1" and len(server.received) == 1


def test_a_refused_connection_is_retried_then_raised(scripted_server):
    server = scripted_server(Scripted(200, RUN_BODY))
    url = server.url
    server.close()  # nothing listens there any more
    started = time.monotonic()
    with (
        Client(url, api_key="sk-sverm-test", max_retries=2) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.runs.get("run_scripted")
    assert time.monotonic() - started >= 0.5 * 0.75 + 1 * 0.75  # two backoffs
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_create_whose_answer_was_lost_is_retried_and_makes_one_run(
    sverm_server, faulty_proxy, client
):
    proxy = faulty_proxy("drop_response")
    task = unique("Lost answer")
    since = datetime.now(UTC) - timedelta(seconds=1)
    with Client(proxy.url, api_key=sverm_server.api_key) as through_proxy:
        created = through_proxy.runs.create(task, template="research-swarm-v1")
    assert proxy.faults == 1 and created.replayed
    keys = [
        re.search(rb"idempotency-key: (\S+)", request, re.I).group(1) for request in proxy.requests
    ]
    assert len(keys) == 2 and keys[0] == keys[1]
    same_task = [
        run for run in client.runs.list(created_after=since.isoformat()) if run.task == task
    ]
    assert [run.id for run in same_task] == [created.id]
    client.runs.wait(created.id, timeout=30)


def test_a_post_without_a_key_is_not_resent_after_a_lost_answer(sverm_server, faulty_proxy, client):
    created = client.runs.create(unique("Cancel once"), definition=SLOW_YAML)
    proxy = faulty_proxy("drop_response")
    with (
        Client(proxy.url, api_key=sverm_server.api_key) as through_proxy,
        pytest.raises(TransportError),
    ):
        through_proxy.runs.cancel(created.id)
    assert len(proxy.requests) == 1
    assert client.runs.wait(created.id, timeout=30).status == "cancelled"  # it did arrive

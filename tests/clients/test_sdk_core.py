"""The SDK's sans-IO core, driven by hand: the steps an operation asks for and what it makes of
each outcome (retry, refresh, raise), with no network at all; and the parsing of both error
shapes."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest
from sverm_client import (
    AuthenticationError,
    BudgetExceededError,
    Credentials,
    RunCreated,
    TransportError,
    ValidationError,
    errors,
)
from sverm_client import _operations as ops
from sverm_client._core import Call, ConnectionFailed, Core, Reply, Send, Sleep, json_dumps


def core(**credentials) -> Core:
    return Core(
        base_url="http://sverm.test/",
        credentials=Credentials(**credentials),
        workspace="wsp_chosen",
        max_retries=2,
    )


def reply(status: int, body, **headers) -> Reply:
    content_type = "application/problem+json" if status >= 400 else "application/json"
    headers = {"content-type": content_type, "x-request-id": "req_hand", **headers}
    return Reply(status, {k.lower().replace("_", "-"): v for k, v in headers.items()},
                 json.dumps(body).encode())  # fmt: skip


CREATED = {"swarm_id": "run_1", "status": "running", "estimated_cost_usd": 0.0324}


def test_a_create_resends_the_same_request_after_a_dropped_connection():
    flow = ops.run_create(
        core(api_key="sk-sverm-k"), "task", template="research-swarm-v1",
        definition=None, max_budget_usd=2.5, idempotency_key=None, extra={},
    )  # fmt: skip
    first = next(flow)
    assert isinstance(first, Send) and first.url == "http://sverm.test/v1/swarms"
    assert first.headers["Authorization"] == "Bearer sk-sverm-k"
    assert "Sverm-Workspace" not in first.headers  # an API key has its own workspace
    assert first.content == b'{"template":"research-swarm-v1","task":"task","max_budget_usd":2.5}'
    lost = ConnectionFailed(httpx.ReadError("reset"), sent=True)
    assert isinstance(flow.throw(lost), Sleep)
    second = flow.send(None)
    assert second == first  # same body, same Idempotency-Key
    with pytest.raises(StopIteration) as done:
        flow.send(reply(201, CREATED, idempotent_replayed="true"))
    created = done.value.value
    assert isinstance(created, RunCreated) and created.replayed
    assert created.estimated_cost_usd == Decimal("0.0324")


def test_a_post_without_a_key_is_not_resent_but_a_refused_connection_is():
    flow = ops.run_cancel(core(api_key="k"), "run_1")
    next(flow)
    with pytest.raises(TransportError) as caught:
        flow.throw(ConnectionFailed(httpx.ReadError("reset"), sent=True))
    assert isinstance(caught.value.__cause__, httpx.ReadError)

    flow = ops.run_cancel(core(api_key="k"), "run_1")
    next(flow)
    never_connected = ConnectionFailed(httpx.ConnectError("refused"), sent=False)
    assert isinstance(flow.throw(never_connected), Sleep)


def test_retries_stop_at_max_retries_and_honour_retry_after():
    flow = ops.run_get(core(api_key="k"), "run_1")
    next(flow)
    busy = reply(503, {"code": "service_unavailable"}, retry_after="2")
    sleeps = []
    step = flow.send(busy)
    while isinstance(step, Sleep):
        sleeps.append(step.seconds)
        next(flow)
        try:
            step = flow.send(busy)
        except errors.ServerError as error:
            assert error.status == 503 and error.headers["retry-after"] == "2"
            break
    assert sleeps == [2.0, 2.0]  # max_retries=2


def test_a_401_with_a_refresh_token_refreshes_once_then_repeats_the_request():
    hand = core(access="old", refresh="refresh-1")
    flow = ops.template_list(hand)
    first = next(flow)
    assert first.headers["Authorization"] == "Bearer old"
    refresh = flow.send(reply(401, {"code": "unauthorized"}))
    assert refresh.method == "POST" and refresh.url.endswith("/api/auth/refresh")
    assert "Authorization" not in refresh.headers
    assert json.loads(refresh.content) == {"refresh": "refresh-1"}
    again = flow.send(reply(200, {"token": "new"}))
    assert again.headers["Authorization"] == "Bearer new"
    assert hand.credentials == Credentials(access="new", refresh="refresh-1")
    with pytest.raises(AuthenticationError):
        flow.send(reply(401, {"code": "unauthorized"}))  # refreshed once already


def test_a_jwt_names_its_workspace_on_v1_only():
    hand = core(access="jwt")
    assert hand.build(Call("GET", "/v1/usage")).headers["Sverm-Workspace"] == "wsp_chosen"
    assert "Sverm-Workspace" not in hand.build(Call("GET", "/api/runs")).headers
    target = hand.ws_target("/api/runs/run_1/stream", {"after": 7})
    assert target.url == "ws://sverm.test/api/runs/run_1/stream?after=7"
    assert target.headers == {"Authorization": "Bearer jwt"}


def test_both_error_shapes_are_read():
    v1 = errors.error_from_response(
        422,
        {"X-Request-ID": "req_h"},
        {"error": {"code": "budget_exceeded", "message": "Too much.",
                   "details": {"minimum_cost": Decimal("0.01")}, "correlation_id": "req_v1"}},
    )  # fmt: skip
    assert isinstance(v1, BudgetExceededError) and v1.correlation_id == "req_v1"
    assert v1.details == {"minimum_cost": Decimal("0.01")} and v1.message == "Too much."
    problem = errors.error_from_response(
        400,
        {"x-request-id": "req_p"},
        {"type": "https://sverm.dev/problems/invalid-request", "title": "Invalid request",
         "status": 400, "detail": "Bad name.", "instance": "/api/swarms",
         "code": "invalid_request", "errors": [{"field": "name", "message": "Not a string."}]},
    )  # fmt: skip
    assert isinstance(problem, ValidationError) and problem.message == "Bad name."
    assert problem.details == {"errors": [{"field": "name", "message": "Not a string."}]}
    assert problem.correlation_id == "req_p"  # from the header when the body has none


def test_retry_after_reads_seconds_and_http_dates():
    assert errors.retry_after_seconds({"Retry-After": "7"}) == 7
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < errors.retry_after_seconds({"retry-after": later}) <= 30
    assert errors.retry_after_seconds({"Retry-After": "soon"}) is None
    assert errors.retry_after_seconds({}) is None


def test_money_is_written_from_its_exact_text():
    assert json_dumps({"usd": Decimal("0.000100"), "n": [1, 2.5]}) == '{"usd":0.000100,"n":[1,2.5]}'
    with pytest.raises(ValueError):
        json_dumps(Decimal("NaN"))

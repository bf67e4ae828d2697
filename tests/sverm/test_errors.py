"""One handler, two wire formats: problem details on /api, seed 002's envelope on /v1."""

import io
import logging

import pytest
from django.db import OperationalError
from psycopg_pool import PoolTimeout

from sverm.api.errors import (
    DATABASE_RETRY_AFTER_SECONDS,
    InternalError,
    ServiceUnavailable,
    to_application_error,
)
from tests.conftest import assert_problem, assert_v1_error

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.sverm.probe_urls")]


# --- unknown routes -------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_route_is_problem_404(anon_client, method):
    response = getattr(anon_client, method)("/api/no/such/thing")
    body = assert_problem(response, 404, "not_found")
    assert "/api/no/such/thing" in body["detail"]
    assert "Allow" not in response


def test_unknown_v1_route_is_envelope_404(anon_client):
    assert_v1_error(anon_client.get("/v1/nope"), 404, "not_found")


def test_unknown_route_outside_the_api_is_not_json(client, db):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "json" not in response["Content-Type"]


@pytest.mark.parametrize("path", ["/api/no/such/thing", "/v1/nope"])
def test_unknown_route_is_json_even_with_debug(anon_client, settings, path):
    settings.DEBUG = True
    response = anon_client.get(path)
    assert response.status_code == 404
    assert "json" in response["Content-Type"]


# --- 401 / 403 ------------------------------------------------------------------------------
def test_v1_missing_credentials_is_401(anon_client):
    error = assert_v1_error(anon_client.get("/v1/probe"), 401, "unauthorized")
    assert "credentials" in error["message"].lower()


def test_v1_forbidden_is_403(api_client):
    error = assert_v1_error(api_client.get("/v1/probe/forbidden"), 403, "forbidden")
    assert error["message"] == "Operators only."


def test_api_forbidden_is_403(api_client):
    assert_problem(api_client.get("/api/probe/forbidden"), 403, "forbidden")


def test_v1_accepts_api_keys(key_client, workspace):
    client, _, _ = key_client(workspace)
    assert client.get("/v1/probe").json() == {"ok": True}


# --- 400: malformed, invalid, unknown fields -------------------------------------------------
def test_v1_malformed_json_is_400(api_client):
    response = api_client.post("/v1/probe", data='{"task": ', content_type="application/json")
    error = assert_v1_error(response, 400, "invalid_request")
    assert "JSON parse error" in error["message"]


def test_api_malformed_json_is_400(api_client):
    response = api_client.post("/api/workspaces", data="{nope", content_type="application/json")
    assert_problem(response, 400, "invalid_request")


def test_v1_validation_errors_list_fields(api_client):
    response = api_client.post(
        "/v1/probe", {"max_budget_usd": "lots", "colour": "red"}, format="json"
    )
    error = assert_v1_error(response, 400, "invalid_request")
    assert set(error["details"]["fields"]) == {"colour"}
    response = api_client.post("/v1/probe", {"max_budget_usd": "lots"}, format="json")
    error = assert_v1_error(response, 400, "invalid_request")
    assert set(error["details"]["fields"]) == {"task", "max_budget_usd"}
    assert "task" in error["message"]


def test_api_validation_errors_point_at_fields(api_client):
    body = assert_problem(
        api_client.post("/api/probe", {"task": ["not", "a", "string"]}, format="json"),
        400,
        "invalid_request",
    )
    assert body["errors"] == [
        {"field": "task", "pointer": "#/task", "detail": "Not a valid string.", "code": "invalid"}
    ]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ("[1, 2]", "Expected a JSON object."),
        ('"text"', "Expected a JSON object."),
        ("42", "Expected a JSON object."),
        ("null", "No data provided"),
    ],
)
def test_body_that_is_not_an_object_is_400(api_client, payload, detail):
    response = api_client.post("/api/probe", data=payload, content_type="application/json")
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["detail"] == detail


def test_wrong_content_type_is_415(api_client):
    response = api_client.post("/api/probe", data="task=x", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")
    response = api_client.post("/v1/probe", data="task=x", content_type="text/plain")
    assert_v1_error(response, 415, "unsupported_media_type")


def test_oversized_body_is_413(api_client):
    big = '{"task": "' + "x" * (1024 * 1024 + 10) + '"}'
    assert_problem(
        api_client.post("/api/probe", data=big, content_type="application/json"),
        413,
        "payload_too_large",
    )
    assert_v1_error(
        api_client.post("/v1/probe", data=big, content_type="application/json"),
        413,
        "payload_too_large",
    )


# --- 405 ------------------------------------------------------------------------------------
def test_method_not_allowed_both_formats(api_client):
    assert_problem(api_client.delete("/api/auth/login"), 405, "method_not_allowed")
    response = api_client.put("/v1/probe", {}, format="json")
    assert_v1_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


# --- 422 with details -----------------------------------------------------------------------
def test_budget_exceeded_carries_details(api_client):
    error = assert_v1_error(api_client.get("/v1/probe/budget"), 422, "budget_exceeded")
    assert error["details"] == {"budget": 2.5, "estimated_cost": 3.1}
    body = assert_problem(api_client.get("/api/probe/budget"), 422, "budget_exceeded")
    assert body["budget"] == 2.5 and body["estimated_cost"] == 3.1


# --- 500 ------------------------------------------------------------------------------------
@pytest.fixture
def console_log():
    """The configured console handler's output, with the real filter and format."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_uncaught_exception_is_500_without_leaking_and_logged_with_request_id(
    api_client, console_log
):
    response = api_client.get("/api/probe/boom", HTTP_X_REQUEST_ID="trace-123")
    body = assert_problem(response, 500, "internal_error")
    assert body["correlation_id"] == "trace-123"
    assert "kaboom" not in response.content.decode()
    log = console_log.getvalue()
    assert "[trace-123]" in log and "kaboom" in log and "Traceback" in log

    error = assert_v1_error(api_client.get("/v1/probe/boom"), 500, "internal_error")
    assert error["message"] == "Something went wrong on our end."


# --- 503: no database connection in time -----------------------------------------------------
def test_no_pooled_database_connection_in_time_is_503_with_retry_after(api_client, console_log):
    """psycopg_pool's PoolTimeout (as Django raises it, an OperationalError caused by it) is an
    overload the client can retry, not a bug: 503 and Retry-After, logged in one line."""
    error = assert_v1_error(api_client.get("/v1/probe/pool"), 503, "service_unavailable")
    assert "database connection" in error["message"]
    response = api_client.get("/api/probe/pool", HTTP_X_REQUEST_ID="trace-pool")
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    log = console_log.getvalue()
    assert "GET /api/probe/pool -> 503 service_unavailable correlation_id=trace-pool" in log
    assert "Traceback" not in log and "Unhandled error" not in log


def test_other_database_errors_stay_500():
    """Only a pool that gave no connection is a 503: a deadlock or a broken query is a bug."""
    assert isinstance(to_application_error(OperationalError("deadlock detected")), InternalError)
    timeout = PoolTimeout("couldn't get a connection after 30.00 sec")
    assert isinstance(to_application_error(timeout), ServiceUnavailable)


# --- request ids ----------------------------------------------------------------------------
def test_request_id_is_echoed_or_generated(anon_client):
    echoed = anon_client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert echoed["X-Request-ID"] == "abc-123"
    generated = anon_client.get("/healthz")
    assert generated["X-Request-ID"].startswith("req_")
    assert generated["X-Request-ID"] != anon_client.get("/healthz")["X-Request-ID"]


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "new\nline", ""])
def test_unsafe_request_id_is_replaced(anon_client, bad):
    response = anon_client.get("/healthz", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"].startswith("req_")


def test_request_id_on_admin_and_docs(client, db):
    for path in ("/admin/login/", "/docs", "/openapi.json"):
        assert client.get(path)["X-Request-ID"].startswith("req_")


# --- every error response is logged once, with its correlation id ----------------------------
def error_lines(caplog, response) -> list[str]:
    """The sverm.api lines that quote the response's correlation id (its X-Request-ID)."""
    correlation_id = response["X-Request-ID"]
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "sverm.api" and f"correlation_id={correlation_id} " in record.getMessage()
    ]


def assert_logged(caplog, response, method: str, path: str, code: str) -> str:
    lines = error_lines(caplog, response)
    assert len(lines) == 1, (lines, caplog.text)
    assert lines[0].startswith(f"{method} {path} -> {response.status_code} {code} "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/api/probe", "{nope", 400, "invalid_request"),
        ("post", "/v1/probe", '{"task": 7}', 400, "invalid_request"),
        ("get", "/v1/swarms/run_%00abc", None, 400, "invalid_request"),
        ("get", "/api/probe/forbidden", None, 403, "forbidden"),
        ("get", "/v1/probe/forbidden", None, 403, "forbidden"),
        ("get", "/api/no/such/thing", None, 404, "not_found"),
        ("get", "/v1/swarms/run_doesnotexist", None, 404, "not_found"),
        ("put", "/v1/probe", "{}", 405, "method_not_allowed"),
        ("post", "/api/probe", "task=x", 415, "unsupported_media_type"),
        ("get", "/v1/probe/budget", None, 422, "budget_exceeded"),
        ("get", "/api/probe/boom", None, 500, "internal_error"),
        ("get", "/v1/probe/boom", None, 500, "internal_error"),
        ("get", "/api/probe/pool", None, 503, "service_unavailable"),
        ("get", "/v1/probe/pool", None, 503, "service_unavailable"),
    ],
)
def test_every_error_response_is_logged_with_its_correlation_id(
    api_client, workspace, caplog, method, path, body, status, code
):
    kwargs = {}
    if body is not None:
        content_type = "text/plain" if body == "task=x" else "application/json"
        kwargs = {"data": body, "content_type": content_type}
    response = getattr(api_client, method)(path, **kwargs)
    assert response.status_code == status, response.content
    line = assert_logged(caplog, response, method.upper(), path, code)
    level = {r.getMessage(): r.levelname for r in caplog.records}[line]
    assert level == ("ERROR" if status >= 500 else "WARNING")


def test_an_auth_failure_is_logged(anon_client, caplog):
    response = anon_client.get("/v1/probe", HTTP_AUTHORIZATION="Bearer sk-sverm-nope")
    assert response.status_code == 401
    line = assert_logged(caplog, response, "GET", "/v1/probe", "unauthorized")
    assert "'Invalid API key.'" in line
    response = anon_client.get("/api/workspaces")
    assert_logged(caplog, response, "GET", "/api/workspaces", "unauthorized")


def test_a_throttled_request_is_logged(key_client, workspace, settings, caplog):
    settings.SVERM_RATE_LIMITS = True
    client, _key, _raw = key_client(workspace)  # free plan: 10 requests a minute
    responses = [client.get("/v1/templates") for _ in range(11)]
    assert [r.status_code for r in responses] == [200] * 10 + [429]
    assert_logged(caplog, responses[-1], "GET", "/v1/templates", "rate_limited")
    assert not error_lines(caplog, responses[0])  # a success is not an error line


def test_a_caller_supplied_correlation_id_is_the_one_logged(anon_client, caplog):
    response = anon_client.get("/api/no/such/thing", HTTP_X_REQUEST_ID="support-ticket-42")
    assert response["X-Request-ID"] == "support-ticket-42"
    assert_logged(caplog, response, "GET", "/api/no/such/thing", "not_found")


def test_the_console_line_has_the_id_method_path_status_and_code(anon_client, console_log):
    response = anon_client.get("/v1/nope", HTTP_X_REQUEST_ID="trace-404")
    assert response.status_code == 404
    lines = [line for line in console_log.getvalue().splitlines() if "GET /v1/nope" in line]
    assert len(lines) == 1
    assert "WARNING sverm.api [trace-404] GET /v1/nope -> 404 not_found" in lines[0]
    assert "correlation_id=trace-404" in lines[0]

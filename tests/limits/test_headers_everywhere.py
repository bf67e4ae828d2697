"""Seed 002: "Rate limit headers are included in every response". Whoever calls and whatever
the answer (refused credentials, /api/auth, an unknown route, the docs, the health probes),
the response carries X-RateLimit-Limit/-Remaining/-Reset of the limit that applied to that
caller: the key's or user's plan, else the client IP's (per IP, never shared between IPs)."""

import re

import httpx
import pytest

from tests.conftest import assert_problem, assert_v1_error
from tests.limits.conftest import WINDOW_END, limit_headers
from tests.processes import TIMEOUT, embedded_server_env, manage, start_embedded_server, stop

pytestmark = pytest.mark.usefixtures("rate_limits_on", "plan_rows", "clock")

TRIO = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
BAD_KEY = {"HTTP_AUTHORIZATION": "Bearer sk-sverm-notakeynotakeynotakeynotakey"}


def answers(client, **extra) -> dict[str, object]:
    """One request of each kind no plan counts, by name: its response."""
    return {
        "v1 without a key": client.get("/v1/swarms", **extra),
        "v1 with an unknown key": client.get("/v1/swarms", **BAD_KEY, **extra),
        "api without a token": client.get("/api/swarms", **extra),
        "api with a bad JWT": client.get(
            "/api/swarms", HTTP_AUTHORIZATION="Bearer not.a.jwt", **extra
        ),
        "unknown /api route": client.get("/api/nowhere", **extra),
        "unknown /v1 route": client.post("/v1/nowhere", {}, format="json", **extra),
        "the schema": client.get("/openapi.json", **extra),
        "the docs": client.get("/docs", **extra),
        "the AsyncAPI document": client.get("/asyncapi.json", **extra),
        "liveness": client.get("/healthz", **extra),
        "readiness": client.get("/readyz", **extra),
        "login refused": client.post(
            "/api/auth/login",
            {"email": "x@example.com", "password": "wrong"},
            format="json",
            **extra,
        ),
        "refresh refused": client.post(
            "/api/auth/refresh", {"refresh": "nope"}, format="json", **extra
        ),
    }


def test_every_kind_of_response_carries_the_three_headers(anon_client):
    for name, response in answers(anon_client).items():
        missing = [header for header in TRIO if header not in response.headers]
        assert not missing, (name, response.status_code, missing)
        limit, remaining, reset = limit_headers(response)
        assert 0 <= remaining < limit and reset == WINDOW_END, name


def test_each_names_the_limit_that_applied(anon_client, settings):
    seen = answers(anon_client)
    for name in ("login refused", "refresh refused"):
        assert limit_headers(seen[name])[0] == settings.SVERM_AUTH_RATE == 20, name
    for name in ("liveness", "readiness"):
        assert limit_headers(seen[name])[0] == settings.SVERM_PROBE_RATE, name
    anon = [n for n in seen if not n.startswith(("login", "refresh", "liveness", "readiness"))]
    # Counted one after the other against the same IP's one counter, in the order sent.
    assert [limit_headers(seen[n]) for n in anon] == [
        (settings.SVERM_ANON_RATE, settings.SVERM_ANON_RATE - i, WINDOW_END)
        for i in range(1, len(anon) + 1)
    ]
    assert [limit_headers(seen[n])[1] for n in ("login refused", "refresh refused")] == [19, 18]


def test_the_count_is_per_client_ip(anon_client, settings):
    first = anon_client.get("/v1/swarms", REMOTE_ADDR="10.0.0.1")
    anon_client.get("/v1/swarms", REMOTE_ADDR="10.0.0.1")
    other = anon_client.get("/v1/swarms", REMOTE_ADDR="10.0.0.2")
    assert limit_headers(first)[1] == limit_headers(other)[1] == settings.SVERM_ANON_RATE - 1


def test_over_the_ip_limit_refused_credentials_get_429_but_a_valid_key_still_works(
    anon_client, key_client, workspace, settings
):
    settings.SVERM_ANON_RATE = 3
    statuses = [anon_client.get("/v1/swarms", **BAD_KEY).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    refused = anon_client.get("/v1/swarms", **BAD_KEY)
    error = assert_v1_error(refused, 429, "rate_limited")
    assert "client IP" in error["message"]
    assert error["details"] == {
        "limit": "anon_per_minute", "scope": "client_ip", "allowed": 3
    }  # fmt: skip
    assert limit_headers(refused) == (3, 0, WINDOW_END)
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert_problem(anon_client.get("/api/nowhere"), 429, "rate_limited")
    client, _key, _raw = key_client(workspace)  # same IP, a key that checks out
    ok = client.get("/v1/swarms")
    assert ok.status_code == 200 and limit_headers(ok) == (10, 9, WINDOW_END)


def test_pages_outside_the_api_are_not_counted(anon_client):
    for path in ("/admin/login/", "/static/does-not-exist.css"):
        response = anon_client.get(path)
        assert not any(header in response.headers for header in TRIO), path


def test_switched_off_only_auth_keeps_its_limit(anon_client, settings):
    settings.SVERM_RATE_LIMITS = False
    seen = answers(anon_client)
    counted = {name for name, response in seen.items() if "X-RateLimit-Limit" in response}
    assert counted == {"login refused", "refresh refused"}


def test_the_schema_declares_the_headers_on_every_response(anon_client):
    schema = anon_client.get("/openapi.json").json()
    undeclared = [
        f"{method.upper()} {path} {status}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if not set(TRIO) <= set(response.get("headers", {}))
    ]
    assert not undeclared, undeclared[:10]
    assert set(TRIO) <= set(schema["components"]["headers"])


def test_a_real_server_sends_them_on_every_kind_of_response(tmp_path):
    """Through the ASGI stack `make run` serves (the async middleware path)."""
    env = embedded_server_env(tmp_path, SVERM_SIMULATED_LATENCY="0")
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", "limits@example.com", "--plan", "free")
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    process, base, _access_log = start_embedded_server(env, tmp_path)
    try:
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            responses = {
                "no key": http.get("/v1/swarms"),
                "bad key": http.get("/v1/swarms", headers={"Authorization": "Bearer sk-sverm-x"}),
                "unknown route": http.get("/api/nowhere"),
                "docs": http.get("/openapi.json"),
                "probe": http.get("/healthz"),
                "login": http.post("/api/auth/login", json={"email": "a@b.c", "password": "x"}),
                "key": http.get("/v1/swarms", headers={"Authorization": f"Bearer {key}"}),
                "key, fast path": http.get(
                    "/v1/swarms/run_00000000000000000000000000",
                    headers={"Authorization": f"Bearer {key}"},
                ),
            }
    finally:
        stop(process)
    for name, response in responses.items():
        assert all(header in response.headers for header in TRIO), (name, response.headers)
    assert responses["no key"].headers["X-RateLimit-Limit"] == "60"
    assert responses["bad key"].headers["X-RateLimit-Remaining"] == "58"
    assert responses["login"].headers["X-RateLimit-Limit"] == "20"
    assert responses["key"].headers["X-RateLimit-Limit"] == "10"  # the free plan's

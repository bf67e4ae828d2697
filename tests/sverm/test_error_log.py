"""Seed 000: the correlation id of an error "is logged server-side". In a real embedded server
(`python -m sverm.server`, what `make run` starts), every error response, whatever produced it
(a route, authentication, the rate limiter, the NUL refusal, validation), is one line of the
server's log with method, path, status, error code and that id."""

import re

import httpx

from tests.processes import (
    TIMEOUT,
    embedded_server_env,
    manage,
    start_embedded_server,
    stop,
    wait_for_line,
)


def test_the_embedded_server_logs_each_error_with_its_correlation_id(tmp_path):
    env = embedded_server_env(tmp_path, SVERM_SIMULATED_LATENCY="0")
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", "errors@example.com", "--plan", "free")
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    auth = {"Authorization": f"Bearer {key}"}

    process, base, _access_log = start_embedded_server(env, tmp_path)
    server_log = tmp_path / "server.log"
    try:
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            expected = [
                (client.get("/v1/swarms/run_doesnotexist", headers=auth),
                 "GET /v1/swarms/run_doesnotexist -> 404 not_found"),
                (client.get("/v1/templates"), "GET /v1/templates -> 401 unauthorized"),
                (client.get("/api/swarms?name=a%00", headers=auth),
                 "GET /api/swarms -> 400 invalid_request"),
                (client.post("/v1/swarms", headers=auth,
                             json={"template": "research-swarm-v1", "task": 123}),
                 "POST /v1/swarms -> 400 invalid_request"),
                (client.get("/api/swarms/swm_%00x", headers={**auth, "X-Request-ID": "ticket-9"}),
                 "GET /api/swarms/swm_%00x -> 400 invalid_request"),
            ]  # fmt: skip
            # The free plan allows 10 requests a minute: the 11th of the window is a 429.
            for _ in range(12):
                throttled = client.get("/v1/templates", headers=auth)
                if throttled.status_code == 429:
                    break
            expected.append((throttled, "GET /v1/templates -> 429 rate_limited"))
        for response, _line in expected:
            assert response.status_code >= 400, response.text
        assert expected[4][0].headers["X-Request-ID"] == "ticket-9"
        last = expected[-1][0].headers["X-Request-ID"]
        wait_for_line(server_log, rf"correlation_id={re.escape(last)} ")
    finally:
        stop(process)

    lines = server_log.read_text().splitlines()
    for response, start in expected:
        correlation_id = response.headers["X-Request-ID"]
        body = response.json()
        assert (body.get("error") or body)["correlation_id"] == correlation_id
        found = [line for line in lines if f"correlation_id={correlation_id} " in line]
        assert len(found) == 1, (correlation_id, lines)
        assert f"sverm.api [{correlation_id}] {start} correlation_id={correlation_id} " in found[0]

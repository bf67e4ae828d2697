"""Credentials in query strings (`?token=` on WebSocket URLs, or any request) never reach a log:
the access log of the embedded server (`python -m sverm.server`, Daphne, what `make run`
starts), the logs of the production server (Uvicorn workers with sverm/uvicorn_logging.yaml, what
the Dockerfile and docker-compose.yml start) and the lines of Django's and Daphne's loggers."""

import asyncio
import contextlib
import io
import logging
import re
import secrets

import httpx
import pytest
import websockets
from daphne.management.commands.runserver import Command as DaphneRunserver
from uvicorn.logging import AccessFormatter

from sverm.server import REDACTED, RedactQuerySecrets, redact_query_secrets
from tests.processes import (
    TIMEOUT,
    UVICORN_LOG_CONFIG,
    embedded_server_env,
    manage,
    start_embedded_server,
    start_uvicorn_server,
    stop,
    stop_group,
    wait_for_line,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/healthz?token=abc", f"/healthz?token={REDACTED}"),
        ("/s?after=3&token=abc&x=1", f"/s?after=3&token={REDACTED}&x=1"),
        (
            "/s?access_token=a&api_key=b&key=c&monkey=d",
            f"/s?access_token={REDACTED}&api_key={REDACTED}&key={REDACTED}&monkey=d",
        ),
        ("/s?TOKEN=a;Key=b", f"/s?TOKEN={REDACTED};Key={REDACTED}"),
        ("/s?%74oken=a&api%5Fkey=b", f"/s?%74oken={REDACTED}&api%5Fkey={REDACTED}"),
        ("/s?token=a#frag", f"/s?token={REDACTED}#frag"),
        ("/s?token=&after=1", f"/s?token={REDACTED}&after=1"),
        ('GET /s?token=a.b.c HTTP/1.1" 200', f'GET /s?token={REDACTED} HTTP/1.1" 200'),
        ("/s?tokens=a&keys=b", "/s?tokens=a&keys=b"),
        ("/plain/path", "/plain/path"),
        ("token=abc without a query", "token=abc without a query"),
    ],
)
def test_redact_query_secrets(path, expected):
    assert redact_query_secrets(path) == expected


# --- the real server process ----------------------------------------------------------------


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    # Django's request logging at its most talkative, so it too is checked.
    return embedded_server_env(tmp_path, LOG_LEVEL="DEBUG")


async def websocket_close_code(url: str) -> int | None:
    """Open `url`, read until the server closes (or hang up after the first message)."""
    async with websockets.connect(url, open_timeout=TIMEOUT) as ws:
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            await asyncio.wait_for(ws.recv(), 1)
        return ws.close_code


def test_the_server_entry_point_logs_paths_without_query_credentials(embedded_env, tmp_path):
    manage(embedded_env, "migrate", "--noinput")
    out = manage(embedded_env, "bootstrap", "--email", "logs@example.com", "--plan", "team")
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    workspace_id = re.search(r"^Workspace: .* (wsp_\S+) \(plan", out, re.M).group(1)
    jwt_like = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(32)
    other = secrets.token_urlsafe(24)
    credentials = [key, jwt_like, other]

    process, base, access_log = start_embedded_server(embedded_env, tmp_path)
    ws_base = base.replace("http://", "ws://")
    try:
        healthz = httpx.get(f"{base}/healthz?token={jwt_like}&after=7", timeout=TIMEOUT)
        assert healthz.status_code == 200
        listed = httpx.get(
            f"{base}/api/workspaces?access_token={key}&limit=5",
            headers={"Authorization": f"Bearer {key}"},
            timeout=TIMEOUT,
        )
        assert listed.status_code == 200, listed.text
        refused = httpx.get(f"{base}/v1/templates?api_key={other}&key={key}", timeout=TIMEOUT)
        assert refused.status_code == 401

        # A valid key opens the workspace stream; a bad token is refused with 4401.
        board = f"{ws_base}/api/workspaces/{workspace_id}/stream?token={key}"
        assert asyncio.run(websocket_close_code(board)) is None  # open until we hung up
        bad = f"{ws_base}/api/runs/run_01J0000000000000000000000/stream?token={jwt_like}"
        assert asyncio.run(websocket_close_code(bad)) == 4401

        logged = wait_for_line(access_log, r'"WSDISCONNECT /api/runs/run_\S+/stream"')
    finally:
        stop(process)
    logged = access_log.read_text()
    output = (tmp_path / "server.log").read_text()

    # The access log is the real one, with paths and the parameters that are not credentials.
    assert f'"GET /healthz?token={REDACTED}&after=7" 200' in logged
    assert f'"GET /api/workspaces?access_token={REDACTED}&limit=5" 200' in logged
    assert f'"GET /v1/templates?api_key={REDACTED}&key={REDACTED}" 401' in logged
    assert f'"WSCONNECTING /api/workspaces/{workspace_id}/stream"' in logged
    assert '"WSCONNECT /api/runs/run_01J0000000000000000000000/stream"' in logged
    assert "Listening on TCP address" in output  # the server's own log was captured too
    for text in (logged, output):
        for credential in credentials:
            assert credential not in text
        assert key[len("sk-sverm-") :] not in text
        assert jwt_like.split(".")[-1] not in text


def test_the_production_server_logs_paths_without_query_credentials(embedded_env, tmp_path):
    """Uvicorn as docker-compose.yml runs it (two workers, the production log config): its
    access lines and its WebSocket handshake lines show `token=[redacted]`."""
    manage(embedded_env, "migrate", "--noinput")
    out = manage(embedded_env, "bootstrap", "--email", "uvicorn@example.com", "--plan", "team")
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    workspace_id = re.search(r"^Workspace: .* (wsp_\S+) \(plan", out, re.M).group(1)
    secret = "secret-" + secrets.token_urlsafe(24)

    process, base, output = start_uvicorn_server(
        embedded_env, tmp_path, "--workers=2", "--ws=websockets-sansio", "--lifespan=off",
        f"--log-config={UVICORN_LOG_CONFIG}",
    )  # fmt: skip
    ws_base = base.replace("http://", "ws://")
    try:
        healthz = httpx.get(f"{base}/healthz?token={secret}&after=7", timeout=TIMEOUT)
        assert healthz.status_code == 200
        refused = httpx.get(f"{base}/v1/templates?api_key={secret}", timeout=TIMEOUT)
        assert refused.status_code == 401
        # The key opens the workspace stream; a made-up token is accepted, then closed with 4401.
        board = f"{ws_base}/api/workspaces/{workspace_id}/stream?token={key}&x=1"
        assert asyncio.run(websocket_close_code(board)) is None  # open until we hung up
        bad = f"{ws_base}/api/runs/run_01J0000000000000000000000/stream?token={secret}"
        assert asyncio.run(websocket_close_code(bad)) == 4401

        # Each line is written as its request or handshake completes (in either worker).
        wait_for_line(output, r'"GET /v1/templates\S* HTTP/1.1" 401')
        wait_for_line(output, r'"WebSocket /api/runs/run_\S+/stream\S*" \[accepted\]')
    finally:
        stop_group(process)
    logged = output.read_text()

    assert f'"GET /healthz?token={REDACTED}&after=7 HTTP/1.1" 200' in logged
    assert f'"GET /v1/templates?api_key={REDACTED} HTTP/1.1" 401' in logged
    board_line = f'"WebSocket /api/workspaces/{workspace_id}/stream?token={REDACTED}&x=1"'
    assert f"{board_line} [accepted]" in logged
    assert f'"WebSocket /api/runs/run_01J0000000000000000000000/stream?token={REDACTED}"' in logged
    assert "uvicorn.access" in logged  # the production log config's layout, not Uvicorn's own
    for credential in (key, key[len("sk-sverm-") :], secret, secret[len("secret-") :]):
        assert credential not in logged


# --- log records: Django's and Daphne's request lines ------------------------------------------


@pytest.fixture
def console_log():
    """The configured console handler's output (real filters and format)."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_runserver_and_django_request_lines_are_redacted(console_log):
    secret = secrets.token_urlsafe(24)
    details = {
        "method": "GET",
        "status": 200,
        "time_taken": 0.01,
        "client": "127.0.0.1:5000",
        "path": f"/healthz?token={secret}&after=2",
    }
    # `manage.py runserver` is Daphne's: its request lines go to django.channels.server.
    runserver = DaphneRunserver()
    runserver.log_action("http", "complete", details)
    runserver.log_action("websocket", "connecting", {**details, "path": f"/s?api_key={secret}"})
    # Django's own development server line, and any other line that quotes a URL.
    logging.getLogger("django.server").info('"%s" %s %s', f"GET /x?key={secret} HTTP/1.1", 200, 2)
    logging.getLogger("sverm.anything").warning("fetching https://h/p?access_token=%s", secret)

    log = console_log.getvalue()
    assert f"/healthz?token={REDACTED}&after=2" in log
    assert f"/s?api_key={REDACTED}" in log
    assert f"GET /x?key={REDACTED} HTTP/1.1" in log
    assert f"https://h/p?access_token={REDACTED}" in log
    assert secret not in log


def test_a_traceback_is_redacted(console_log):
    secret = secrets.token_urlsafe(24)
    try:
        raise RuntimeError(f"Client error '404' for url 'https://h/p?token={secret}'")
    except RuntimeError:
        logging.getLogger("sverm.anything").exception("a webhook delivery failed")

    log = console_log.getvalue()
    assert "a webhook delivery failed" in log
    assert f"RuntimeError: Client error '404' for url 'https://h/p?token={REDACTED}'" in log
    assert secret not in log


def test_formatters_that_read_the_arguments_get_them_redacted():
    """Uvicorn's AccessFormatter unpacks `record.args`: the filter keeps them, redacted."""
    secret = secrets.token_urlsafe(24)
    args = ("127.0.0.1:5000", "GET", f"/s?token={secret}&after=2", "1.1", 200)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    assert RedactQuerySecrets().filter(record)

    formatter = AccessFormatter(fmt='%(client_addr)s - "%(request_line)s" %(status_code)s')
    line = formatter.format(record)
    assert line == f'127.0.0.1:5000 - "GET /s?token={REDACTED}&after=2 HTTP/1.1" 200 OK'

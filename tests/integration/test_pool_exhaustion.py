"""A Uvicorn process whose PostgreSQL pool is exhausted (DB_POOL_MAX_SIZE=1, its one connection
held by a request waiting on a lock): a request that gets no connection within DB_POOL_TIMEOUT
is answered 503 `service_unavailable` with Retry-After in both wire formats, logged in the one
error line with its correlation id (no traceback), /readyz reports the database check failing
within its own check timeout (not DB_POOL_TIMEOUT, which may outlast a probe), and the request
holding the connection completes once the lock is released."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from django.db import connection

from sverm.health import CHECK_TIMEOUT_SECONDS
from tests.processes import TIMEOUT, manage, start_uvicorn_server, stop_group, wait_for_line

pytestmark = pytest.mark.integration

# Long enough past the readiness check's own timeout to tell the two apart.
POOL_TIMEOUT = CHECK_TIMEOUT_SECONDS + 3


def blocked_on_a_lock(database: str) -> int:
    """Backends of `database` (other than this test's) waiting on a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid()",
            [database],
        )
        return cursor.fetchone()[0]


def test_a_request_without_a_pooled_connection_is_a_503_not_a_500(stack_env, tmp_path):
    env = {**stack_env, "DB_POOL_MAX_SIZE": "1", "DB_POOL_TIMEOUT": str(POOL_TIMEOUT)}
    out = manage(env, "bootstrap", "--email", "pool@example.com", "--plan", "team")
    key = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M).group(1)
    auth = {"Authorization": f"Bearer {key}"}
    process, base, log = start_uvicorn_server(env, tmp_path)
    try:
        # Left in reverse: the lock goes first, so no request is left waiting on it.
        with (
            ThreadPoolExecutor(4) as requests,
            httpx.Client(base_url=base, timeout=TIMEOUT) as http,
            psycopg.connect(stack_env["DATABASE_URL"]) as locker,
        ):

            def timed_get(path: str, headers: dict[str, str]) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                return http.get(path, headers=headers), time.monotonic() - started

            # Authenticating reads the API keys: the first request waits on this lock with
            # the process's only connection.
            locker.execute("LOCK TABLE accounts_apikey IN ACCESS EXCLUSIVE MODE")
            holding = requests.submit(timed_get, "/v1/swarms", auth)
            database = connection.settings_dict["NAME"]
            deadline = time.monotonic() + TIMEOUT
            while not blocked_on_a_lock(database):
                assert time.monotonic() < deadline, "the first request never reached the lock"
                time.sleep(0.05)

            waiting = [
                requests.submit(timed_get, "/v1/swarms", {**auth, "X-Request-ID": "pool-v1"}),
                requests.submit(timed_get, "/api/swarms", {**auth, "X-Request-ID": "pool-api"}),
                requests.submit(timed_get, "/readyz", {}),
            ]
            (v1, _), (api, _), (ready, ready_wait) = (future.result() for future in waiting)
            locker.rollback()  # the lock goes; the first request gets on with its connection
            held, _ = holding.result()
        assert held.status_code == 200, held.text

        assert v1.status_code == 503, v1.text
        assert v1.headers["content-type"] == "application/json"
        error = v1.json()["error"]
        assert error["code"] == "service_unavailable"
        assert error["correlation_id"] == "pool-v1"
        assert int(v1.headers["Retry-After"]) >= 1

        assert api.status_code == 503, api.text
        assert api.headers["content-type"] == "application/problem+json"
        problem = api.json()
        assert (problem["status"], problem["code"]) == (503, "service_unavailable")
        assert problem["correlation_id"] == "pool-api"
        assert int(api.headers["Retry-After"]) >= 1

        assert ready.status_code == 503, ready.text
        checks = ready.json()["checks"]
        assert checks["database"].startswith("error:"), checks
        assert checks["channelLayer"] == checks["broker"] == "ok"
        assert ready_wait < POOL_TIMEOUT, ready_wait

        text = wait_for_line(log, r"correlation_id=pool-api ")
    finally:
        stop_group(process)
    for correlation_id, path in (("pool-v1", "/v1/swarms"), ("pool-api", "/api/swarms")):
        lines = [line for line in text.splitlines() if f"correlation_id={correlation_id} " in line]
        assert len(lines) == 1, text
        assert f"GET {path} -> 503 service_unavailable correlation_id={correlation_id} " in lines[0]
    assert "Traceback" not in text and "Unhandled error" not in text, text

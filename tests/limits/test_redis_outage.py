"""A Redis outage under the production cache (sverm/cache.py): requests go on, the plan's limits
come from the database, and the rate limit counts in the process's memory (fails open to one
budget per process) with the same headers and the same 429. Needs no Redis: the cache points at
a port nothing listens on."""

import logging

import pytest

from sverm import cache as failsafe
from tests.conftest import assert_v1_error
from tests.limits.conftest import WINDOW_END, limit_headers
from tests.processes import free_port

pytestmark = pytest.mark.usefixtures("rate_limits_on", "plan_rows", "clock")


@pytest.fixture
def redis_down(settings):
    """The production cache on a Redis that is not there."""
    location = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "sverm.cache.FailSafeRedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    yield location
    failsafe.outage_of(location).succeeded()


def test_requests_are_counted_in_memory_while_redis_is_down(
    redis_down, key_client, workspace, caplog
):
    client, _key, _raw = key_client(workspace)
    with caplog.at_level(logging.WARNING, logger="sverm.cache"):
        responses = [client.get("/v1/swarms") for _ in range(10)]
        assert [r.status_code for r in responses] == [200] * 10
        assert [limit_headers(r) for r in responses] == [
            (10, remaining, WINDOW_END) for remaining in range(9, -1, -1)
        ]
        assert_v1_error(client.get("/v1/swarms"), 429, "rate_limited")
    outages = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(outages) == 1  # once for the outage, not once per request
    assert redis_down.rpartition(":")[0] in outages[0].getMessage()

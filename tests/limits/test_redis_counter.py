"""The request counter on Django's RedisCache (production): one pipelined round trip per
request, atomic under concurrency, expiring after its window. Skipped without a Redis server."""

import asyncio
import os
import threading
import time
import uuid
from unittest import mock

import pytest
import redis
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from sverm.api import throttling
from tests.conftest import assert_v1_error
from tests.limits.conftest import WINDOW_END, limit_headers

REDIS_URL = os.environ.get("SVERM_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"


def _reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not _reachable(), reason=f"no Redis at {REDIS_URL}")


@pytest.fixture
def redis_cache():
    """A RedisCache with a prefix of its own as the throttle's cache; its keys are deleted after."""
    prefix = f"sverm-test-{uuid.uuid4().hex}"
    backend = RedisCache(REDIS_URL, {"KEY_PREFIX": prefix})
    with mock.patch.object(throttling, "caches", {"default": backend}):
        yield backend
    raw = redis.Redis.from_url(REDIS_URL)
    for key in raw.scan_iter(f"{prefix}:*"):
        raw.delete(key)


def test_one_round_trip_counts_and_sets_the_expiry(redis_cache):
    window_end = int(time.time()) // 60 * 60 + 60
    with (
        mock.patch.object(redis.Redis, "execute_command", autospec=True) as direct,
        mock.patch.object(
            redis.client.Pipeline, "execute", autospec=True, side_effect=lambda pipe: [1, True]
        ) as pipelined,
    ):
        assert throttling.window_hit("k", window_end) == 1
    assert direct.call_count == 0
    assert pipelined.call_count == 1
    assert [throttling.window_hit("k", window_end) for _ in range(3)] == [1, 2, 3]
    full_key = redis_cache.make_and_validate_key("k")
    ttl = redis.Redis.from_url(REDIS_URL).ttl(full_key)
    assert 0 < ttl <= 60 + throttling.COUNTER_GRACE_SECONDS
    assert redis_cache.get("k") == 3  # a plain integer, readable through the cache too


def test_concurrent_hits_are_never_lost(redis_cache):
    window_end = int(time.time()) // 60 * 60 + 60
    counts: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        mine = [throttling.window_hit("busy", window_end) for _ in range(25)]
        with lock:
            counts.extend(mine)

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 401))


@pytest.mark.usefixtures("rate_limits_on", "plan_rows", "clock")
def test_the_api_limit_on_redis(redis_cache, key_client, workspace):
    client, _key, _raw = key_client(workspace)
    statuses = [client.get("/v1/swarms").status_code for _ in range(10)]
    assert statuses == [200] * 10
    response = client.get("/v1/swarms")
    assert_v1_error(response, 429, "rate_limited")
    assert limit_headers(response) == (10, 0, WINDOW_END)


def test_the_event_loops_count_is_the_same_counter(redis_cache):
    """`quota_hit_on_loop` (Redis's asyncio client, for the fast reads on the event loop) and
    `quota_hit` count on one counter, with its expiry, atomically under concurrency."""
    quota = throttling.MinuteQuota(limit=500, identity=f"key:{uuid.uuid4().hex}", subject="k")

    async def on_loop(times: int) -> list[int]:
        hits = await asyncio.gather(*(throttling.quota_hit_on_loop(quota) for _ in range(times)))
        return [hit.count for hit in hits]

    counts = [throttling.quota_hit(quota).count]
    counts += asyncio.run(on_loop(1))
    counts.append(throttling.quota_hit(quota).count)
    assert counts == [1, 2, 3]
    assert sorted(asyncio.run(on_loop(50))) == list(range(4, 54))
    hit = throttling.quota_hit(quota)
    assert hit.count == 54
    _now, reset, key = throttling._window(quota)
    assert hit.reset == reset
    ttl = redis.Redis.from_url(REDIS_URL).ttl(redis_cache.make_and_validate_key(key))
    assert 0 < ttl <= 60 + throttling.COUNTER_GRACE_SECONDS


def test_the_event_loop_does_not_count_where_the_cache_is_not_redis():
    quota = throttling.MinuteQuota(limit=5, identity="key:x", subject="k")
    with mock.patch.object(throttling, "caches", {"default": LocMemCache("t", {})}):
        assert asyncio.run(throttling.quota_hit_on_loop(quota)) is None

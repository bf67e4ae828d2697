"""The production cache: Django's Redis cache, made so that a Redis outage fails no request.

Every request reads the cache (its plan's limits) and counts against its rate limit there, so
with Django's RedisCache a Redis outage turned every API call into a 500. Here, while Redis is
unreachable, each operation is served by a local-memory cache of this process instead: limits
are read from the database and kept in memory, and rate limits count per process (so, with N
processes, a client may get up to N times its limit until Redis is back: they fail open). The
outage is logged once, when it starts, and once when it ends; meanwhile Redis is tried again at
most every RETRY_SECONDS, so requests do not each wait on a connection that fails.
"""

import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What Redis being away raises (a refused or dropped connection, a timeout).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
RETRY_SECONDS = 5.0

T = TypeVar("T")


class Outage:
    """Whether one Redis is taken for unreachable, for every thread of the process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.since: float | None = None  # monotonic time the outage was noticed
        self.retry_at = 0.0

    def worth_trying(self) -> bool:
        return self.since is None or time.monotonic() >= self.retry_at

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            started = self.since is None
            if started:
                self.since = now
            self.retry_at = now + RETRY_SECONDS
        if started:
            logger.warning(
                "Redis is unreachable (%s: %r): the cache and rate limits use this process's "
                "memory until it is back (tried every %g s)", self.name, error, RETRY_SECONDS,
            )  # fmt: skip

    def succeeded(self) -> None:
        if self.since is None:
            return
        with self.lock:
            since, self.since = self.since, None
        if since is not None:
            logger.warning(
                "Redis is reachable again (%s) after %.0f s", self.name, time.monotonic() - since
            )


def _without_credentials(url: str) -> str:
    """The URL as logs may show it: no user or password."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def outage_of(name: str) -> Outage:
    with _outages_lock:
        return _outages.setdefault(name, Outage(name))


class FailSafeRedisCache(RedisCache):
    """Django's RedisCache, served from this process's memory while Redis is unreachable.

    Django makes one instance per thread; the outage state and the memory fallback (a
    LocMemCache, whose storage is shared by name) are per process."""

    def __init__(self, server, params):
        super().__init__(server, params)
        name = ",".join(_without_credentials(server) for server in self._servers)
        self.outage = outage_of(name)
        self.local = LocMemCache(f"sverm-redis-fallback:{name}", params)

    def when_reachable(self, on_redis: Callable[[], T], otherwise: Callable[[], T]) -> T:
        """`on_redis()`, or `otherwise()` when Redis is (or was lately found) unreachable."""
        if self.outage.worth_trying():
            try:
                result = on_redis()
            except UNREACHABLE as error:
                self.outage.failed(error)
            else:
                self.outage.succeeded()
                return result
        return otherwise()

    async def when_reachable_on_loop(self, on_redis: Callable[[], Awaitable[T]]) -> T | None:
        """`when_reachable` for a caller on the event loop: `await on_redis()`, or None when
        Redis is (or was lately found, or is now found) unreachable."""
        if not self.outage.worth_trying():
            return None
        try:
            result = await on_redis()
        except UNREACHABLE as error:
            self.outage.failed(error)
            return None
        self.outage.succeeded()
        return result

    def _either(self, operation: str, *args, **kwargs):
        return self.when_reachable(
            lambda: getattr(super(FailSafeRedisCache, self), operation)(*args, **kwargs),
            lambda: getattr(self.local, operation)(*args, **kwargs),
        )

    def add(self, *args, **kwargs):
        return self._either("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._either("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._either("set", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._either("touch", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._either("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._either("get_many", *args, **kwargs)

    def has_key(self, *args, **kwargs):
        return self._either("has_key", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._either("incr", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._either("set_many", *args, **kwargs)

    def delete_many(self, *args, **kwargs):
        return self._either("delete_many", *args, **kwargs)

    def clear(self):
        self.local.clear()
        return self._either("clear")


# One asyncio client per event loop and Redis server: its connections belong to the loop that
# opened them (a Uvicorn worker has one loop; a test may run several, one after the other).
_async_clients: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def async_client(backend: RedisCache):
    """An asyncio client (redis-py's `redis.asyncio`) to the server `backend` writes to (its
    first: Django's RedisCacheClient), for the running event loop, with the cache's connection
    options (its timeouts): for a caller on the event loop that must not hand a round trip to a
    thread (swarms/fast_reads.py)."""
    import asyncio

    import redis.asyncio

    client = backend._cache
    url = client._servers[client._get_connection_pool_index(True)]
    by_url = _async_clients.setdefault(asyncio.get_running_loop(), {})
    if url not in by_url:
        options = dict(client._pool_options)
        options.pop("parser_class", None)  # the sync client's parser
        by_url[url] = redis.asyncio.Redis.from_url(url, **options)
    return by_url[url]

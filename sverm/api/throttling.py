"""Request limits. `/api/auth/*` is limited per client IP so passwords cannot be sprayed;
other requests count against a per-minute limit a subclass of PerMinuteRateThrottle names
(the plan's: accounts/throttling.py); what no throttle counted (refused credentials, unknown
routes, the docs, the health probes) counts per client IP in OpenRequestLimitMiddleware, so
every response of the API carries the X-RateLimit-* headers of the limit that applied (seed
002: "included in every response").

The per-minute limit is a fixed window aligned to the minute. Cost per request: one counter
(Redis: INCR + EXPIREAT in one MULTI/EXEC pipeline; other caches: `add` then `incr`, atomic in
the local-memory cache), plus what the subclass reads to name the limit. With Redis unreachable
the counter is kept in the process's memory (sverm/cache.py), so an outage fails no request.
"""

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.permissions import AllowAny
from rest_framework.throttling import BaseThrottle

from sverm.api.errors import RateLimited, is_api_path, render_error
from sverm.api.middleware import RATE_LIMIT_HEADERS_ATTR, SyncAndAsyncMiddleware

WINDOW_SECONDS = 60
# Counters outlive their window by this much so a slow request still finds its own.
COUNTER_GRACE_SECONDS = 5


def client_ip(request) -> str:
    """The client's address, as the auth rate limit counts it and the audit trail records it:
    REMOTE_ADDR, or with `NUM_PROXIES` set the address the outermost trusted proxy saw in
    X-Forwarded-For (DRF's `get_ident`). Works on Django's and DRF's requests alike."""
    return BaseThrottle().get_ident(request)


def clock() -> float:
    """Epoch seconds now (a function so tests can move the window)."""
    return time.time()


def window_hit(key: str, window_end: int) -> int:
    """Count one request against `key` (a counter of one window, ending at `window_end` epoch
    seconds); returns the window's count including this one. While Redis is unreachable the
    production cache counts in this process's memory (sverm/cache.py): the limit fails open to
    one per process rather than failing the request."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return _local_hit(backend, key, window_end)
    # Imports Redis's client (~8 MiB), which a process whose cache is in memory never loads.
    from sverm.cache import FailSafeRedisCache

    if isinstance(backend, FailSafeRedisCache):
        return backend.when_reachable(
            lambda: _redis_hit(backend, key, window_end),
            lambda: _local_hit(backend.local, key, window_end),
        )
    return _redis_hit(backend, key, window_end)


def _redis_hit(backend: RedisCache, key: str, window_end: int) -> int:
    """INCR and EXPIREAT in one MULTI/EXEC pipeline on the raw redis-py client: Django's own
    `incr` costs three round trips there (SET NX, EXISTS, INCR), the pipeline one."""
    full_key = backend.make_and_validate_key(key)
    client = backend._cache.get_client(full_key, write=True)
    with client.pipeline(transaction=True) as pipe:  # one round trip, applied atomically
        pipe.incr(full_key)
        pipe.expireat(full_key, window_end + COUNTER_GRACE_SECONDS)
        count, _ = pipe.execute()
    return int(count)


def _local_hit(backend, key: str, window_end: int) -> int:
    """`add` then `incr`: atomic in the local-memory cache."""
    timeout = max(window_end - int(clock()), 0) + COUNTER_GRACE_SECONDS
    backend.add(key, 0, timeout)
    try:
        return backend.incr(key)
    except ValueError:  # expired between the two calls: this request opens a new counter
        backend.add(key, 1, timeout)
        return 1


@dataclass(frozen=True)
class MinuteQuota:
    """What one request counts against: `limit` requests per minute on the counter named
    `identity`; `subject` names it in the 429's message, `details` go into the 429's details."""

    limit: int
    identity: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QuotaHit:
    """One request counted against a MinuteQuota: the window's count including it."""

    quota: MinuteQuota
    count: int
    reset: int  # the window's end, epoch seconds
    now: float

    @property
    def exceeded(self) -> bool:
        return self.count > self.quota.limit

    @property
    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers the response carries, whatever it becomes."""
        return {
            "X-RateLimit-Limit": str(self.quota.limit),
            "X-RateLimit-Remaining": str(max(self.quota.limit - self.count, 0)),
            "X-RateLimit-Reset": str(self.reset),
        }

    def refusal(self) -> RateLimited:
        quota = self.quota
        refused = RateLimited(
            f"Rate limit of {quota.limit} requests per minute exceeded for {quota.subject}.",
            details={"limit": "requests_per_minute", **quota.details, "allowed": quota.limit},
            headers={"Retry-After": str(max(math.ceil(self.reset - self.now), 1))},
        )
        refused.scope = quota.identity.partition(":")[0]  # `key:…`, `user:…` or `ip:…`
        return refused


def _window(quota: MinuteQuota) -> tuple[float, int, str]:
    """Now, the current minute's end (epoch seconds) and `quota`'s counter of that minute."""
    now = clock()
    window = int(now // WINDOW_SECONDS)
    return now, (window + 1) * WINDOW_SECONDS, f"sverm:ratelimit:{quota.identity}:{window}"


def quota_hit(quota: MinuteQuota) -> QuotaHit:
    """Count one request against `quota`'s counter of the current minute."""
    now, reset, key = _window(quota)
    return QuotaHit(quota=quota, count=window_hit(key, reset), reset=reset, now=now)


async def quota_hit_on_loop(quota: MinuteQuota) -> QuotaHit | None:
    """`quota_hit` for a caller on the event loop, with Redis's asyncio client (the same
    counter, INCR and EXPIREAT in one round trip) so no thread waits on Redis: None when it
    cannot count there (the cache is not Redis's, Redis is in an outage or fails now), and the
    caller counts with `quota_hit` on a thread instead, which falls back to the process's
    memory. A plain pipeline rather than `_redis_hit`'s MULTI/EXEC, about a third cheaper here
    (bench/README.md, "Where a read's time goes"): both commands go in one write, and a counter
    whose EXPIREAT were lost would only outlive its minute (its key names the minute)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    from redis.exceptions import RedisError

    from sverm.cache import FailSafeRedisCache, async_client

    now, reset, key = _window(quota)
    full_key = backend.make_and_validate_key(key)

    async def count() -> int:
        async with async_client(backend).pipeline(transaction=False) as pipe:
            pipe.incr(full_key)
            pipe.expireat(full_key, reset + COUNTER_GRACE_SECONDS)
            counted, _ = await pipe.execute()
        return int(counted)

    try:
        if isinstance(backend, FailSafeRedisCache):
            counted = await backend.when_reachable_on_loop(count)
        else:
            counted = await count()
    except (RedisError, OSError):
        return None
    return None if counted is None else QuotaHit(quota=quota, count=counted, reset=reset, now=now)


async def quota_hit_async(quota: MinuteQuota) -> QuotaHit:
    """`quota_hit` on the event loop: Redis's asyncio client, else a thread for Redis's
    blocking one, else (the counter is in this process's memory, no I/O) right here."""
    hit = await quota_hit_on_loop(quota)
    if hit is not None:
        return hit
    if isinstance(caches["default"], RedisCache):
        return await sync_to_async(quota_hit)(quota)
    return quota_hit(quota)


# ---------------------------------------------------------------------------------------------
# Per client IP: what no plan counts
# ---------------------------------------------------------------------------------------------
IP_SCOPES = {
    "auth": ("SVERM_AUTH_RATE", "this client IP on /api/auth"),
    "anon": ("SVERM_ANON_RATE", "this client IP without a valid credential"),
    "probe": ("SVERM_PROBE_RATE", "this client IP on the health probes"),
}
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
DOCS_PATHS = frozenset({"/openapi.json", "/asyncapi.json", "/asyncapi.yaml", "/docs", "/redoc"})


def ip_quota(request, scope: str) -> MinuteQuota:
    """The per-minute limit of `scope` (IP_SCOPES) for the request's client IP."""
    setting, subject = IP_SCOPES[scope]
    return MinuteQuota(
        limit=getattr(settings, setting),
        identity=f"ip:{scope}:{client_ip(request)}",
        subject=subject,
        details={"limit": f"{scope}_per_minute", "scope": "client_ip"},
    )


def open_scope(path: str) -> str | None:
    """The per-IP scope a request to `path` counts in when no throttle counted it: the health
    probes' own, else for the API and its documents `anon`; None (not counted) for the rest
    (the admin, the live pages, static files)."""
    if path in PROBE_PATHS:
        return "probe"
    if path in DOCS_PATHS or is_api_path(path):
        return "anon"
    return None


class OpenRequestLimitMiddleware(SyncAndAsyncMiddleware):
    """Counts per client IP (IP_SCOPES) every API, docs or probe request no throttle counted —
    refused or missing credentials, unknown routes, views open to anyone — so its response
    carries X-RateLimit-* too; over the limit the response is a 429 instead (nothing these
    requests do changes anything). With SVERM_RATE_LIMITS off, nothing is counted here."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        response = self.get_response(request)
        quota = self.uncounted(request)
        return response if quota is None else self.counted(request, response, quota_hit(quota))

    async def __acall__(self, request):
        response = await self.get_response(request)
        quota = self.uncounted(request)
        if quota is None:
            return response
        return self.counted(request, response, await quota_hit_async(quota))

    @staticmethod
    def uncounted(request) -> MinuteQuota | None:
        if not settings.SVERM_RATE_LIMITS or hasattr(request, RATE_LIMIT_HEADERS_ATTR):
            return None
        scope = open_scope(request.path)
        return None if scope is None else ip_quota(request, scope)

    @staticmethod
    def counted(request, response, hit: QuotaHit):
        setattr(request, RATE_LIMIT_HEADERS_ATTR, hit.headers)
        if hit.exceeded and response.status_code != 429:
            return render_error(request, hit.refusal())
        return response


# ---------------------------------------------------------------------------------------------
# Throttles (DRF views)
# ---------------------------------------------------------------------------------------------
class PerMinuteRateThrottle(BaseThrottle):
    """`quota(request)`'s requests per minute, for every request of a view that is not open to
    anyone (no quota: not counted). Remembers the limit, what remains and the window's end on
    the Django request for RequestIdMiddleware to send as X-RateLimit-* headers on whatever the
    response becomes. `always`: counts on open views too, and with SVERM_RATE_LIMITS off."""

    always = False

    def quota(self, request) -> MinuteQuota | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        if not self.always:
            if not settings.SVERM_RATE_LIMITS:
                return True
            if all(isinstance(permission, AllowAny) for permission in view.get_permissions()):
                return True
        quota = self.quota(request)
        if quota is None:
            return True
        hit = quota_hit(quota)
        setattr(request._request, RATE_LIMIT_HEADERS_ATTR, hit.headers)
        if hit.exceeded:
            raise hit.refusal()
        return True


class AuthRateThrottle(PerMinuteRateThrottle):
    """`/api/auth/*`: SVERM_AUTH_RATE requests a minute per client IP, always (it guards
    passwords, whatever SVERM_RATE_LIMITS says)."""

    always = True

    def quota(self, request) -> MinuteQuota:
        return ip_quota(request, "auth")

"""Request throttles. `/api/auth/*` is limited per client IP so passwords cannot be sprayed;
every other authenticated request counts against its plan's requests per minute (seed 002).

The plan limit is a fixed window aligned to the minute, counted per API key, or per user for a
JWT. The plan is the API key's workspace's, or for a JWT the plan of the workspace a `/v1` call
would act in (the `Sverm-Workspace` header, else the user's oldest membership; free without one).

Cost per request, rate limits on: one cache read for the plan's limits (cached 30 s), one for
the counter (Redis: INCR + EXPIREAT in one MULTI/EXEC pipeline; other caches: `add` then
`incr`, atomic in the local-memory cache), plus for a JWT one primary-key query for the
workspace's plan (an API key's workspace is loaded with the key). With Redis unreachable both
are served from the process's memory (sverm/cache.py), so an outage fails no request.
"""

import math
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.permissions import AllowAny
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from sverm.api.errors import RateLimited
from sverm.api.middleware import RATE_LIMIT_HEADERS_ATTR
from sverm.api.scoping import caller_for
from sverm.cache import FailSafeRedisCache

WINDOW_SECONDS = 60
# Counters outlive their window by this much so a slow request still finds its own.
COUNTER_GRACE_SECONDS = 5


class AuthRateThrottle(SimpleRateThrottle):
    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def clock() -> float:
    """Epoch seconds now (a function so tests can move the window)."""
    return time.time()


def window_hit(key: str, window_end: int) -> int:
    """Count one request against `key` (a counter of one window, ending at `window_end` epoch
    seconds); returns the window's count including this one. While Redis is unreachable the
    production cache counts in this process's memory (sverm/cache.py): the limit fails open to
    one per process rather than failing the request."""
    backend = caches["default"]
    if isinstance(backend, FailSafeRedisCache):
        return backend.when_reachable(
            lambda: _redis_hit(backend, key, window_end),
            lambda: _local_hit(backend.local, key, window_end),
        )
    if isinstance(backend, RedisCache):
        return _redis_hit(backend, key, window_end)
    return _local_hit(backend, key, window_end)


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


def _plan_and_subject(request) -> tuple[str, str, str] | None:
    """(plan, counter identity, who for messages) of an authenticated request, else None."""
    from accounts.models import ApiKey, Plan
    from accounts.selectors import workspace_plan

    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return auth.workspace.plan, f"key:{auth.pk}", "this API key"
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    caller = caller_for(request)
    requested = request.headers.get("Sverm-Workspace")
    if requested and caller.role_in(requested) is not None:
        plan = workspace_plan(workspace_id=requested)
    elif caller.roles:
        plan = workspace_plan(workspace_id=next(iter(caller.roles)))
    else:
        plan = Plan.FREE
    return plan, f"user:{user.pk}", "this user"


class PlanRateThrottle(BaseThrottle):
    """The plan's requests per minute, for every authenticated request of a view that is not
    open to anyone. Remembers the limit, what remains and the window's end on the Django request
    for RequestIdMiddleware to send as X-RateLimit-* headers on whatever the response becomes."""

    def allow_request(self, request, view) -> bool:
        from accounts.selectors import plan_limits

        if not settings.SVERM_RATE_LIMITS:
            return True
        if all(isinstance(permission, AllowAny) for permission in view.get_permissions()):
            return True
        subject = _plan_and_subject(request)
        if subject is None:
            return True
        plan, identity, who = subject
        limit = plan_limits(plan=plan).requests_per_minute
        now = clock()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS
        count = window_hit(f"sverm:ratelimit:{identity}:{window}", reset)
        setattr(
            request._request,
            RATE_LIMIT_HEADERS_ATTR,
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(limit - count, 0)),
                "X-RateLimit-Reset": str(reset),
            },
        )
        if count > limit:
            raise RateLimited(
                f"Rate limit of {limit} requests per minute exceeded for {who} (plan {plan}).",
                details={"limit": "requests_per_minute", "plan": plan, "allowed": limit},
                headers={"Retry-After": str(max(math.ceil(reset - now), 1))},
            )
        return True

"""The hot reads served in front of Django's request handler: a run's status by id with an API
key, `GET /v1/swarms/{id}` and `GET /api/runs/{id}`, the call a client polls.

Through Django's ASGI handler a read hops between the event loop and threads about 16 times
(each `MiddlewareMixin` hook, the sync-only WhiteNoise, the sync view), and those hops, not the
read, are where its time goes (bench/README.md, "Where a read's time goes"). Here the read makes
one hop: the same steps as the view, in one call on a thread of a small pool of its own:

- the key checked by `api_key_authenticate` (revoked, expired, deactivated owner and
  `last_used_at` as everywhere), the caller built by `caller_build`;
- the run found through `for_caller` (the one scoping rule), in the key's workspace on `/v1`;
- the plan's per-minute quota counted by `quota_hit`, as PlanRateThrottle counts it;
- the view's serializer and DRF's JSON renderer, so the body is byte for byte the view's;
- Django's own SecurityMiddleware and XFrameOptionsMiddleware on the response, the request id
  and the rate-limit headers as RequestIdMiddleware sets them.

A finished run does not change, so its rendered body is kept in this process's memory, and so
is an API key that checked out (with its plan's per-minute limit), for SVERM_FAST_READ_CACHE_SECONDS
(2 s by default, 0: not kept). A save or delete of a run, key, user, workspace or plan in this
process drops what it touches at once (`forget_on_change`); another process's change shows here
within those seconds: a revoked key still reads a finished run's status for up to that long on a
process that verified it just before. A key's expiry holds to the instant from memory too
(its grant carries `expires_at`). A read found in memory is answered on the event loop, with
no thread hop at all: its count is made in this process's memory where the cache is (the
embedded default), or with Redis's asyncio client (production: `quota_hit_on_loop`, the same
counter); while Redis is unreachable a read thread counts it in the process's memory instead.

Anything else goes to Django unchanged, before any work is done or after the work found it is
not the plain case: another method, a query string, a JWT, a cookie, `Sverm-Workspace`, an
`Accept` other than JSON, an id that is not a run id; an unknown, revoked or out-of-scope key or
run; a refusal by the quota (Django then answers the 429; the refused request is counted twice,
within a window already over its limit); any error, such as the database unreachable (Django
answers and logs it). tests/runs/test_fast_reads.py holds the fast answer to the view's, header
for header. `SVERM_FAST_READS=false` turns this off.
"""

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from io import BytesIO

from cachetools import TTLCache
from django.conf import settings
from django.core import signals
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.handlers.asgi import ASGIRequest
from django.db.models.signals import post_delete, post_save
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import Serializer

from accounts.models import ApiKey, PlanLimits, User, Workspace, api_key_expired
from accounts.roles import Role
from accounts.services import API_KEY_PREFIX, api_key_authenticate, api_key_digest
from accounts.tenancy import caller_build
from accounts.throttling import api_key_quota
from sverm.api.errors import Unauthorized
from sverm.api.middleware import REQUEST_ID_HEADER, request_id_from
from sverm.api.throttling import MinuteQuota, QuotaHit, quota_hit, quota_hit_on_loop
from swarms.models import Run
from swarms.serializers import RunSerializer, V1RunStatusSerializer

logger = logging.getLogger(__name__)

# Threads that run the reads, each with its own database connection (closed or kept per
# CONN_MAX_AGE / the pool, as after any request).
READ_THREADS = 4
_RUN_ID = r"(?P<run_id>run_[0-9a-z]{26})"
_JSON_ACCEPTS = frozenset({b"", b"*/*", b"application/json"})


@dataclass(frozen=True)
class Route:
    """A hot read: its path, the view's serializer and `Allow` header, and whether the run is
    looked up in the API key's workspace (`/v1`) or in every workspace the caller sees."""

    path: re.Pattern
    serializer: type[Serializer]
    allow: str
    v1: bool


ROUTES = (
    Route(re.compile(rf"/v1/swarms/{_RUN_ID}"), V1RunStatusSerializer,
          "GET, DELETE, HEAD, OPTIONS", v1=True),
    Route(re.compile(rf"/api/runs/{_RUN_ID}"), RunSerializer, "GET, PATCH, HEAD, OPTIONS",
          v1=False),
)  # fmt: skip


@dataclass(frozen=True)
class Read:
    """A request this module serves: the route, the run id, the raw API key."""

    route: Route
    run_id: str
    api_key: str

    @cached_property
    def digest(self) -> str:
        """The key as it is stored, and as this process remembers it."""
        return api_key_digest(self.api_key)


def read_of(scope: dict) -> Read | None:
    """The hot read `scope` asks for, or None when Django should answer it."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
        return None
    if scope.get("root_path"):
        return None
    path = scope["path"]
    route = next((route for route in ROUTES if route.path.fullmatch(path)), None)
    if route is None:
        return None
    authorization = accept = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"accept":
            accept = value
        elif name in (b"cookie", b"sverm-workspace"):
            return None
    if accept is not None and accept.strip() not in _JSON_ACCEPTS:
        return None
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not token.startswith(API_KEY_PREFIX.encode()):
        return None
    try:
        raw = token.strip().decode("ascii")
    except UnicodeDecodeError:
        return None
    return Read(route, path.rsplit("/", 1)[1], raw)


def serve(read: Read, scope: dict, memory_tried: bool = False) -> HttpResponse | None:
    """The read's response as the view would answer it, or None to leave it to Django; from
    memory when it holds the read (unless the caller has just looked), else from the database.
    Runs on a read thread, between Django's request signals (connections closed or kept as after
    any request)."""
    signals.request_started.send(sender=FastReads, scope=scope)
    try:
        return (None if memory_tried else remembered(read, scope)) or _answer(read, scope)
    finally:
        signals.request_finished.send(sender=FastReads)


_RENDERER = JSONRenderer()


@dataclass(frozen=True)
class Grant:
    """An API key that checked out: its workspace, its per-minute quota, and when it expires
    (None: never)."""

    workspace_id: str
    quota: MinuteQuota
    expires_at: datetime | None = None

    def expired(self) -> bool:
        return api_key_expired(self.expires_at)


@dataclass(frozen=True)
class Finished:
    """A finished run's body as one route renders it, and its workspace."""

    workspace_id: str
    body: bytes


class Memory:
    """What this process keeps between reads: key digests' grants and finished runs' bodies,
    each for `seconds` at most."""

    def __init__(self, seconds: float, keys: int = 1024, runs: int = 4096):
        self.seconds = seconds
        self._lock = threading.Lock()
        self._grants: TTLCache = TTLCache(keys, seconds or 1)
        self._runs: TTLCache = TTLCache(runs, seconds or 1)

    def grant(self, digest: str) -> Grant | None:
        with self._lock:
            return self._grants.get(digest)

    def finished(self, route: Route, run_id: str) -> Finished | None:
        with self._lock:
            return self._runs.get((route.path.pattern, run_id))

    def keep_grant(self, digest: str, grant: Grant) -> None:
        if self.seconds:
            with self._lock:
                self._grants[digest] = grant

    def keep_finished(self, route: Route, run_id: str, finished: Finished) -> None:
        if self.seconds:
            with self._lock:
                self._runs[(route.path.pattern, run_id)] = finished

    def forget_grants(self) -> None:
        with self._lock:
            self._grants.clear()

    def forget_run(self, run_id: str) -> None:
        with self._lock:
            for route in ROUTES:
                self._runs.pop((route.path.pattern, run_id), None)


_memory: Memory | None = None


def memory() -> Memory:
    global _memory
    seconds = float(settings.SVERM_FAST_READ_CACHE_SECONDS)
    if _memory is None or _memory.seconds != seconds:
        _memory = Memory(seconds)
    return _memory


def forget_on_change() -> None:
    """Connects the receivers that drop what a save or delete in this process makes stale (from
    SwarmsConfig.ready)."""
    for model in (ApiKey, User, Workspace, PlanLimits):
        post_save.connect(_forget_grants, sender=model, dispatch_uid=f"fast-reads-{model}")
        post_delete.connect(_forget_grants, sender=model, dispatch_uid=f"fast-reads-d-{model}")
    post_save.connect(_forget_run, sender=Run, dispatch_uid="fast-reads-run")
    post_delete.connect(_forget_run, sender=Run, dispatch_uid="fast-reads-d-run")


def _forget_grants(sender, **kwargs) -> None:
    if _memory is not None:
        _memory.forget_grants()


def _forget_run(sender, instance, **kwargs) -> None:
    if _memory is not None:
        _memory.forget_run(instance.pk)


def _kept(read: Read) -> tuple[Grant, Finished] | None:
    """The key's grant and the finished run's body, when memory holds both (of one workspace)."""
    kept = memory()
    grant = kept.grant(read.digest)
    if grant is None or grant.expired():
        return None
    finished = kept.finished(read.route, read.run_id)
    if finished is None or finished.workspace_id != grant.workspace_id:
        return None
    return grant, finished


def remembered(read: Read, scope: dict) -> HttpResponse | None:
    """The read answered from memory alone (no database), or None."""
    kept = _kept(read)
    if kept is None:
        return None
    grant, finished = kept
    return _respond(read, scope, finished.body, grant.quota)


# `remembered_on_loop`'s answers besides a response and None (memory does not hold the read):
# the read is Django's to answer (its quota refuses it), or memory holds it but Redis could not
# count it here (a read thread counts it, falling back to the process's memory).
TO_DJANGO = object()
UNCOUNTED = object()


async def remembered_on_loop(read: Read, scope: dict) -> HttpResponse | object | None:
    """`remembered` on the event loop where the rate-limit counter is Redis's: the request is
    counted with Redis's asyncio client, so a read from memory needs no thread. None when memory
    does not hold the read, UNCOUNTED when Redis cannot count it here, TO_DJANGO when the quota
    refuses it (Django answers the 429)."""
    kept = _kept(read)
    if kept is None:
        return None
    grant, finished = kept
    request = _request(scope)
    if request is None:
        return TO_DJANGO
    hit = None
    if grant.quota is not None and settings.SVERM_RATE_LIMITS:
        hit = await quota_hit_on_loop(grant.quota)
        if hit is None:
            return UNCOUNTED
        if hit.exceeded:
            return TO_DJANGO
    return _response(read, request, finished.body, hit)


def _answer(read: Read, scope: dict) -> HttpResponse | None:
    """The read from the database, remembering the key and, once finished, the run's body."""
    try:
        api_key = api_key_authenticate(raw_key=read.api_key)
    except Unauthorized:
        return None
    kept = memory()
    quota = api_key_quota(api_key) if settings.SVERM_RATE_LIMITS else None
    kept.keep_grant(read.digest, Grant(api_key.workspace_id, quota, api_key.expires_at))
    caller = caller_build(user=api_key.created_by, credential=api_key)
    runs = Run.objects.for_caller(caller, Role.VIEWER).filter(pk=read.run_id)
    if read.route.v1:
        runs = runs.filter(workspace_id=api_key.workspace_id)
    run = runs.first()
    if run is None or caller.role_in(run.workspace_id) is None:
        return None
    body = _RENDERER.render(read.route.serializer(run).data)
    if run.is_terminal and run.workspace_id == api_key.workspace_id:
        kept.keep_finished(read.route, run.pk, Finished(run.workspace_id, body))
    return _respond(read, scope, body, quota)


def _respond(read: Read, scope: dict, body: bytes, quota: MinuteQuota | None):
    """The view's response around `body`, with the request counted against `quota`; None when
    the quota refuses it (Django answers the 429)."""
    request = _request(scope)
    if request is None:
        return None
    hit = None
    if quota is not None and settings.SVERM_RATE_LIMITS:
        hit = quota_hit(quota)
        if hit.exceeded:
            return None
    return _response(read, request, body, hit)


def _request(scope: dict) -> ASGIRequest | None:
    """The request, or None when SecurityMiddleware redirects it to HTTPS (Django's answer)."""
    request = ASGIRequest(scope, BytesIO())
    return None if _SECURITY.process_request(request) is not None else request


def _response(read: Read, request: ASGIRequest, body: bytes, hit: QuotaHit | None):
    """The view's response around `body`, with the rate-limit headers of `hit` (if counted)."""
    response = HttpResponse(body, content_type="application/json")
    response["Allow"] = read.route.allow
    response["Content-Length"] = str(len(body))
    response[REQUEST_ID_HEADER] = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
    for name, value in (hit.headers if hit is not None else {}).items():
        response[name] = value
    _SECURITY.process_response(request, response)
    _XFRAME.process_response(request, response)
    return response


def _no_view(request):  # the two middlewares below are only asked for their hooks
    raise AssertionError("not called")


_SECURITY = SecurityMiddleware(_no_view)
_XFRAME = XFrameOptionsMiddleware(_no_view)


def _cache_is_local() -> bool:
    """Whether a rate-limit count touches no network (off, or the local-memory cache)."""
    return not settings.SVERM_RATE_LIMITS or isinstance(caches["default"], LocMemCache)


class FastReads:
    """ASGI middleware: serves the hot reads (`read_of`) with one thread hop, and passes every
    other connection, and every read it leaves, to `app` untouched."""

    def __init__(self, app: Callable, threads: int = READ_THREADS):
        self.app = app
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None

    async def _on_thread(self, read: Read, scope: dict, memory_tried: bool):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, serve, read, scope, memory_tried)
        except Exception:  # e.g. the database unreachable: Django answers it (503), and logs it
            logger.debug("fast read of %s left to Django", scope["path"], exc_info=True)
            return None

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="sverm-read")
        return self._executor

    async def __call__(self, scope, receive, send):
        read = read_of(scope) if settings.SVERM_FAST_READS else None
        if read is not None:
            # From memory on the event loop: with the counter in this process's memory, or in
            # Redis through its asyncio client; else (or when memory does not hold the read,
            # or Redis cannot count it now) on a read thread.
            if _cache_is_local():
                response = remembered(read, scope)
            else:
                response = await remembered_on_loop(read, scope)
            if response is None or response is UNCOUNTED:
                tried = response is None  # memory was, unless only the count failed
                response = await self._on_thread(read, scope, memory_tried=tried)
            if response is TO_DJANGO:
                response = None
            if response is not None:
                await send({
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(name.encode("latin-1"), value.encode("latin-1"))
                                for name, value in response.items()],
                })  # fmt: skip
                await send({"type": "http.response.body", "body": response.content})
                return
        await self.app(scope, receive, send)

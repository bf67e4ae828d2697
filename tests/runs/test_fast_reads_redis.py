"""The fast reads with production's cache (Redis): a finished run's read from memory is counted
with Redis's asyncio client on the event loop, on the plan's one counter, so it needs no read
thread; with Redis down it is counted on a read thread in the process's memory instead, as every
other request then is. Skipped without a Redis server."""

import uuid

import pytest
import redis

from accounts.models import PlanLimits
from sverm import cache as failsafe
from swarms import fast_reads
from swarms.models import RunStatus
from tests.factories import make_run
from tests.limits.test_redis_counter import REDIS_URL, _reachable
from tests.processes import free_port
from tests.runs.test_fast_reads import STATIC_HEADERS, Spy, get

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not _reachable(), reason=f"no Redis at {REDIS_URL}"),
]


def production_cache(settings, location: str) -> str:
    prefix = f"sverm-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "sverm.cache.FailSafeRedisCache",
            "LOCATION": location,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.SVERM_RATE_LIMITS = True
    return prefix


@pytest.fixture
def on_redis(settings):
    prefix = production_cache(settings, REDIS_URL)
    yield
    raw = redis.Redis.from_url(REDIS_URL)
    for key in raw.scan_iter(f"{prefix}:*"):
        raw.delete(key)


@pytest.fixture
def redis_down(settings):
    location = f"redis://127.0.0.1:{free_port()}/0"
    production_cache(settings, location)
    yield
    failsafe.outage_of(location).succeeded()


@pytest.fixture
def django_app():
    from django.core.asgi import get_asgi_application

    fast_reads.memory().forget_grants()
    return Spy(get_asgi_application())


def remaining(answer) -> int:
    return int(answer.headers["x-ratelimit-remaining"])


@pytest.mark.usefixtures("on_redis")
def test_a_read_from_memory_is_counted_on_the_event_loop(django_app, workspace, keyed):
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED, output="Done.")
    path = f"/v1/swarms/{run.pk}"
    first = get(fast_reads.FastReads(django_app), path, headers)  # from the database, kept
    on_loop = fast_reads.FastReads(django_app)  # this process's memory, a new read pool
    answers = [get(on_loop, path, headers) for _ in range(3)]
    assert on_loop._executor is None  # no read thread was needed
    assert django_app.paths == []
    assert [answer.status_code for answer in [first, *answers]] == [200] * 4
    assert len({answer.content for answer in [first, *answers]}) == 1
    # One counter: each read took one from the plan's limit, in order.
    assert [remaining(answer) for answer in answers] == [remaining(first) - n for n in (1, 2, 3)]
    view = get(django_app, path, headers)  # Django's own answer, counted on the same counter
    assert remaining(view) == remaining(first) - 4
    for name in STATIC_HEADERS:
        assert answers[0].headers.get(name) == view.headers.get(name), name


@pytest.mark.usefixtures("on_redis")
def test_the_plan_limit_holds_on_the_event_loop(django_app, workspace, keyed):
    PlanLimits.objects.update_or_create(
        plan=workspace.plan,
        defaults={"requests_per_minute": 3, "concurrent_runs": 1, "runs_per_day": None},
    )
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/api/runs/{run.pk}"
    assert get(fast_reads.FastReads(django_app), path, headers).status_code == 200
    on_loop = fast_reads.FastReads(django_app)
    answers = [get(on_loop, path, headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == "rate_limited"  # /api's problem details
    assert "retry-after" in answers[2].headers
    assert django_app.paths == [path]  # the refusal is the view's
    assert on_loop._executor is None


@pytest.mark.usefixtures("redis_down")
def test_with_redis_down_a_read_from_memory_is_counted_in_memory(django_app, workspace, keyed):
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/v1/swarms/{run.pk}"
    first = get(fast_reads.FastReads(django_app), path, headers)
    later = fast_reads.FastReads(django_app)
    answers = [get(later, path, headers) for _ in range(3)]
    assert [answer.status_code for answer in [first, *answers]] == [200] * 4
    assert [remaining(answer) for answer in answers] == [remaining(first) - n for n in (1, 2, 3)]
    assert later._executor is not None  # counted on a read thread, in the process's memory
    assert django_app.paths == []

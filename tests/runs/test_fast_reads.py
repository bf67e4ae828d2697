"""The hot status reads served in front of Django (swarms/fast_reads.py): the same answer as the
view, header for header; from memory only for finished runs and checked keys, forgotten when
this process changes them; and everything else left to Django."""

import asyncio
import hashlib

import httpx
import pytest
from django.core.asgi import get_asgi_application
from django.core.cache import cache
from django.db import connection

from accounts.models import PlanLimits
from accounts.services import api_key_revoke
from swarms import fast_reads
from swarms.models import Run, RunStatus
from tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)

STATIC_HEADERS = (
    "content-type",
    "allow",
    "content-length",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "x-ratelimit-limit",
    "x-ratelimit-reset",
)


class Spy:
    """Django's ASGI app, noting the paths it was asked for."""

    def __init__(self, app):
        self.app, self.paths = app, []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture(autouse=True)
def _rate_limits_on(settings):
    """Counted as in production, on counters of this test's own."""
    settings.SVERM_RATE_LIMITS = True
    cache.clear()


@pytest.fixture
def django_app():
    return get_asgi_application()


@pytest.fixture
def apps(django_app):
    """(the fast reads in front of a spied Django, the spy)."""
    fast_reads.memory().forget_grants()
    spy = Spy(django_app)
    return fast_reads.FastReads(spy), spy


def get(app, path: str, headers: dict[str, str], method: str = "GET") -> httpx.Response:
    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.request(method, path, headers=headers)

    return asyncio.run(call())


def paths_of(run: Run) -> list[str]:
    return [f"/v1/swarms/{run.pk}", f"/api/runs/{run.pk}"]


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.COMPLETED])
def test_a_status_read_is_answered_as_the_view_answers_it(apps, django_app, workspace, keyed,
                                                          status):  # fmt: skip
    app, spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=status, output="Done." if status == "completed" else "")
    for path in paths_of(run):
        fast = get(app, path, headers)
        slow = get(django_app, path, headers)
        assert spy.paths == []  # served in front of Django
        assert fast.status_code == slow.status_code == 200
        assert fast.content == slow.content
        assert fast.json()["status"] == status
        for name in STATIC_HEADERS:
            assert fast.headers.get(name) == slow.headers.get(name), name
        assert fast.headers["x-request-id"] == slow.headers["x-request-id"] == "req-fast-1"
        # Both counted against the key's plan, the view's read one after the fast one.
        remaining = int(fast.headers["x-ratelimit-remaining"])
        assert int(slow.headers["x-ratelimit-remaining"]) == remaining - 1
        assert set(fast.headers) - {"x-ratelimit-remaining"} == set(slow.headers) - {
            "x-ratelimit-remaining"
        }


def test_without_a_request_id_each_answer_gets_a_fresh_one(apps, workspace, keyed):
    app, _spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    headers = {"Authorization": headers["Authorization"]}
    ids = {get(app, f"/v1/swarms/{run.pk}", headers).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(value.startswith("req_") for value in ids)


def test_a_finished_run_is_read_from_memory_until_this_process_deletes_it(apps, workspace,
                                                                           keyed):  # fmt: skip
    app, spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED, output="Kept.")
    path = f"/v1/swarms/{run.pk}"
    assert get(app, path, headers).json()["status"] == "completed"
    with connection.cursor() as cursor:  # behind the ORM's back: no signal, memory not told
        cursor.execute("UPDATE swarms_run SET current_cost_usd = 4 WHERE id = %s", [run.pk])
    kept = get(app, path, headers)
    assert kept.status_code == 200
    assert kept.json()["current_cost_usd"] != 4.0  # from memory, not the database
    assert spy.paths == []
    Run.objects.filter(pk=run.pk).first().delete()  # through the ORM: forgotten at once
    gone = get(app, path, headers)
    assert gone.status_code == 404
    assert spy.paths == [path]


def test_a_running_run_is_read_from_the_database_each_time(apps, workspace, keyed):
    app, _spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.RUNNING)
    path = f"/api/runs/{run.pk}"
    assert get(app, path, headers).json()["status"] == "running"
    with connection.cursor() as cursor:
        cursor.execute("UPDATE swarms_run SET progress = 0.5 WHERE id = %s", [run.pk])
    assert get(app, path, headers).json()["progress"] == 0.5


def test_memory_lasts_the_configured_seconds(apps, workspace, keyed, settings):
    settings.SVERM_FAST_READ_CACHE_SECONDS = 0
    app, _spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/v1/swarms/{run.pk}"
    get(app, path, headers)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE swarms_run SET status = 'failed' WHERE id = %s", [run.pk])
    assert get(app, path, headers).json()["status"] == "failed"


def test_a_revoked_key_is_refused_at_once(apps, workspace, keyed):
    app, spy = apps
    api_key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/v1/swarms/{run.pk}"
    assert get(app, path, headers).status_code == 200  # the key is now kept in memory
    api_key_revoke(api_key=api_key)
    refused = get(app, path, headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert spy.paths == [path]


def test_another_workspaces_run_is_left_to_the_view(apps, workspace, other_workspace, keyed):
    app, spy = apps
    _key, headers = keyed
    theirs = make_run(other_workspace, status=RunStatus.COMPLETED)
    for path in paths_of(theirs):
        assert get(app, path, headers).status_code == 404
    assert spy.paths == paths_of(theirs)


def test_the_plan_limit_holds_and_its_refusal_is_the_views(apps, workspace, keyed):
    PlanLimits.objects.update_or_create(
        plan=workspace.plan,
        defaults={"requests_per_minute": 2, "concurrent_runs": 1, "runs_per_day": None},
    )
    app, spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/v1/swarms/{run.pk}"
    answers = [get(app, path, headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert [answer.headers["x-ratelimit-remaining"] for answer in answers] == ["1", "0", "0"]
    assert answers[2].json()["error"]["code"] == "rate_limited"
    assert "retry-after" in answers[2].headers
    assert spy.paths == [path]


@pytest.mark.parametrize(
    ("method", "suffix", "extra"),
    [
        ("HEAD", "", {}),
        ("GET", "?format=json", {}),
        ("GET", "", {"Accept": "text/html"}),
        ("GET", "", {"Cookie": "sessionid=x"}),
        ("GET", "", {"Sverm-Workspace": "wsp_x"}),
    ],
)
def test_other_requests_go_to_django(apps, workspace, keyed, method, suffix, extra):
    app, spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/api/runs/{run.pk}"
    get(app, path + suffix, {**headers, **extra}, method=method)
    assert spy.paths == [path]


def test_a_jwt_goes_to_django(apps, workspace, user):
    from rest_framework_simplejwt.tokens import RefreshToken

    app, spy = apps
    run = make_run(workspace, status=RunStatus.COMPLETED)
    token = RefreshToken.for_user(user).access_token
    answer = get(app, f"/api/runs/{run.pk}", {"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert spy.paths == [f"/api/runs/{run.pk}"]


def test_switched_off_everything_goes_to_django(apps, workspace, keyed, settings):
    settings.SVERM_FAST_READS = False
    app, spy = apps
    _key, headers = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    assert get(app, f"/v1/swarms/{run.pk}", headers).status_code == 200
    assert spy.paths == [f"/v1/swarms/{run.pk}"]


def test_an_unknown_key_is_the_views_401(apps, workspace):
    app, spy = apps
    run = make_run(workspace, status=RunStatus.COMPLETED)
    raw = "sk-sverm-" + "x" * 40
    answer = get(app, f"/v1/swarms/{run.pk}", {"Authorization": f"Bearer {raw}"})
    assert answer.status_code == 401
    assert spy.paths == [f"/v1/swarms/{run.pk}"]
    assert fast_reads.memory().grant(hashlib.sha256(raw.encode()).hexdigest()) is None

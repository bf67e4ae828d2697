"""Key expiry and last use on the paths that check a key outside DRF's views: the fast status
reads in front of Django (swarms/fast_reads.py: `GET /v1/swarms/{id}`, `GET /api/runs/{id}`)
and the WebSocket streams (accounts/ws_auth.py), over the real ASGI stack."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.asgi import get_asgi_application
from django.utils import timezone

from accounts.models import ApiKey
from accounts.roles import Role
from accounts.services import api_key_create, api_key_rotate
from swarms import fast_reads
from swarms.models import RunStatus
from tests.factories import add_events, make_run
from tests.runs.test_fast_reads import Spy, get
from tests.streams.conftest import (  # noqa: F401  (fixtures used by the stream tests)
    _sqlite_waits_on_locks,
    anyio_backend,
    bearer,
    open_stream,
    refusal,
)

pytestmark = pytest.mark.django_db(transaction=True)

LIFECYCLE = ["run.started", "agent.started", "agent.completed", "run.completed"]


@pytest.fixture
def apps():
    """(the fast reads in front of a spied Django, the spy), with nothing kept in memory."""
    fast_reads.memory().forget_grants()
    spy = Spy(get_asgi_application())
    return fast_reads.FastReads(spy), spy


@pytest.fixture
def keyed(user, workspace) -> tuple[ApiKey, str]:
    return api_key_create(workspace=workspace, name="poller", role=Role.VIEWER, created_by=user)


def paths_of(run) -> list[str]:
    return [f"/v1/swarms/{run.pk}", f"/api/runs/{run.pk}"]


def test_the_fast_read_refuses_an_expired_key_as_the_view_does(apps, workspace, keyed):
    app, spy = apps
    api_key, raw = keyed
    run = make_run(workspace, status=RunStatus.COMPLETED)
    headers = {"Authorization": f"Bearer {raw}"}
    for path in paths_of(run):
        assert get(app, path, headers).status_code == 200
    assert spy.paths == []  # both answered in front of Django
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    fast_reads.memory().forget_grants()  # as another process would have by now
    v1, api = (get(app, path, headers) for path in paths_of(run))
    assert spy.paths == paths_of(run)  # the refusal is Django's, in each API's own format
    assert v1.status_code == api.status_code == 401
    assert "expired" in v1.json()["error"]["message"]
    assert api.headers["content-type"] == "application/problem+json"
    assert "expired" in api.json()["detail"]
    assert api.headers["www-authenticate"] == 'Bearer realm="sverm"'


def test_a_key_kept_in_memory_is_refused_from_its_expiry_on(apps, workspace, keyed, monkeypatch):
    """The grant a fast read keeps carries the key's expiry: memory never outlives it."""
    app, spy = apps
    api_key, raw = keyed
    expires = timezone.now() + timedelta(hours=1)
    api_key.expires_at = expires
    api_key.save(update_fields=["expires_at"])
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/v1/swarms/{run.pk}"
    headers = {"Authorization": f"Bearer {raw}"}
    assert get(app, path, headers).status_code == 200  # the key and the run now kept in memory
    assert fast_reads.memory().grant(fast_reads.Read(None, run.pk, raw).digest) is not None
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))
    refused = get(app, path, headers)
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    assert spy.paths == [path]


def test_a_fast_read_sets_last_used_at(apps, workspace, keyed):
    app, spy = apps
    api_key, raw = keyed
    run = make_run(workspace, status=RunStatus.RUNNING)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None
    before = timezone.now()
    assert get(app, f"/api/runs/{run.pk}", {"Authorization": f"Bearer {raw}"}).status_code == 200
    assert spy.paths == []
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at >= before


def test_both_keys_read_during_the_overlap_and_only_the_new_one_after(apps, user, workspace,
                                                                      keyed):  # fmt: skip
    app, _spy = apps
    old, old_raw = keyed
    _new, new_raw = api_key_rotate(
        api_key=old, overlap_until=timezone.now() + timedelta(hours=1), created_by=user
    )
    run = make_run(workspace, status=RunStatus.COMPLETED)
    path = f"/v1/swarms/{run.pk}"
    for raw in (old_raw, new_raw):
        assert get(app, path, {"Authorization": f"Bearer {raw}"}).status_code == 200
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now())  # the overlap is over
    fast_reads.memory().forget_grants()
    assert get(app, path, {"Authorization": f"Bearer {old_raw}"}).status_code == 401
    assert get(app, path, {"Authorization": f"Bearer {new_raw}"}).status_code == 200


# ---------------------------------------------------------------------------------------------
# WebSocket streams
# ---------------------------------------------------------------------------------------------
async def closed_with(path: str, **credential) -> int | None:
    """The close code of a stream of a finished run, after its replay (1000), or of its
    refusal (4401)."""
    async with open_stream(path, **credential) as stream:
        assert stream.accepted
        _messages, code = await stream.until_close()
        return code


@pytest.mark.anyio
async def test_a_stream_takes_a_key_until_it_expires(user, workspace, keyed):
    old, old_raw = keyed
    run = await database_sync_to_async(make_run)(workspace, status="completed")
    await database_sync_to_async(add_events)(run, LIFECYCLE)
    _new, new_raw = await database_sync_to_async(api_key_rotate)(
        api_key=old, overlap_until=timezone.now() + timedelta(hours=1), created_by=user
    )
    paths = [f"/api/runs/{run.pk}/stream", f"/v1/swarms/{run.pk}/stream"]
    for path in paths:  # during the overlap, both keys, in the query or the header
        assert await closed_with(path, token=old_raw) == 1000
        assert await closed_with(path, headers=bearer(new_raw)) == 1000

    await database_sync_to_async(ApiKey.objects.filter(pk=old.pk).update)(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    for path in paths:
        assert await refusal(path, token=old_raw) == 4401
        assert await refusal(path, headers=bearer(old_raw)) == 4401
        assert await closed_with(path, token=new_raw) == 1000

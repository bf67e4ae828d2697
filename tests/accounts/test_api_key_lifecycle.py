"""API keys over their life: an expiry set at creation, the last use kept current, and rotation
with an overlap (`POST /api/api-keys/{id}/rotate`), through the HTTP API."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.roles import Role
from accounts.services import api_key_create
from audit.models import AuditEvent
from tests.audit.conftest import assert_by, assert_by_user, the_event
from tests.conftest import assert_problem, assert_v1_error

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


class Clock:
    """`timezone.now()` moved by `offset`: what key expiry, last use and the input checks read."""

    def __init__(self):
        self.offset = timedelta(0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
def clock(monkeypatch) -> Clock:
    moved = Clock()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + moved.offset)
    return moved


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(text: str | None) -> datetime | None:
    """A date-time the API rendered."""
    return None if text is None else datetime.fromisoformat(text)


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def create(client, workspace, **extra):
    return client.post(
        "/api/api-keys", {"workspaceId": workspace.pk, "name": "ci", **extra}, format="json"
    )


def rotate(client, key_id: str, body: dict | None = None):
    return client.post(f"/api/api-keys/{key_id}/rotate", body or {}, format="json")


def works(raw: str) -> bool:
    """Whether the key authenticates on /api (a 401 otherwise, said to be an expiry)."""
    response = bearer(raw).get("/api/workspaces")
    if response.status_code == 401:
        return False
    assert response.status_code == 200, response.content
    return True


def assert_expired_401(response) -> None:
    """The 401 of an expired key on /api: problem details, WWW-Authenticate, said plainly."""
    body = assert_problem(response, 401, "unauthorized")
    assert "expired" in body["detail"]
    assert response["WWW-Authenticate"] == 'Bearer realm="sverm"'


# ---------------------------------------------------------------------------------------------
# Expiry at creation
# ---------------------------------------------------------------------------------------------
def test_a_key_created_with_an_expiry_shows_it_and_works_until_then(api_client, workspace, clock):
    expires = (timezone.now() + 30 * DAY).replace(microsecond=0)
    response = create(api_client, workspace, expiresAt=expires.isoformat())
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert at(body["expiresAt"]) == expires and body["expiresAt"].endswith("Z")
    assert body["status"] == "active"
    assert (body["replaces"], body["replacedBy"], body["lastUsedAt"]) == (None, None, None)
    assert ApiKey.objects.get(pk=body["id"]).expires_at == expires

    assert works(body["key"])
    clock.advance(expires - timezone.now() - timedelta(seconds=1))
    assert works(body["key"])
    clock.advance(timedelta(seconds=1))  # refused from expiresAt on
    assert_expired_401(bearer(body["key"]).get("/api/workspaces"))
    shown = api_client.get(f"/api/api-keys/{body['id']}").json()
    assert (shown["status"], at(shown["expiresAt"])) == ("expired", expires)


def test_an_offset_expiry_is_kept_as_the_same_instant_in_utc(api_client, workspace):
    local = (
        (timezone.now() + DAY).astimezone(timezone.get_fixed_timezone(120)).replace(microsecond=0)
    )
    response = create(api_client, workspace, expiresAt=local.isoformat())
    assert response.status_code == 201, response.content
    assert at(response.json()["expiresAt"]) == local
    assert response.json()["expiresAt"].endswith("Z")


def test_without_an_expiry_a_key_never_expires(api_client, workspace, clock):
    for extra in ({}, {"expiresAt": None}):
        body = create(api_client, workspace, **extra).json()
        assert body["expiresAt"] is None and body["status"] == "active"
    clock.advance(3650 * DAY)
    assert works(body["key"])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param("2099-01-01T00:00:00", "timezone", id="naive"),
        pytest.param("2020-01-01T00:00:00Z", "future", id="past"),
        pytest.param("far", "format", id="not-a-date"),
        pytest.param(1767225600, "format", id="a-number"),
        pytest.param("2099-01-01", "timezone", id="a-date"),
        pytest.param("9999-12-31T23:59:59-14:00", "range", id="out-of-range"),
    ],
)
def test_a_bad_expiry_is_a_400_naming_it_and_creates_nothing(api_client, workspace, value, says):
    body = assert_problem(create(api_client, workspace, expiresAt=value), 400, "invalid_request")
    [error] = body["errors"]
    assert error["field"] == "expiresAt"
    assert says in error["detail"].lower() or says in body["detail"].lower(), body
    assert not ApiKey.objects.exists()


def test_an_expiry_more_than_ten_years_ahead_is_refused(api_client, workspace):
    too_far = timezone.now() + 3651 * DAY
    body = assert_problem(
        create(api_client, workspace, expiresAt=iso(too_far)), 400, "invalid_request"
    )
    assert body["errors"][0]["field"] == "expiresAt"
    assert "3650 days" in body["errors"][0]["detail"]
    assert create(api_client, workspace, expiresAt=iso(too_far - 2 * DAY)).status_code == 201


# ---------------------------------------------------------------------------------------------
# An expired key is refused everywhere it is read the ordinary way (the fast status reads and
# WebSockets: test_api_key_expiry_paths.py)
# ---------------------------------------------------------------------------------------------
def test_an_expired_key_is_refused_on_api_and_v1(key_client, workspace):
    _client, api_key, raw = key_client(workspace, Role.ADMIN)
    assert works(raw)
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_expired_401(bearer(raw).get("/api/workspaces"))
    assert_expired_401(bearer(raw).post("/api/swarms", {"workspaceId": workspace.pk,
                                                        "name": "x"}, format="json"))  # fmt: skip
    response = bearer(raw).get("/v1/swarms")
    error = assert_v1_error(response, 401, "unauthorized")
    assert "expired" in error["message"]
    assert response["WWW-Authenticate"] == 'Bearer realm="sverm"'


def test_an_unknown_key_still_says_only_invalid(anon_client, key_client, workspace):
    """Only the holder of the whole secret learns that it expired."""
    _client, api_key, raw = key_client(workspace)
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - DAY)
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    body = assert_problem(bearer(tampered).get("/api/workspaces"), 401, "unauthorized")
    assert body["detail"] == "Invalid API key."


def test_revoked_wins_over_expired(api_client, key_client, workspace):
    _client, api_key, raw = key_client(workspace)
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - DAY)
    assert api_client.delete(f"/api/api-keys/{api_key.pk}").status_code == 200
    body = assert_problem(bearer(raw).get("/api/workspaces"), 401, "unauthorized")
    assert "revoked" in body["detail"]
    assert api_client.get(f"/api/api-keys/{api_key.pk}").json()["status"] == "revoked"


def test_the_list_filters_by_status_and_expiry(api_client, key_client, workspace):
    _c, active, _r = key_client(workspace)
    _c, expiring, _r = key_client(workspace)
    _c, expired, _r = key_client(workspace)
    _c, revoked, _r = key_client(workspace)
    ApiKey.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() + DAY)
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - DAY)
    api_client.delete(f"/api/api-keys/{revoked.pk}")

    def listed(filter_: dict) -> set[str]:
        response = api_client.get("/api/api-keys", {"filter": json.dumps(filter_)})
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["data"]}

    assert listed({"status": {"eq": "active"}}) == {active.pk, expiring.pk}
    assert listed({"status": {"eq": "expired"}}) == {expired.pk}
    assert listed({"status": {"in": ["revoked", "expired"]}}) == {expired.pk, revoked.pk}
    assert listed({"expiresAt": {"isNull": False}, "status": {"eq": "active"}}) == {expiring.pk}
    assert listed({"expiresAt": {"lt": iso(timezone.now())}}) == {expired.pk}
    # Each row's status says the same as the filter.
    rows = api_client.get("/api/api-keys").json()["data"]
    assert {row["id"]: row["status"] for row in rows} == {
        active.pk: "active", expiring.pk: "active", expired.pk: "expired", revoked.pk: "revoked",
    }  # fmt: skip
    body = assert_problem(
        api_client.get("/api/api-keys", {"filter": json.dumps({"status": {"eq": "old"}})}),
        400, "invalid_request",
    )  # fmt: skip
    assert "active, expired, revoked" in body["detail"]


def test_the_list_costs_the_same_queries_however_many_keys_and_rotations(
    api_client, user, workspace, django_assert_max_num_queries
):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_client.get("/api/api-keys").status_code == 200
        return len(queries)

    api_key_create(workspace=workspace, name="one", role=Role.VIEWER, created_by=user)
    baseline = count()
    for n in range(4):
        key, _raw = api_key_create(workspace=workspace, name=f"k{n}", role=Role.VIEWER,
                                   created_by=user)  # fmt: skip
        assert rotate(api_client, key.pk).status_code == 201
    with django_assert_max_num_queries(baseline):
        rows = api_client.get("/api/api-keys").json()["data"]
    assert len(rows) == 9
    assert sum(row["replacedBy"] is not None for row in rows) == 4


# ---------------------------------------------------------------------------------------------
# Last use
# ---------------------------------------------------------------------------------------------
def key_writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "accounts_apikey"')]


def test_using_a_key_sets_last_used_at_at_most_once_a_minute(api_client, key_client, workspace,
                                                            clock):  # fmt: skip
    _client, api_key, raw = key_client(workspace)
    shown = api_client.get(f"/api/api-keys/{api_key.pk}").json()
    assert shown["lastUsedAt"] is None

    before = timezone.now()
    with CaptureQueriesContext(connection) as first:
        assert works(raw)
    assert len(key_writes(first)) == 1
    used = api_client.get(f"/api/api-keys/{api_key.pk}").json()["lastUsedAt"]
    assert used is not None and datetime.fromisoformat(used) >= before

    clock.advance(timedelta(seconds=30))
    with CaptureQueriesContext(connection) as again:
        assert works(raw)
    assert key_writes(again) == []  # within the minute: no write at all
    assert api_client.get(f"/api/api-keys/{api_key.pk}").json()["lastUsedAt"] == used

    clock.advance(timedelta(seconds=31))
    assert works(raw)
    later = api_client.get(f"/api/api-keys/{api_key.pk}").json()["lastUsedAt"]
    assert datetime.fromisoformat(later) - datetime.fromisoformat(used) >= timedelta(seconds=61)


def test_a_use_written_by_another_process_is_not_written_again(key_client, workspace, clock):
    """The write is conditional: a copy of the key loaded before another process's write does
    not overwrite it within the minute."""
    _client, api_key, raw = key_client(workspace)
    assert works(raw)
    clock.advance(timedelta(seconds=61))
    fresh = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=fresh)  # "another process"
    from accounts.services import api_key_touch

    stale_copy = ApiKey.objects.get(pk=api_key.pk)
    stale_copy.last_used_at = fresh - timedelta(seconds=120)
    clock.advance(timedelta(seconds=5))
    api_key_touch(api_key=stale_copy, now=timezone.now())
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == fresh


# ---------------------------------------------------------------------------------------------
# Rotation
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def old(user, workspace) -> tuple[ApiKey, str]:
    return api_key_create(workspace=workspace, name="deploy", role=Role.OPERATOR, created_by=user)


def test_rotation_makes_a_new_key_and_keeps_the_old_one_a_day(api_client, user, workspace, old,
                                                              clock):  # fmt: skip
    old_key, old_raw = old
    started = timezone.now()
    response = rotate(api_client, old_key.pk)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    new = response.json()
    assert new["id"] != old_key.pk
    assert new["key"].startswith("sk-sverm-") and new["key"] != old_raw
    assert (new["name"], new["role"], new["workspaceId"]) == ("deploy", "operator", workspace.pk)
    assert (new["replaces"], new["replacedBy"], new["status"]) == (old_key.pk, None, "active")
    assert new["expiresAt"] is None and new["createdBy"] == user.pk

    shown = api_client.get(f"/api/api-keys/{old_key.pk}").json()
    assert shown["replacedBy"] == new["id"] and shown["status"] == "active"
    overlap_end = datetime.fromisoformat(shown["expiresAt"])
    assert started + DAY <= overlap_end <= timezone.now() + DAY
    listed = {row["id"]: row for row in api_client.get("/api/api-keys").json()["data"]}
    assert listed[old_key.pk]["replacedBy"] == new["id"]
    assert listed[new["id"]]["replaces"] == old_key.pk

    # Both work during the overlap; the old one is refused after it, the new one is not.
    assert works(old_raw) and works(new["key"])
    clock.advance(overlap_end - timezone.now() - timedelta(seconds=1))
    assert works(old_raw)
    clock.advance(timedelta(seconds=2))
    assert_expired_401(bearer(old_raw).get("/api/workspaces"))
    assert works(new["key"])
    assert api_client.get(f"/api/api-keys/{old_key.pk}").json()["status"] == "expired"


def test_overlap_seconds_zero_ends_the_old_key_at_once(api_client, old):
    old_key, old_raw = old
    new = rotate(api_client, old_key.pk, {"overlapSeconds": 0}).json()
    assert_expired_401(bearer(old_raw).get("/api/workspaces"))
    assert works(new["key"])


def test_overlap_until_a_chosen_time(api_client, old, clock):
    old_key, old_raw = old
    until = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    response = rotate(api_client, old_key.pk, {"overlapUntil": iso(until)})
    assert response.status_code == 201, response.content
    assert ApiKey.objects.get(pk=old_key.pk).expires_at == until
    clock.advance(timedelta(hours=3))
    assert not works(old_raw)


def test_rotation_never_extends_an_earlier_expiry(api_client, old):
    old_key, _raw = old
    soon = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    ApiKey.objects.filter(pk=old_key.pk).update(expires_at=soon)
    assert rotate(api_client, old_key.pk, {"overlapSeconds": 7 * 86400}).status_code == 201
    assert ApiKey.objects.get(pk=old_key.pk).expires_at == soon
    event = the_event("api_key.rotate", old_key.pk)
    assert event.before["expires_at"] == event.after["expires_at"] == iso(soon)


def test_the_new_key_may_get_an_expiry_of_its_own(api_client, old):
    old_key, _raw = old
    expires = (timezone.now() + 90 * DAY).replace(microsecond=0)
    new = rotate(api_client, old_key.pk, {"expiresAt": iso(expires)}).json()
    assert at(new["expiresAt"]) == expires
    assert ApiKey.objects.get(pk=new["id"]).expires_at == expires


def test_rotation_is_one_audit_event_on_the_old_key_without_secrets(api_client, user, old):
    old_key, old_raw = old
    response = rotate(api_client, old_key.pk, {"overlapSeconds": 3600})
    new = response.json()
    event = the_event("api_key.rotate", old_key.pk)
    assert_by_user(event, response, user)
    assert event.target_type == "api_key" and event.workspace_id == old_key.workspace_id
    old_key.refresh_from_db()
    assert event.before == {"expires_at": None}
    assert event.after == {
        "expires_at": iso(old_key.expires_at), "replaced_by_id": new["id"],
        "replaced_by_prefix": new["prefix"],
    }  # fmt: skip
    # The new key has no `api_key.create` of its own: the rotation is the one event.
    assert not AuditEvent.objects.filter(target_id=new["id"]).exists()
    trail = json.dumps([[e.before, e.after] for e in AuditEvent.objects.all()])
    assert new["key"] not in trail and old_raw not in trail


def test_an_admin_key_rotates_itself_and_keeps_working_through_the_overlap(key_client, workspace):
    client, api_key, raw = key_client(workspace, Role.ADMIN)
    response = client.post(f"/api/api-keys/{api_key.pk}/rotate")  # no body at all: defaults
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["role"] == "admin"
    assert works(raw) and works(new["key"])
    assert_by(the_event("api_key.rotate", api_key.pk), response, actor_type="api_key",
              actor_id=api_key.pk, label="test")  # fmt: skip


def test_a_rotated_key_cannot_be_rotated_again(api_client, old):
    old_key, _raw = old
    new = rotate(api_client, old_key.pk).json()
    again = assert_problem(rotate(api_client, old_key.pk), 409, "conflict")
    assert again["replacedBy"] == new["id"]
    assert new["id"] in again["detail"]
    assert ApiKey.objects.filter(replaces=old_key).count() == 1
    # The new key can be rotated in turn: a chain.
    newer = rotate(api_client, new["id"], {"overlapSeconds": 0}).json()
    assert newer["replaces"] == new["id"]
    assert AuditEvent.objects.filter(action="api_key.rotate").count() == 2


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_a_revoked_or_expired_key_cannot_be_rotated(api_client, old, state):
    old_key, _raw = old
    if state == "revoked":
        api_client.delete(f"/api/api-keys/{old_key.pk}")
    else:
        ApiKey.objects.filter(pk=old_key.pk).update(expires_at=timezone.now() - DAY)
    body = assert_problem(rotate(api_client, old_key.pk), 409, "conflict")
    assert state in body["detail"] and body["keyStatus"] == state
    assert ApiKey.objects.count() == 1
    assert not AuditEvent.objects.filter(action="api_key.rotate").exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({"overlapSeconds": -1}, {"overlapSeconds"}, id="negative"),
        pytest.param({"overlapSeconds": 30 * 86400 + 1}, {"overlapSeconds"}, id="over-30-days"),
        pytest.param({"overlapSeconds": "soon"}, {"overlapSeconds"}, id="not-a-number"),
        pytest.param({"overlapUntil": "2099-01-01T00:00:00"}, {"overlapUntil"}, id="naive"),
        pytest.param({"overlapUntil": "2020-01-01T00:00:00Z"}, {"overlapUntil"}, id="past"),
        pytest.param({"overlapUntil": "2099-01-01T00:00:00Z"}, {"overlapUntil"}, id="too-far"),
        pytest.param({"overlapUntil": "SOON", "overlapSeconds": 60},
                     {"overlapUntil", "overlapSeconds"}, id="both"),
        pytest.param({"expiresAt": "2020-01-01T00:00:00Z"}, {"expiresAt"}, id="past-expiry"),
        pytest.param({"name": "renamed"}, {"name"}, id="unknown-field"),
    ],
)  # fmt: skip
def test_bad_rotation_input_is_a_400_that_changes_nothing(api_client, old, body, fields):
    old_key, old_raw = old
    if body.get("overlapUntil") == "SOON":  # valid alone
        body = {**body, "overlapUntil": iso(timezone.now() + timedelta(hours=1))}
    response = assert_problem(rotate(api_client, old_key.pk, body), 400, "invalid_request")
    assert {error["field"] for error in response["errors"]} == fields
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get(pk=old_key.pk).expires_at is None
    assert not AuditEvent.objects.filter(action="api_key.rotate").exists()
    assert works(old_raw)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_admins_rotate(client_for, member_of, key_client, workspace, old, role):
    old_key, _raw = old
    member = client_for(member_of(workspace, role))
    key_holder, _k, _r = key_client(workspace, role)
    for client in (member, key_holder):
        assert_problem(rotate(client, old_key.pk), 403, "forbidden")
        # Even a bad body: the role is checked first.
        assert_problem(rotate(client, old_key.pk, {"overlapSeconds": -1}), 403, "forbidden")
    assert not ApiKey.objects.filter(replaces=old_key).exists()
    assert ApiKey.objects.get(pk=old_key.pk).expires_at is None


def test_another_workspaces_key_is_404(client_for, other_user, old):
    old_key, _raw = old
    assert_problem(rotate(client_for(other_user), old_key.pk), 404, "not_found")
    assert_problem(rotate(client_for(other_user), "key_unknown"), 404, "not_found")
    assert not ApiKey.objects.filter(replaces=old_key).exists()


def test_bootstrap_replaces_an_expired_bootstrap_key(user, workspace):
    """`manage.py bootstrap` makes a key when none of its keys still works (expired ones
    included), and keeps one that does."""
    import io

    from django.core.management import call_command

    def bootstrap() -> str:
        out = io.StringIO()
        call_command("bootstrap", "--email", "root@example.com", stdout=out)
        return out.getvalue()

    assert "API key: sk-sverm-" in bootstrap()
    assert "API key: sk-sverm-" not in bootstrap()
    ApiKey.objects.filter(name="bootstrap").update(expires_at=timezone.now() - DAY)
    assert "API key: sk-sverm-" in bootstrap()
    assert ApiKey.objects.usable().filter(name="bootstrap").count() == 1

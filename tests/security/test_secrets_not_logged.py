"""No secret reaches the logs: API keys, passwords and JWTs, whether calls succeed or fail."""

import hashlib
import io
import logging

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.roles import Role
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.sverm.probe_urls")]


@pytest.fixture
def console_log():
    """The configured console handler's output (real filter and format), with every logger at
    DEBUG so that nothing is hidden by the level."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous_stream, previous_level = handler.setStream(stream), root.level
    root.setLevel(logging.DEBUG)
    yield stream
    root.setLevel(previous_level)
    handler.setStream(previous_stream)


def test_keys_passwords_and_jwts_are_never_logged(user, workspace, console_log):
    secrets: list[str] = [PASSWORD]
    login = APIClient()

    tokens = login.post(
        "/api/auth/login", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert tokens.status_code == 200, tokens.content
    secrets += [tokens.json()["token"], tokens.json()["refresh"]]
    wrong = login.post(
        "/api/auth/login", {"email": user.email, "password": "wrong-" + PASSWORD}, format="json"
    )
    assert wrong.status_code == 401
    secrets.append("wrong-" + PASSWORD)
    refreshed = login.post(
        "/api/auth/refresh", {"refresh": tokens.json()["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200, refreshed.content
    secrets.append(refreshed.json()["token"])

    jwt = APIClient()
    jwt.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['token']}")
    created = jwt.post(
        "/api/api-keys",
        {"workspaceId": workspace.pk, "name": "ci", "role": Role.ADMIN},
        format="json",
    )
    assert created.status_code == 201, created.content
    raw_key = created.json()["key"]
    secrets.append(raw_key)

    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert keyed.get("/api/workspaces").status_code == 200
    wrong_key = raw_key[:-4] + ("AAAA" if not raw_key.endswith("AAAA") else "BBBB")
    secrets.append(wrong_key)
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong_key}")
    assert keyed.get("/api/workspaces").status_code == 401

    # A crash with credentials on the request logs a traceback; still no secret in it.
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert keyed.get("/api/probe/boom").status_code == 500
    jwt.post("/v1/probe/boom", {"password": PASSWORD}, format="json")

    log = console_log.getvalue()
    assert "Traceback" in log  # the capture works
    for secret in secrets:
        assert secret not in log
    # Nor their distinctive halves (e.g. a key logged after its prefix was cut off).
    assert raw_key[len("sk-sverm-") + 12 :] not in log
    for token in secrets[1:4]:
        assert token.split(".")[-1] not in log  # the JWT signature


def test_api_keys_are_stored_only_hashed(key_client, workspace):
    _client, api_key, raw = key_client(workspace, Role.VIEWER)
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert raw not in repr(stored)
    assert stored["hashed_key"] == hashlib.sha256(raw.encode()).hexdigest()

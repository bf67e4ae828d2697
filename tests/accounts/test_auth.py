"""POST /api/auth/login and /api/auth/refresh, and how bearer credentials are judged."""

from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.conftest import PASSWORD, assert_problem

pytestmark = pytest.mark.django_db


def test_login_returns_token_and_refresh_that_authenticate(anon_client, user, workspace):
    response = anon_client.post(
        "/api/auth/login", {"email": "OWNER@example.com", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "refresh"}
    assert AccessToken(body["token"])["user_id"] == user.pk

    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    listed = anon_client.get("/api/workspaces")
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()["data"]] == [workspace.pk]
    user.refresh_from_db()
    assert user.last_login is not None


def test_access_token_lives_24_hours(anon_client, user):
    body = anon_client.post(
        "/api/auth/login", {"email": user.email, "password": PASSWORD}, format="json"
    ).json()
    token = AccessToken(body["token"])
    assert token["exp"] - token["iat"] == int(timedelta(hours=24).total_seconds())


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "owner@example.com", "password": "wrong"},
        {"email": "nobody@example.com", "password": PASSWORD},
    ],
)
def test_login_with_bad_credentials_is_401(anon_client, user, payload):
    body = assert_problem(
        anon_client.post("/api/auth/login", payload, format="json"), 401, "unauthorized"
    )
    assert body["detail"] == "Invalid email or password."


def test_login_of_inactive_user_is_401(anon_client, make_user):
    make_user(email="gone@example.com", is_active=False)
    response = anon_client.post(
        "/api/auth/login", {"email": "gone@example.com", "password": PASSWORD}, format="json"
    )
    assert_problem(response, 401, "unauthorized")


def test_login_missing_password_names_the_field(anon_client):
    body = assert_problem(
        anon_client.post("/api/auth/login", {"email": "a@b.co"}, format="json"),
        400,
        "invalid_request",
    )
    assert body["errors"] == [
        {
            "field": "password",
            "pointer": "#/password",
            "detail": "This field is required.",
            "code": "required",
        }
    ]


def test_login_ignores_a_stale_authorization_header(anon_client, user):
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    response = anon_client.post(
        "/api/auth/login", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200


def test_refresh_returns_new_access_token(anon_client, user):
    refresh = str(RefreshToken.for_user(user))
    response = anon_client.post("/api/auth/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"token"}
    assert AccessToken(response.json()["token"])["user_id"] == user.pk


def test_refresh_with_access_token_or_garbage_is_401(anon_client, user):
    access = str(RefreshToken.for_user(user).access_token)
    for token in (access, "not-a-token"):
        response = anon_client.post("/api/auth/refresh", {"refresh": token}, format="json")
        assert_problem(response, 401, "unauthorized")


def test_missing_credentials_are_401_with_www_authenticate(anon_client):
    response = anon_client.get("/api/workspaces")
    assert_problem(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer sk-sverm-doesnotexist", "Basic dXNlcjpwdw==", "Bearer"],
)
def test_bad_credentials_are_401(anon_client, user, header):
    anon_client.credentials(HTTP_AUTHORIZATION=header)
    assert_problem(anon_client.get("/api/workspaces"), 401, "unauthorized")


def test_expired_access_token_is_401(anon_client, user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = assert_problem(anon_client.get("/api/workspaces"), 401, "unauthorized")
    assert "expired" in body["detail"]


def test_token_of_deactivated_user_is_401(api_client, user):
    user.is_active = False
    user.save()
    assert_problem(api_client.get("/api/workspaces"), 401, "unauthorized")


def test_auth_endpoints_allow_20_requests_a_minute_per_ip(anon_client, user):
    payload = {"email": user.email, "password": "wrong"}
    statuses = [
        anon_client.post("/api/auth/login", payload, format="json").status_code for _ in range(20)
    ]
    assert statuses == [401] * 20
    response = anon_client.post("/api/auth/login", payload, format="json")
    assert_problem(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Refresh shares the budget; another address has its own.
    assert anon_client.post("/api/auth/refresh", {"refresh": "x"}, format="json").status_code == 429
    other = anon_client.post(
        "/api/auth/login",
        {"email": user.email, "password": PASSWORD},
        format="json",
        REMOTE_ADDR="10.0.0.9",
    )
    assert other.status_code == 200


def test_forwarded_for_is_not_trusted_without_proxies(anon_client, user):
    payload = {"email": user.email, "password": "wrong"}
    for index in range(20):
        anon_client.post(
            "/api/auth/login", payload, format="json", HTTP_X_FORWARDED_FOR=f"1.2.3.{index}"
        )
    response = anon_client.post(
        "/api/auth/login", payload, format="json", HTTP_X_FORWARDED_FOR="9.9.9.9"
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer sk-sverm-doesnotexist", "Basic dXNlcjpwdw==", "Bearer"],
)
@pytest.mark.parametrize("url", ["/api/workspaces", "/v1/templates", "/v1/swarms/run_x"])
def test_every_401_says_how_to_authenticate(anon_client, user, header, url):
    """RFC 9110 §11.6.1: a 401 carries WWW-Authenticate, whatever refused the credential (an
    unknown API key included) and on both wire formats."""
    anon_client.credentials(HTTP_AUTHORIZATION=header)
    response = anon_client.get(url)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == 'Bearer realm="sverm"'


def test_a_refused_refresh_token_says_how_to_authenticate(anon_client):
    response = anon_client.post("/api/auth/refresh", {"refresh": "garbage"}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="sverm"'

"""Production security settings (REDIS_URL set, DEBUG off) pass `check --deploy`; the embedded
mode keeps serving plain http://127.0.0.1."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
CLEARED = (
    "SECRET_KEY", "REDIS_URL", "DATABASE_URL", "DEBUG", "ALLOWED_HOSTS", "CELERY_BROKER_URL",
    "SVERM_BEHIND_TLS_PROXY", "SVERM_SECURE_COOKIES", "SVERM_HSTS_SECONDS", "SVERM_SSL_REDIRECT",
    "SVERM_HSTS_INCLUDE_SUBDOMAINS", "SVERM_HSTS_PRELOAD", "DJANGO_SETTINGS_MODULE",
)  # fmt: skip
PRINT = (
    "import json, django.conf as c; s = c.settings; print(json.dumps({name: getattr(s, name) "
    "for name in ['SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
    "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', "
    "'SECURE_REDIRECT_EXEMPT', 'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS']}))"
)


def run(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environ.update({"SVERM_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "sverm.settings"})
    environ.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def production_env(**extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "sverm.example.com",
        "SVERM_SSL_REDIRECT": "1",
        "SVERM_BEHIND_TLS_PROXY": "1",
        **extra,
    }


def settings_in(tmp_path, **env: str) -> dict:
    result = run(tmp_path, "-c", PRINT, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_is_clean_in_production(tmp_path):
    result = run(
        tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING", **production_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings(tmp_path):
    values = settings_in(tmp_path, **production_env())
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_REDIRECT_EXEMPT"] == ["^healthz$", "^readyz$", "^metrics$"]
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"


def test_production_opt_ins_and_outs(tmp_path):
    env = production_env(SVERM_SECURE_COOKIES="0", SVERM_HSTS_SECONDS="60")
    del env["SVERM_SSL_REDIRECT"], env["SVERM_BEHIND_TLS_PROXY"]
    values = settings_in(tmp_path, **env)
    assert values["SECURE_PROXY_SSL_HEADER"] is None  # X-Forwarded-Proto is not trusted
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 60
    assert values["SECURE_SSL_REDIRECT"] is False


@pytest.mark.parametrize("env", [{}, {"REDIS_URL": "redis://127.0.0.1:6379/0", "DEBUG": "1"}])
def test_embedded_and_debug_modes_serve_plain_http(tmp_path, env):
    values = settings_in(tmp_path, **env)
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_embedded_mode_answers_plain_http_without_redirect_or_hsts(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response
    login = client.post("/admin/login/", {}, secure=False)
    assert login.status_code == 200
    for cookie in login.cookies.values():
        assert not cookie["secure"], cookie.key


@override_settings(
    SECURE_SSL_REDIRECT=True,
    SECURE_REDIRECT_EXEMPT=[r"^healthz$", r"^readyz$"],
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_HSTS_SECONDS=31536000,
)
def test_ssl_redirect_exempts_the_probes(client, db):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    redirected = client.get("/api/workspaces")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/workspaces"
    behind_proxy = client.get("/api/workspaces", headers={"X-Forwarded-Proto": "https"})
    assert behind_proxy.status_code == 401
    assert behind_proxy["Strict-Transport-Security"] == "max-age=31536000"

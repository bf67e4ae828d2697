"""Who may read `/metrics`: a bearer of SVERM_METRICS_TOKEN from anywhere, or any request from an
address in SVERM_METRICS_ALLOW_IPS (this host by default); anyone else gets the project's
problem details, 401 when a token would let them in, else 403."""

import json

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_problem
from tests.metrics.conftest import Scrape
from tests.security.test_production_settings import run

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"
FOREIGN = "203.0.113.9"


def get(remote_addr: str = "127.0.0.1", authorization: str | None = None, **extra):
    client = APIClient(REMOTE_ADDR=remote_addr)
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client.get("/metrics", **extra)


def test_this_host_reads_the_exposition_in_prometheus_text_format():
    response = get()
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    scraped = Scrape(response.content.decode())
    # The database's counts are read at each scrape: the queue is there, empty.
    assert scraped.total("sverm_run_queue_depth") == 0
    assert "sverm_run_queue_depth" in scraped.names()
    assert "# TYPE sverm_run_duration_seconds histogram" in scraped.text
    assert "# TYPE sverm_websocket_connections gauge" in scraped.text
    assert response["X-Request-ID"]


def test_ipv6_loopback_and_its_mapped_ipv4_form_are_this_host():
    assert get("::1").status_code == 200
    assert get("::ffff:127.0.0.1").status_code == 200


def test_openmetrics_when_asked_and_no_406_for_other_accept_headers():
    openmetrics = get(HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,*/*;q=0.1")
    assert openmetrics.status_code == 200
    assert openmetrics["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.content.decode().rstrip().endswith("# EOF")
    html = get(HTTP_ACCEPT="text/html")
    assert html.status_code == 200
    assert html["Content-Type"].startswith("text/plain")


def test_a_foreign_address_without_a_configured_token_is_403():
    response = get(FOREIGN)
    body = assert_problem(response, 403, "forbidden")
    assert "SVERM_METRICS_ALLOW_IPS" in body["detail"]
    assert b"sverm_" not in response.content


def test_with_a_token_a_foreign_address_needs_it(settings):
    settings.SVERM_METRICS_TOKEN = TOKEN
    missing = get(FOREIGN)
    body = assert_problem(missing, 401, "unauthorized")
    assert "SVERM_METRICS_TOKEN" in body["detail"]
    assert missing["WWW-Authenticate"].startswith("Bearer")
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
        assert_problem(get(FOREIGN, wrong), 401, "unauthorized")

    served = get(FOREIGN, f"Bearer {TOKEN}")
    assert served.status_code == 200
    assert b"sverm_run_queue_depth" in served.content
    assert get(FOREIGN, f"bearer {TOKEN}").status_code == 200  # the scheme is case-insensitive
    # This host needs no token, and a wrong one does not lock it out.
    assert get().status_code == 200
    assert get(authorization="Bearer not-it").status_code == 200


def test_the_allowlist_takes_networks_and_replaces_the_default(settings):
    settings.SVERM_METRICS_ALLOW_IPS = ["10.0.0.0/8", "2001:db8::/32"]
    assert get("10.20.30.40").status_code == 200
    assert get("2001:db8::7").status_code == 200
    assert_problem(get("11.0.0.1"), 403, "forbidden")
    assert_problem(get("127.0.0.1"), 403, "forbidden")
    settings.SVERM_METRICS_ALLOW_IPS = []
    assert_problem(get("127.0.0.1"), 403, "forbidden")


def test_scrapes_count_against_no_plan(settings, user, workspace):
    """A scrape is no user's request: past any plan's requests a minute, still served."""
    settings.SVERM_RATE_LIMITS = True
    assert {get().status_code for _ in range(15)} == {200}


def settings_values(tmp_path, **env: str) -> dict:
    code = (
        "import json, django.conf as c; s = c.settings; print(json.dumps("
        "[s.SVERM_METRICS_TOKEN, s.SVERM_METRICS_ALLOW_IPS]))"
    )
    result = run(tmp_path, "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_settings_defaults_and_parsing(tmp_path):
    assert settings_values(tmp_path) == ["", ["127.0.0.1/32", "::1/128"]]
    token, networks = settings_values(
        tmp_path, SVERM_METRICS_TOKEN=TOKEN, SVERM_METRICS_ALLOW_IPS="10.1.2.3, 172.16.0.0/12"
    )
    assert (token, networks) == (TOKEN, ["10.1.2.3/32", "172.16.0.0/12"])
    assert settings_values(tmp_path, SVERM_METRICS_ALLOW_IPS="none")[1] == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SVERM_METRICS_ALLOW_IPS": "10.0.0.0/8,intranet"}, "'intranet' is not an IP address"),
        ({"SVERM_METRICS_TOKEN": "short"}, "at least 16 characters"),
        ({"SVERM_WORKER_HEARTBEAT_SECONDS": "30"}, "SVERM_WORKER_HEARTBEAT_SECONDS must be"),
    ],
)
def test_bad_settings_stop_startup_naming_the_problem(tmp_path, env, message):
    result = run(tmp_path, "-c", "import django.conf as c; c.settings.DEBUG", **env)
    assert result.returncode != 0
    assert message in result.stderr

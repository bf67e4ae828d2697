"""Every 429 counts once in `sverm_rate_limit_refusals_total`, by what the limit counts (an API
key, a user, an IP, a workspace) and which limit refused it."""

import pytest

from tests.conftest import PASSWORD, assert_problem, assert_v1_error
from tests.metrics.conftest import increase, scrape

pytestmark = pytest.mark.usefixtures("rate_limits_on", "plan_rows", "clock")

REFUSALS = "sverm_rate_limit_refusals_total"


def test_the_request_limit_counts_per_key_and_per_user(key_client, api_client, workspace):
    client, _key, _raw = key_client(workspace)
    before = scrape()
    assert [client.get("/v1/swarms").status_code for _ in range(10)] == [200] * 10
    assert increase(before, scrape(), REFUSALS) == 0
    assert_v1_error(client.get("/v1/swarms"), 429, "rate_limited")
    assert_v1_error(client.get("/v1/swarms"), 429, "rate_limited")
    after_key = scrape()
    assert increase(before, after_key, REFUSALS, scope="key", limit="requests_per_minute") == 2
    assert increase(before, after_key, REFUSALS) == 2

    assert {api_client.get("/api/workspaces").status_code for _ in range(10)} == {200}
    assert_problem(api_client.get("/api/workspaces"), 429, "rate_limited")
    after_user = scrape()
    assert increase(after_key, after_user, REFUSALS, scope="user", limit="requests_per_minute") == 1
    assert increase(after_key, after_user, REFUSALS) == 1


def test_the_login_ip_limit_counts_per_ip(anon_client, user):
    payload = {"email": user.email, "password": PASSWORD + "x"}
    before = scrape()
    for _ in range(20):
        assert anon_client.post("/api/auth/login", payload, format="json").status_code == 401
    assert_problem(anon_client.post("/api/auth/login", payload, format="json"), 429, "rate_limited")
    after = scrape()
    assert increase(before, after, REFUSALS, scope="ip", limit="auth_per_minute") == 1
    assert increase(before, after, REFUSALS) == 1


def test_the_concurrent_runs_quota_counts_per_workspace(not_executing, key_client, workspace):
    client, _key, _raw = key_client(workspace)
    body = {"template": "research-swarm-v1", "task": "Waves"}
    before = scrape()
    for _ in range(2):  # the free plan's two at once
        assert client.post("/v1/swarms", body, format="json").status_code == 201
    refused = assert_v1_error(client.post("/v1/swarms", body, format="json"), 429, "rate_limited")
    assert refused["details"]["limit"] == "concurrent_runs"
    after = scrape()
    assert increase(before, after, REFUSALS, scope="workspace", limit="concurrent_runs") == 1
    assert increase(before, after, REFUSALS) == 1

"""Listing runs (and a run's events) costs a fixed number of queries, however many rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import add_events, create_run, make_swarm

pytestmark = pytest.mark.usefixtures("not_executing")


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries)


@pytest.fixture
def swarm(workspace, user):
    return make_swarm(workspace, user)


def test_the_run_list_costs_the_same_for_one_run_and_twenty(
    api_client, workspace, user, swarm, django_assert_max_num_queries
):
    create_run(workspace, swarm=swarm, created_by=user)
    one = count_queries(api_client, "/api/runs")
    for _ in range(19):
        create_run(workspace, swarm=swarm, created_by=user)
    # user, memberships, count, page
    with django_assert_max_num_queries(4):
        response = api_client.get("/api/runs")
    assert len(response.json()["data"]) == 20
    assert count_queries(api_client, "/api/runs") == one
    with django_assert_max_num_queries(4):
        response = api_client.get('/api/runs?limit=5&filter={"status":{"in":["queued"]}}')
    assert len(response.json()["data"]) == 5


def test_the_v1_list_costs_a_fixed_number_of_queries(
    key_client, workspace, user, swarm, django_assert_max_num_queries
):
    client, _, _ = key_client(workspace)
    create_run(workspace, swarm=swarm, created_by=user)
    client.get("/v1/swarms")  # the key's first use also records last_used_at
    one = count_queries(client, "/v1/swarms")
    for _ in range(19):
        create_run(workspace, swarm=swarm, created_by=user)
    assert count_queries(client, "/v1/swarms") == one
    # the key, count, page
    with django_assert_max_num_queries(3):
        assert client.get("/v1/swarms").json()["total"] == 20


def test_the_event_list_costs_a_fixed_number_of_queries(
    api_client, workspace, user, swarm, django_assert_max_num_queries
):
    run = create_run(workspace, swarm=swarm, created_by=user)
    add_events(run, ["agent.message"])
    one = count_queries(api_client, f"/api/runs/{run.pk}/events")
    add_events(run, ["agent.message"] * 39)
    assert count_queries(api_client, f"/api/runs/{run.pk}/events") == one
    # user, memberships, the run's scope check, count, page
    with django_assert_max_num_queries(5):
        assert len(api_client.get(f"/api/runs/{run.pk}/events").json()["data"]) == 40


def test_a_v1_run_from_yaml_reads_the_prices_once(key_client, workspace):
    """The definition's models and the run's estimate are checked against one read of the
    price table."""
    client, _, _ = key_client(workspace)
    source = "topology: sequential\nagents:\n  - id: a\n    role: worker\n    model: gpt-4o-mini\n"
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/v1/swarms", {"template": source, "task": "t"}, format="json")
    assert response.status_code == 201, response.content
    priced = [query for query in queries if "billing_modelprice" in query["sql"]]
    assert len(priced) == 1, [query["sql"] for query in priced]

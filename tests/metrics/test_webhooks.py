"""`sverm_webhook_deliveries_total` counts each delivery attempt by outcome, for runs started over
the API with a `webhook_url` and delivered to a real HTTP receiver (tests/webhooks/conftest.py)."""

from swarms.models import Run
from tests.metrics.conftest import increase, scrape
from tests.webhooks.conftest import attempts_settled, wait_deliveries

DELIVERIES = "sverm_webhook_deliveries_total"


def start(client, url: str) -> Run:
    response = client.post(
        "/v1/swarms",
        {"template": "research-swarm-v1", "task": "Offshore wind", "webhook_url": url},
        format="json",
    )
    assert response.status_code == 201, response.content
    return Run.objects.get(pk=response.json()["swarm_id"])


def test_attempts_are_counted_by_outcome(hooks, receiver, api_client, workspace):
    receiver.script = [(500, {})]  # a failure, retried, then 200
    before = scrape()
    run = start(api_client, receiver.url())
    deliveries = wait_deliveries(run, 2)
    attempts_settled()
    assert [d.status_code for d in deliveries] == [500, 200]
    after = scrape()
    assert increase(before, after, DELIVERIES, outcome="http_error") == 1
    assert increase(before, after, DELIVERIES, outcome="delivered") == 1
    assert increase(before, after, DELIVERIES) == 2


def test_a_gone_endpoint_and_the_attempts_it_skips_after(hooks, receiver, api_client, workspace):
    receiver.script = [(410, {})]
    before = scrape()
    wait_deliveries(start(api_client, receiver.url()), 1)
    attempts_settled()
    gone = scrape()
    assert increase(before, gone, DELIVERIES, outcome="gone") == 1
    assert increase(before, gone, DELIVERIES) == 1

    wait_deliveries(start(api_client, receiver.url()), 1)  # recorded, never sent
    attempts_settled()
    after = scrape()
    assert increase(gone, after, DELIVERIES, outcome="endpoint_disabled") == 1
    assert increase(gone, after, DELIVERIES) == 1
    assert len(receiver.requests) == 1

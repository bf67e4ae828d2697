"""Runs move the metrics: a run started over the API and executed (simulated provider) is counted
by status and template, observed in the duration and cost histograms when it ends, and its LLM
calls' latency, tokens and USD add up to its ledger; queued runs make the queue's depth and age."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import UsageRecord
from swarms.models import Run
from tests.factories import make_swarm
from tests.metrics.conftest import increase, scrape
from tests.runs.conftest import wait_terminal
from tests.waiting import wait_for

TEMPLATE = "research-swarm-v1"


def run_over_v1(client, **body) -> str:
    response = client.post(
        "/v1/swarms", {"template": TEMPLATE, "task": "Tidal power in Norway", **body},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["swarm_id"]


def cost_buckets(scraped, **labels: str) -> dict[float, float]:
    return {
        float(sample_labels["le"]): value
        for name, sample_labels, value in scraped.samples
        if name == "sverm_run_cost_usd_bucket" and labels.items() <= sample_labels.items()
    }


def test_a_completed_run_moves_the_run_and_llm_metrics(executing, api_client, workspace):
    labels = {"status": "completed", "template": TEMPLATE}
    before = scrape()
    run_id = run_over_v1(api_client)
    assert wait_terminal(api_client, f"/v1/swarms/{run_id}")["status"] == "completed"
    # Observed by the `run_ended` receiver right after the end commits, in the run's thread.
    after = wait_for(
        lambda: (
            increase(before, now := scrape(), "sverm_run_duration_seconds_count", **labels) and now
        ),
        "the run's end in the histograms",
    )

    def grew(name: str, **more: str) -> float:
        return increase(before, after, name, **more)

    run = Run.objects.get(pk=run_id)
    assert grew("sverm_run_duration_seconds_count", **labels) == 1
    assert grew("sverm_run_cost_usd_count", **labels) == 1
    seconds = (run.completed_at - run.started_at).total_seconds()
    assert grew("sverm_run_duration_seconds_sum", **labels) == pytest.approx(seconds, abs=1e-3)
    cost = float(run.current_cost_usd)
    assert grew("sverm_run_cost_usd_sum", **labels) == pytest.approx(cost, rel=1e-9)
    # A bucket at or above the cost counted it, a bucket below did not.
    old_buckets = cost_buckets(before, **labels)
    for le, value in cost_buckets(after, **labels).items():
        assert value - old_buckets.get(le, 0) == (1 if cost <= le else 0), le

    # Read from the database at the scrape: this test's one run.
    assert after.total("sverm_runs", status="completed", template=TEMPLATE) == 1
    assert after.total("sverm_runs") == 1

    # The LLM calls, all to the simulated provider: one latency observation per ledger row (no
    # attempt failed), and the ledger's tokens and USD.
    ledger = UsageRecord.objects.filter(run_id=run_id)
    sums = ledger.aggregate(tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"))
    calls = ledger.count()
    assert calls > 0
    assert set(ledger.values_list("provider", flat=True)) == {"simulated"}
    simulated = {"provider": "simulated"}
    assert grew("sverm_llm_call_duration_seconds_count", **simulated) == calls
    assert grew("sverm_llm_tokens_total", direction="in", **simulated) == sums["tokens_in"]
    assert grew("sverm_llm_tokens_total", direction="out", **simulated) == sums["tokens_out"]
    usd = sum((row.cost_usd for row in ledger), Decimal(0))
    assert grew("sverm_llm_cost_usd_total", **simulated) == pytest.approx(float(usd), rel=1e-9)
    for model in set(ledger.values_list("model", flat=True)):
        by_model = ledger.filter(model=model).aggregate(tokens=Sum("tokens_out"))["tokens"]
        assert grew("sverm_llm_tokens_total", direction="out", model=model) == by_model
    assert grew("sverm_llm_call_errors_total") == 0


def test_queued_runs_make_the_queue_and_a_cancelled_one_ends_in_the_histograms(
    not_executing, api_client, workspace, user, django_capture_on_commit_callbacks
):
    swarm = make_swarm(workspace, user)
    empty = scrape()
    assert empty.total("sverm_run_queue_depth") == 0
    assert empty.total("sverm_run_queue_oldest_age_seconds") == 0
    first = run_over_v1(api_client)
    created = api_client.post(f"/api/swarms/{swarm.pk}/runs", {"task": "Wait"}, format="json")
    assert created.status_code == 201, created.content

    queued = scrape()
    assert queued.total("sverm_run_queue_depth") == 2
    assert queued.total("sverm_runs", status="queued") == 2
    assert queued.total("sverm_runs", status="queued", template=TEMPLATE) == 1
    assert queued.total("sverm_runs", status="queued", template="custom") == 1
    oldest = Run.objects.get(pk=first)
    later = wait_for(
        lambda: (now := scrape()).total("sverm_run_queue_oldest_age_seconds") > 0 and now,
        "the oldest queued run's age",
    )
    age = later.total("sverm_run_queue_oldest_age_seconds")
    assert 0 < age < 60
    assert Run.objects.filter(created_at__lt=oldest.created_at, status="queued").count() == 0

    # A run cancelled while queued ends there and then (`run_ended` is sent once that commits:
    # here the test's transaction stands in for it), its duration counted from its creation.
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.delete(f"/v1/swarms/{first}").status_code == 200
    after = scrape()
    cancelled = Run.objects.get(pk=first)
    labels = {"status": "cancelled", "template": TEMPLATE}
    waited = (cancelled.completed_at - cancelled.created_at).total_seconds()
    assert increase(before, after, "sverm_run_duration_seconds_count", **labels) == 1
    assert increase(before, after, "sverm_run_duration_seconds_sum", **labels) == pytest.approx(
        waited, abs=1e-3
    )
    assert increase(before, after, "sverm_run_cost_usd_sum", status="cancelled") == 0
    assert after.total("sverm_run_queue_depth") == 1
    assert after.total("sverm_runs", status="cancelled", template=TEMPLATE) == 1

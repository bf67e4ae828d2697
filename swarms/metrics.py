"""What runs tell the Prometheus metrics (sverm/metrics/): counts read from the database at each
scrape, a run's duration and cost when it ends, and each LLM call's latency, errors, tokens and
cost, taken at the adapter's side of the engine (router_for's providers, the executor's ledger
writes) so the engine itself stays plain Python."""

import asyncio
import time

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from sverm import metrics
from sverm.metrics.exposition import scrape_collector_register
from swarms.engine import Step
from swarms.engine.providers import Completion, CompletionRequest, Provider, ProviderError
from swarms.models import Run, RunStatus
from swarms.signals import run_ended

# A cancelled attempt that lasted this share of its time limit was cut by the limit (the
# engine's timer starts a moment before the call does).
TIMEOUT_SHARE = 0.95


class RunsCollector:
    """Runs by status and template, and the queue: two grouped queries per scrape."""

    names = (
        "sverm_runs",
        "sverm_run_queue_depth",
        "sverm_run_queue_oldest_age_seconds",
    )

    def collect(self):
        runs = GaugeMetricFamily(
            "sverm_runs", "Runs in the database by status and template (swarm type).",
            labels=["status", "template"],
        )  # fmt: skip
        counted = (
            Run.objects.order_by().values_list("status", "swarm_type").annotate(count=Count("id"))
        )
        for status, template, count in counted:
            runs.add_metric([status, template], count)
        queued = Run.objects.filter(status=RunStatus.QUEUED).aggregate(
            count=Count("id"), oldest=Min("created_at")
        )
        oldest = queued["oldest"]
        return [
            runs,
            GaugeMetricFamily(
                "sverm_run_queue_depth",
                "Runs queued, waiting for a worker to take them.",
                value=queued["count"],
            ),
            GaugeMetricFamily(
                "sverm_run_queue_oldest_age_seconds",
                "Seconds since the oldest queued run was created (0: none queued).",
                value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
            ),
        ]


def run_ended_observe(sender=None, *, run_id: str, status: str = "", **kwargs) -> None:
    """`run_ended` receiver: the run's duration and cost, once, in the process that ended it."""
    fields = ("status", "swarm_type", "created_at", "started_at", "completed_at")
    run = Run.objects.filter(pk=run_id).values(*fields, "current_cost_usd").first()
    if run is None:
        return
    ended = run["completed_at"] or timezone.now()
    metrics.run_ended_observe(
        status=status or run["status"],  # how it ended, whatever became of it since
        template=run["swarm_type"],
        seconds=(ended - (run["started_at"] or run["created_at"])).total_seconds(),
        cost_usd=run["current_cost_usd"],
    )


def metered(provider: Provider) -> Provider:
    """The same provider (its class and settings are what the rest reads), its `complete`
    timed and its failures counted, by provider and model, for each attempt the engine makes."""
    complete = provider.complete

    def observe(request: CompletionRequest, started: float, error: str = "") -> None:
        metrics.llm_call_observe(
            provider=provider.name, model=request.model, seconds=time.monotonic() - started,
            error=error,
        )  # fmt: skip

    async def timed(request: CompletionRequest) -> Completion:
        started = time.monotonic()
        try:
            completion = await complete(request)
        except ProviderError as exc:
            observe(request, started, _error_kind(exc))
            raise
        except asyncio.CancelledError:
            # The engine cancels an attempt at its time limit, and every call of a cancelled
            # run, which is no failure of the provider's.
            limit = request.timeout_seconds
            if limit is not None and time.monotonic() - started >= limit * TIMEOUT_SHARE:
                observe(request, started, "timeout")
            raise
        except Exception:
            observe(request, started, "fatal")
            raise
        observe(request, started)
        return completion

    provider.complete = timed
    return provider


def _error_kind(exc: ProviderError) -> str:
    """`timeout` when the client's own time limit ended the attempt (the SDK's, raised from
    its timeout error), else `retryable` or `fatal` as the provider adapter judged it."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__:
            return "timeout"
        cause = cause.__cause__
    return "retryable" if exc.retryable else "fatal"


def llm_usage_observe(steps: list[Step]) -> None:
    """Settled calls, once their ledger rows are committed: tokens and cost by provider/model."""
    for step in steps:
        usage = step.usage
        if step.status == "settled" and usage is not None:
            metrics.llm_usage_add(
                provider=usage.provider, model=usage.model, tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out, cost_usd=usage.cost_usd,
            )  # fmt: skip


def metrics_connect() -> None:
    """Wire the runs' metrics into this process (apps.py)."""
    scrape_collector_register("runs", RunsCollector())
    run_ended.connect(run_ended_observe, dispatch_uid="swarms.metrics.run_ended")

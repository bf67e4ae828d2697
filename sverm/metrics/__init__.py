"""sverm's Prometheus metrics: each one declared here, once, with the helpers the apps call.

The apps record what happens in their process (a run ended, an LLM call, a WebSocket opened, a
webhook attempt, a 429) through the functions below; what is counted in the database (runs by
status, the queue) is read when `/metrics` is scraped, by collectors the apps register
(`exposition.scrape_collector_register`). Under several processes (PROMETHEUS_MULTIPROC_DIR set)
every process writes to the shared directory and a scrape adds them up (multiprocess.py).

Money is Decimal everywhere in sverm; it becomes a float here only for the exposition format.
"""

from decimal import Decimal

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from sverm.metrics import multiprocess

multiprocess.configure()  # before any metric below exists
# A `_created` series per counter and histogram doubles what a scrape sends for nothing the
# dashboards use, and the multiprocess mode has none: neither mode sends them.
disable_created_metrics()

# --- runs ------------------------------------------------------------------------------------
# Seconds from a run's start (its creation, for one that never started) to its end.
RUN_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
RUN_COST_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100)

run_duration_seconds = Histogram(
    "sverm_run_duration_seconds",
    "Wall time of ended runs, from start (creation if it never started) to end.",
    ["status", "template"],
    buckets=RUN_DURATION_BUCKETS,
)
run_cost_usd = Histogram(
    "sverm_run_cost_usd",
    "What ended runs cost, in USD (the ledger's total for the run).",
    ["status", "template"],
    buckets=RUN_COST_BUCKETS,
)

# --- LLM calls -------------------------------------------------------------------------------
LLM_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)

llm_call_duration_seconds = Histogram(
    "sverm_llm_call_duration_seconds",
    "Latency of each attempt of an LLM call (answered, failed or timed out).",
    ["provider", "model"],
    buckets=LLM_LATENCY_BUCKETS,
)
llm_call_errors = Counter(
    "sverm_llm_call_errors",
    "LLM call attempts that failed: `timeout`, `retryable` (429/5xx, dropped connections) or "
    "`fatal`.",
    ["provider", "model", "error"],
)
llm_tokens = Counter(
    "sverm_llm_tokens",
    "Tokens of settled LLM calls, as charged to the ledger (`direction`: in or out).",
    ["provider", "model", "direction"],
)
llm_cost_usd = Counter(
    "sverm_llm_cost_usd",
    "USD charged to the ledger for LLM calls (a float for Prometheus; the ledger is Decimal).",
    ["provider", "model"],
)

# --- streams, webhooks, limits ---------------------------------------------------------------
websocket_connections = Gauge(
    "sverm_websocket_connections",
    "WebSocket streams open now, by stream (`run`, `workspace`, `batch`).",
    ["stream"],
    multiprocess_mode="livesum",
)
webhook_deliveries = Counter(
    "sverm_webhook_deliveries",
    "Webhook delivery attempts by outcome: `delivered` (2xx), `http_error`, `network_error`, "
    "`refused` (the SSRF guard), `gone` (410: endpoint disabled), `endpoint_disabled` (skipped).",
    ["outcome"],
)
rate_limit_refusals = Counter(
    "sverm_rate_limit_refusals",
    "Requests refused with 429, by what the limit counts (`scope`: key, user, ip, workspace) "
    "and which limit (`limit`).",
    ["scope", "limit"],
)

# Every metric name sverm exports, as queried (a histogram's series add _bucket, _sum, _count;
# a counter's _total): the dashboard (deploy/grafana) may use these and no other.
RECORDED = (
    run_duration_seconds,
    run_cost_usd,
    llm_call_duration_seconds,
    llm_call_errors,
    llm_tokens,
    llm_cost_usd,
    websocket_connections,
    webhook_deliveries,
    rate_limit_refusals,
)


def run_ended_observe(*, status: str, template: str, seconds: float, cost_usd: Decimal) -> None:
    run_duration_seconds.labels(status, template).observe(max(seconds, 0.0))
    run_cost_usd.labels(status, template).observe(float(cost_usd))


def llm_call_observe(*, provider: str, model: str, seconds: float, error: str = "") -> None:
    """One attempt of an LLM call; `error` names how it failed (empty: it answered)."""
    llm_call_duration_seconds.labels(provider, model).observe(seconds)
    if error:
        llm_call_errors.labels(provider, model, error).inc()


def llm_usage_add(
    *, provider: str, model: str, tokens_in: int, tokens_out: int, cost_usd: Decimal
) -> None:
    llm_tokens.labels(provider, model, "in").inc(tokens_in)
    llm_tokens.labels(provider, model, "out").inc(tokens_out)
    llm_cost_usd.labels(provider, model).inc(float(cost_usd))


def websocket_opened(stream: str) -> None:
    websocket_connections.labels(stream).inc()


def websocket_closed(stream: str) -> None:
    websocket_connections.labels(stream).dec()


def webhook_delivery_observe(outcome: str) -> None:
    webhook_deliveries.labels(outcome).inc()


# What each refused limit counts against, where the refusal does not say (the per-minute
# request limit counts per API key or per user, and says which).
LIMIT_SCOPES = {
    "auth_per_minute": "ip",
    "anon_per_minute": "ip",
    "probe_per_minute": "ip",
    "runs_per_day": "workspace",
    "concurrent_runs": "workspace",
    "batches_per_hour": "workspace",
}


def rate_limit_refused(*, limit: str, scope: str = "") -> None:
    rate_limit_refusals.labels(scope or LIMIT_SCOPES.get(limit, "unknown"), limit).inc()

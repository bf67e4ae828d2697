"""Helpers for the run tests: executing runs on the real thread executor, waiting for them, and
reading money out of JSON exactly.

Runs only execute under `transactional_db` (the executor dispatches from `on_commit` and uses its
own connection); `db` tests never dispatch, so their runs stay `queued`.
"""

import importlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.backends.sqlite3.base import SQLiteCursorWrapper

from accounts.roles import Role
from billing.models import ModelPrice, UsageRecord
from swarms import services
from swarms.models import TERMINAL_STATUSES, Run, RunEvent, RunStatus
from templates_app.models import SwarmTemplate
from templates_app.services import templates_sync_builtins
from tests.web_page import PageServer

DEADLINE_SECONDS = 20.0
POLL_SECONDS = 0.02
TERMINAL = {str(status) for status in TERMINAL_STATUSES}
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
LOCK_WAIT_SECONDS = 10.0

# A valid hierarchical definition, with template metadata that must not reach the run.
INLINE_YAML = """\
name: Inline team
description: A small hierarchical team defined in the request
topology: hierarchical
instructions: Be brief.
limits:
  max_parallel: 2
  max_steps: 6
agents:
  - id: lead
    role: manager
    model: gpt-4o-mini
    max_tokens: 256
  - id: digger
    role: worker
    model: deepseek-chat
    replicas: 2
    max_tokens: 256
  - id: scribe
    role: writer
    model: gpt-4o-mini
    max_tokens: 512
"""

V1_CREATED_KEYS = {"swarm_id", "status", "estimated_cost_usd", "created_at"}
V1_STATUS_KEYS = {
    "swarm_id", "status", "progress", "current_cost_usd", "agents_active", "agents_total",
    "simulated", "error", "awaiting_budget", "awaiting_approval", "created_at",
}  # fmt: skip
V1_RESULT_KEYS = {
    "swarm_id", "status", "output", "cost_report", "agent_logs", "elapsed_seconds", "simulated",
    "error", "created_at", "completed_at",
}  # fmt: skip
V1_COST_REPORT_KEYS = {"total_usd", "total_tokens", "agents"}
V1_AGENT_COST_KEYS = {"agent_id", "model", "cost_usd", "tokens_in", "tokens_out"}
V1_AGENT_LOG_KEYS = {"agent_id", "timestamp", "action", "target", "summary"}
V1_CANCELLED_KEYS = {"swarm_id", "status", "cost_usd"}


def decimal_json(response) -> Any:
    """The body with every JSON number that has a fraction or exponent read as its exact
    Decimal text, so money can be compared without float rounding."""
    return json.loads(response.content, parse_float=Decimal)


def is_json_number(value: Any) -> bool:
    """A JSON number (read through `decimal_json`), not a string or a bool."""
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


def ledger(run_id: str) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(run_id=run_id).order_by("id"))


def ledger_total(run_id: str) -> Decimal:
    return sum((row.cost_usd for row in ledger(run_id)), Decimal(0))


def events_of(run_id: str) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("seq"))


def event_types(run_id: str) -> list[str]:
    return [event.type for event in events_of(run_id)]


def wait_until(
    client, url: str, done: Callable[[dict], bool], *, timeout: float = DEADLINE_SECONDS
) -> dict:
    """GET `url` every POLL_SECONDS until `done(body)`; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = decimal_json(response)
        if done(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not get there within {timeout} s; last: {body}")
        time.sleep(POLL_SECONDS)


def wait_terminal(client, url: str, *, timeout: float = DEADLINE_SECONDS) -> dict:
    """Poll a run's status (`/v1/swarms/{id}` or `/api/runs/{id}`) until it is terminal."""
    return wait_until(client, url, lambda body: body["status"] in TERMINAL, timeout=timeout)


def wait_for_event(run_id: str, event_type: str, *, timeout: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not RunEvent.objects.filter(run_id=run_id, type=event_type).exists():
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} wrote no {event_type} within {timeout} s")
        time.sleep(POLL_SECONDS)


def _wait_idle(timeout: float) -> list[str]:
    """Wait until no run is queued or running; returns those that still are."""
    deadline = time.monotonic() + timeout
    while True:
        active = list(Run.objects.filter(status__in=ACTIVE).values_list("pk", flat=True))
        if not active or time.monotonic() > deadline:
            return active
        time.sleep(POLL_SECONDS)


def _restore_default_prices() -> None:
    """`transactional_db` flushes every table after a test, data migrations' rows included:
    put the shipped prices (and built-in templates) back for the next executing test."""
    migration = importlib.import_module("billing.migrations.0002_default_prices")
    for model, provider, price_in, price_out in migration.DEFAULT_PRICES:
        ModelPrice.objects.get_or_create(
            model=model,
            defaults={
                "provider": provider,
                "input_per_million": Decimal(price_in),
                "output_per_million": Decimal(price_out),
            },
        )
    if not SwarmTemplate.objects.filter(workspace__isnull=True).exists():
        templates_sync_builtins()


def _waiting_on_locks(method):
    """Retry a statement refused with "database table is locked" until the lock holder is done,
    as SQLite's busy timeout would."""

    def execute(self, *args, **kwargs):
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)

    return execute


@pytest.fixture
def executing(transactional_db, settings, monkeypatch):
    """Runs really execute (thread executor, simulated provider, no latency). Teardown waits for
    every run to stop so the table flush never races a run thread.

    On SQLite the test database is in memory with a shared cache, where a connection that meets
    another's table lock fails at once with "database table is locked" (SQLITE_LOCKED ignores
    the busy timeout the settings configure for the real, file-based database). Statements are
    retried here instead, so the run threads and the test thread wait for each other as they
    would on a file database.
    """
    if connection.vendor == "sqlite":
        for name in ("execute", "executemany"):
            method = getattr(SQLiteCursorWrapper, name)
            monkeypatch.setattr(SQLiteCursorWrapper, name, _waiting_on_locks(method))
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}
    settings.SVERM_SIMULATED_LATENCY = 0
    _restore_default_prices()
    yield settings
    stuck = _wait_idle(DEADLINE_SECONDS)
    for run_id in stuck:
        services.run_cancel(run=Run.objects.get(pk=run_id))
    assert not _wait_idle(5.0), f"runs still active after the test: {stuck}"


@pytest.fixture
def not_executing(db, settings):
    """Runs are created but never dispatched (`db`: on_commit callbacks never fire)."""
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}
    return settings


def seqs(items: Iterable[dict]) -> list[int]:
    return [item["seq"] for item in items]


@pytest.fixture
def keyed(workspace, key_client):
    """A viewer's API key of `workspace` and the headers a status read sends with it (the fast
    reads' tests)."""
    _client, api_key, raw = key_client(workspace, Role.VIEWER)
    return api_key, {"Authorization": f"Bearer {raw}", "X-Request-ID": "req-fast-1"}


@pytest.fixture
def page(settings):
    """A web page on loopback (tests/web_page.py), and the fetch allowlist of hosts that lets
    `http_fetch` read it; yields its server (`url`, `fetched`)."""
    settings.SVERM_TOOL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    with PageServer() as server:
        yield server

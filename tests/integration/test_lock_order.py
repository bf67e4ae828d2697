"""The lock order between a run's creation and a worker's ledger write, on PostgreSQL, step by
step on two connections: the creation holds its workspace's quota lock while a run of that
workspace settles a call (ledger row, month's rollup row, then the ledger's foreign-key check on
the workspace row); the settle must not wait for the quota lock, so the creation, which takes the
rollup row next, never closes a cycle (PostgreSQL's "deadlock detected", a 500 to the client)."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections

from billing.models import MonthlyUsage, UsageRecord
from swarms.engine import Step, Usage
from swarms.services import runs as run_services
from swarms.services.recorders import OrmRecorder, StatementRecorder
from templates_app.models import SwarmTemplate
from tests.factories import make_run
from tests.integration.conftest import unavailable
from tests.runs.conftest import _restore_default_prices

pytestmark = pytest.mark.integration

WAIT_SECONDS = 15.0


@pytest.fixture
def on_postgres(transactional_db, settings, monkeypatch):
    if connection.vendor != "postgresql":
        unavailable("the lock order test needs DATABASE_URL pointing at PostgreSQL")
    settings.SVERM_RATE_LIMITS = True  # the quota check (and its lock) runs
    _restore_default_prices()
    # The created run is not executed: only its creation's locks matter here.
    monkeypatch.setattr("swarms.jobs.enqueue", lambda name, *args, countdown=0: None)


def call(status: str) -> Step:
    """The lead's planning call: reserved, or settled at $0.003."""
    if status != "settled":
        return Step("plan", "lead", "gpt-4o-mini", status, Decimal("0.01"), None, "")
    usage = Usage("lead", "gpt-4o-mini", "simulated", 100, 40, Decimal("0.003"))
    return Step("plan", "lead", "gpt-4o-mini", status, Decimal("0.01"), usage, "plan text")


def waiting_on_a_lock(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
        return cursor.fetchone()[0] > 0


class Worker(threading.Thread):
    """Runs `work` on its own database connection; keeps its error and its backend pid."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.error, self.pid = work, None, None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self.connected.set()
            self.work()
        except Exception as exc:
            self.error = exc
        finally:
            self.connected.set()
            connection.close()


# The recorder PostgreSQL uses (one statement of CTEs), and the ORM's (other backends, and a
# batch that settles a call it also reserves).
RECORDERS = {
    "one statement": StatementRecorder(),
    "orm": OrmRecorder(),
}


@pytest.mark.parametrize("recorder", RECORDERS)
def test_a_settling_call_does_not_wait_for_a_creation_holding_the_quota_lock(
    on_postgres, workspace, user, monkeypatch, recorder
):
    record = RECORDERS[recorder].record
    run = make_run(workspace, swarm_type="research-swarm-v1")  # the creation's rollup row
    record(run=run, lease=1, steps=[call("reserved")], events=[])
    holding, go_on = threading.Event(), threading.Event()
    real_usage_run_started = run_services.usage_run_started

    def usage_run_started(**kwargs):
        # Inside the creation's transaction: the quota lock is held, the run row is inserted,
        # the month's rollup row is next.
        holding.set()
        assert go_on.wait(WAIT_SECONDS)
        real_usage_run_started(**kwargs)

    monkeypatch.setattr(run_services, "usage_run_started", usage_run_started)
    definition = SwarmTemplate.objects.get(pk="research-swarm-v1").definition
    creator = Worker(lambda: run_services.run_create(
        workspace_id=workspace.pk, definition=definition, task="Another topic",
        max_budget_usd=None, created_by=user, template_id="research-swarm-v1",
    ))  # fmt: skip
    creator.start()
    assert holding.wait(WAIT_SECONDS), creator.error
    settle = Worker(lambda: record(
        run=run, lease=1, steps=[call("settled")], events=[("agent.completed", "lead", {})]
    ))  # fmt: skip
    settle.start()
    assert settle.connected.wait(WAIT_SECONDS)
    deadline = time.monotonic() + WAIT_SECONDS
    while settle.is_alive() and not waiting_on_a_lock(settle.pid):
        assert time.monotonic() < deadline, "the settle neither finished nor waited"
        time.sleep(0.01)
    settle_blocked = settle.is_alive()
    go_on.set()  # the creation takes the rollup row now: with the settle waiting, a cycle
    creator.join(WAIT_SECONDS)
    settle.join(WAIT_SECONDS)

    assert not creator.is_alive() and not settle.is_alive()
    assert (creator.error, settle.error) == (None, None)
    assert not settle_blocked, "the ledger write waited for the quota lock"
    assert UsageRecord.objects.filter(run_id=run.pk).count() == 1
    rollup = MonthlyUsage.objects.get(workspace=workspace, swarm_type="research-swarm-v1")
    assert (rollup.runs, rollup.cost_usd) == (1, Decimal("0.003"))  # the created run, the call

"""The run host: every run of a process on one event loop, their database writes on a few lanes
(so a few connections however many runs), and one poll for the cancel requests of them all."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.backends import utils
from django.utils import timezone

from swarms import executor
from swarms.models import Run, RunStatus
from tests.factories import create_run
from tests.runs.conftest import ledger, wait_for_event
from tests.waiting import wait_for

RUNS = 8
LANES = 2


@pytest.fixture
def host(executing, monkeypatch):
    executing.SVERM_EXECUTOR_DB_LANES = LANES
    monkeypatch.setattr("swarms.jobs.enqueue", lambda name, *args, countdown=0: None)
    host = executor.RunHost()
    yield host
    host.close()


def statements_by_thread(monkeypatch) -> list[str]:
    names: list[str] = []
    execute = utils.CursorWrapper.execute

    def recording(self, sql, params=None):
        names.append(threading.current_thread().name)
        return execute(self, sql, params)

    monkeypatch.setattr(utils.CursorWrapper, "execute", recording)
    return names


def test_many_runs_share_a_few_database_lanes_and_close_them_when_done(
    host, executing, workspace, monkeypatch
):
    executing.SVERM_SIMULATED_LATENCY = 0.05
    run_ids = [create_run(workspace).pk for _ in range(RUNS)]
    threads = statements_by_thread(monkeypatch)
    with ThreadPoolExecutor(max_workers=RUNS) as callers:  # as Celery's worker threads would
        list(callers.map(lambda run_id: host.execute(run_id, False), run_ids))
    threads = list(threads)  # what the runs executed, not this test's reads below

    runs = Run.objects.filter(pk__in=run_ids)
    assert set(runs.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    assert all(ledger(run_id) for run_id in run_ids)
    # Every statement of the runs came from a lane, and there are only LANES of them.
    assert threads and {name.rsplit("_", 1)[0] for name in threads} <= {
        f"sverm-db-{number}" for number in range(LANES)
    }
    assert len(set(threads)) <= LANES
    # With no run left, no lane holds a connection (Django keeps SQLite's in-memory test
    # database open: closing it would lose it).
    for lane in host.lanes:
        assert lane.executor.submit(closed).result()
        assert lane.runs == 0


def test_a_busy_lane_keeps_its_connection_between_runs_and_closes_it_once_idle(
    host, executing, workspace
):
    executing.SVERM_EXECUTOR_DB_IDLE_SECONDS = 0.5
    first, second = create_run(workspace), create_run(workspace)
    host.execute(first.pk, False)
    lane = host.lanes[0]  # the least busy: the first, with every lane idle
    kept = lane.executor.submit(lambda: connection.connection).result()
    if connection.vendor == "postgresql":
        assert kept is not None
    host.execute(second.pk, False)
    assert lane.executor.submit(lambda: connection.connection).result() is kept  # reused
    deadline = time.monotonic() + 5
    while not lane.executor.submit(closed).result():
        assert time.monotonic() < deadline, "the idle lane kept its connection"
        time.sleep(0.05)
    assert Run.objects.get(pk=second.pk).status == RunStatus.COMPLETED


def closed() -> bool:
    in_memory = connection.vendor == "sqlite" and connection.is_in_memory_db()
    return connection.connection is None or in_memory


def test_a_cancel_requested_by_another_process_stops_the_run(host, executing, workspace):
    executing.SVERM_SIMULATED_LATENCY = 0.3
    run = create_run(workspace)
    caller = threading.Thread(target=host.execute, args=(run.pk, False))
    caller.start()
    wait_for_event(run.pk, "agent.started")
    # What run_cancel writes from an API process: no in-process signal reaches this host.
    Run.objects.filter(pk=run.pk).update(cancel_requested_at=timezone.now())
    caller.join(timeout=10)
    assert not caller.is_alive()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "writer" not in {row.agent_id for row in ledger(run.pk)}


def test_the_embedded_mode_executes_many_runs_at_once_without_a_thread_each(executing, workspace):
    # Every call takes a while, so runs started together overlap: all of them run at once, where
    # a thread per run (a pool of four) held the others queued.
    executing.SVERM_SIMULATED_LATENCY = 0.5
    threads_before = threading.active_count()
    ids = [create_run(workspace).pk for _ in range(RUNS)]
    wait_for(
        lambda: Run.objects.filter(pk__in=ids, status=RunStatus.RUNNING).count() == RUNS,
        f"all {RUNS} runs running at once",
    )
    assert threading.active_count() - threads_before < RUNS


def test_the_embedded_mode_holds_at_most_its_max_runs_at_once(host, executing, workspace):
    executing.SVERM_SIMULATED_LATENCY = 0.2
    executing.SVERM_EXECUTOR_MAX_RUNS = 2  # read when the fresh host admits its first run
    ids = [create_run(workspace).pk for _ in range(4)]  # the host fixture dispatches nothing
    for run_id in ids:
        host.start(run_id, False)
    seen: set[tuple[int, int]] = set()

    def ended() -> bool:
        statuses = list(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
        running, queued = statuses.count(RunStatus.RUNNING), statuses.count(RunStatus.QUEUED)
        seen.add((running, queued))
        return running + queued == 0

    wait_for(ended, "the four runs' ends")
    assert max(running for running, _queued in seen) <= 2
    assert (2, 2) in seen  # two ran while the two others waited, queued, for a slot
    assert set(Run.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        RunStatus.COMPLETED
    }

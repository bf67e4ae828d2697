"""Exactly-once firing: several threads (each with its own database connection), and on
PostgreSQL several processes, call `schedules_fire_due` at once for the same due slots; each
slot fires once and makes one run. Run on PostgreSQL with a database of its own:
`DATABASE_URL=postgres://postgres@127.0.0.1:5432/sched pytest tests/schedules`."""

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection

from schedules.models import Schedule, ScheduleFiring
from swarms.models import Run
from tests.processes import ROOT
from tests.schedules.conftest import parse, tick

pytestmark = pytest.mark.usefixtures("executing")

THREADS = 8


def at_once(count: int, work) -> list:
    """`work()` in `count` threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except BaseException as error:  # reported by the test
            results[index] = error
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    return results


def test_threads_firing_the_same_slot_make_one_run(make_schedule):
    body = make_schedule(cron="*/5 * * * *")
    slot = parse(body["nextRunAt"])
    now = slot + timedelta(seconds=3)
    results = at_once(THREADS, lambda: [f.pk for f in tick(now)])
    assert sorted(len(r) for r in results) == [0] * (THREADS - 1) + [1]
    [firing] = ScheduleFiring.objects.filter(schedule_id=body["id"])
    assert (firing.slot_at, firing.outcome) == (slot, "started")
    assert Run.objects.count() == 1
    assert Schedule.objects.get(pk=body["id"]).runs_made == 1


def test_threads_share_many_due_schedules_each_fired_once(make_schedule):
    made = [make_schedule(name=f"s{n}", cron="*/5 * * * *") for n in range(20)]
    now = max(parse(body["nextRunAt"]) for body in made) + timedelta(seconds=3)
    results = at_once(THREADS, lambda: [f.schedule_id for f in tick(now)])
    fired = [schedule_id for result in results for schedule_id in result]
    assert sorted(fired) == sorted(body["id"] for body in made)  # each once, none twice
    assert ScheduleFiring.objects.count() == Run.objects.count() == 20


SCRIPT = """
import json, sys, time
from datetime import datetime
import django
django.setup()
from swarms import jobs
jobs.enqueue = lambda *args, **kwargs: None  # no executor here: the runs stay queued
from schedules.services import schedules_fire_due
start, now = float(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
print(json.dumps([firing.schedule_id for firing in schedules_fire_due(now=now)]))
"""


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
    reason="several processes share a database on PostgreSQL (SQLite's test database is in memory)",
)
def test_processes_firing_the_same_slots_make_one_run_each(make_schedule):
    made = [make_schedule(name=f"p{n}", cron="*/5 * * * *") for n in range(10)]
    now = max(parse(body["nextRunAt"]) for body in made) + timedelta(seconds=3)
    database = connection.settings_dict
    url = (
        f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:"
        f"{database['PORT']}/{database['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "sverm.settings",
           "SVERM_RATE_LIMITS": "0"}  # fmt: skip
    env.pop("REDIS_URL", None)
    start = time.time() + 4  # every process set up (Django loaded) before it fires
    command = [sys.executable, "-c", SCRIPT, str(start), now.isoformat()]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    fired = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        fired += json.loads(out.strip().splitlines()[-1])
    assert sorted(fired) == sorted(body["id"] for body in made)
    assert ScheduleFiring.objects.filter(outcome="started").count() == Run.objects.count() == 10
    assert tick(now) == []
    Run.objects.update(status="cancelled")  # never dispatched: nothing executes them

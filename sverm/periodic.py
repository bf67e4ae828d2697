"""Every periodic task, declared once in PERIODIC_TASKS: Celery beat's schedule
(`CELERY_BEAT_SCHEDULE`, which settings.py builds with `beat_schedule`) and the embedded mode's
timer thread (`start_embedded`) are both made from it.

The declarations are plain data, so settings.py can import this module before any app is
loaded; the timer finds each task by its Celery name once the apps are ready, and calls it in
its own thread.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

logger = logging.getLogger("sverm.periodic")


@dataclass(frozen=True)
class PeriodicTask:
    name: str  # the beat entry's name
    task: str  # the Celery task's name (an app's tasks.py)
    # Seconds, or the name of the setting that holds them (the embedded timer reads it at each
    # tick, so changing it to 0 pauses the task there).
    every: float | str
    # A pass still queued this long after it was due (workers busy with runs) is dropped (None:
    # one interval), so a late pass never piles up behind the next one, which does its work.
    expires: float | None = None

    def seconds(self, setting: Callable[[str], Any]) -> float:
        """The interval, reading a named one with `setting(name)`."""
        return float(setting(self.every) if isinstance(self.every, str) else self.every)


PERIODIC_TASKS = (
    # Runs whose worker stopped sending heartbeats are resumed (or failed), and runs queued for
    # long have their start sent again (it may not have reached the broker).
    PeriodicTask(
        "reap-stale-runs", "swarms.reap_stale_runs", every="SVERM_REAPER_INTERVAL_SECONDS"
    ),
    # Retention: expired runs' events and output pruned, the expired trash purged. Hourly.
    PeriodicTask("prune-retention", "swarms.prune_retention", every=3600.0, expires=3000.0),
    # The audit trail past each workspace plan's audit_retention_days, in batches. Hourly.
    PeriodicTask("prune-audit-trail", "accounts.prune_audit_trail", every=3600.0, expires=3000.0),
    # Due schedules fire: each slot claimed in the database, so every beat/worker may tick.
    PeriodicTask("fire-schedules", "schedules.fire_due", every="SVERM_SCHEDULE_TICK_SECONDS"),
    # Open batches: items whose run's end signal was lost recorded, items a quota held started.
    PeriodicTask("advance-batches", "batches.advance_open_batches", every=5.0),
)


def beat_schedule(values: Mapping[str, Any]) -> dict[str, dict]:
    """CELERY_BEAT_SCHEDULE, from PERIODIC_TASKS; `values`: the settings by name (settings.py
    passes its globals())."""
    schedule = {}
    for entry in PERIODIC_TASKS:
        seconds = entry.seconds(values.__getitem__)
        schedule[entry.name] = {
            "task": entry.task,
            "schedule": seconds,
            "options": {"expires": seconds if entry.expires is None else entry.expires},
        }
    return schedule


# ---------------------------------------------------------------------------------------------
# The embedded timer
# ---------------------------------------------------------------------------------------------
TICK_SECONDS = 1.0
MARK_PREFIX = "sverm:periodic:"


class EmbeddedSchedule:
    """When each periodic task runs in a process without Celery beat. A task runs once its
    interval has passed since it last ran in any process sharing the cache: each pass leaves a
    mark there that lasts (about) the interval, and this process looks again an interval later.
    So a process that starts runs every task at its first tick unless another one just did (a
    restart resumes at once the runs its predecessor left), and processes sharing one cache
    share one pass per interval."""

    def __init__(
        self,
        entries: tuple[PeriodicTask, ...] = PERIODIC_TASKS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries = entries
        self.clock = clock
        self.due = {entry.name: clock() for entry in entries}

    def tick(self) -> list[str]:
        """Run the tasks that are due, each on its own (one that fails does not stop the
        others); returns the names of those it started."""
        ran = []
        for entry in self.entries:
            interval = entry.seconds(partial(getattr, settings))
            now = self.clock()
            if interval <= 0 or now < self.due[entry.name]:
                continue
            self.due[entry.name] = now + interval
            try:
                # Shorter than the interval by a tick, so this process's own mark is gone when
                # it looks again.
                mark = max(interval - TICK_SECONDS, 0)
                if not cache.add(MARK_PREFIX + entry.name, True, timeout=mark):
                    continue
                ran.append(entry.name)
                _work(entry.task)()
            except Exception:
                logger.exception(
                    "the periodic task %s failed; it runs again in %g s", entry.name, interval
                )
        try:
            close_old_connections()
        except Exception:
            logger.exception("the periodic timer could not close its database connection")
        return ran

    def run_forever(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            self.tick()


_local_work: dict[str, Callable[[], object]] = {}


def register_local(task: str, work: Callable[[], object]) -> None:
    """Have the embedded timer run periodic task `task` as `work()`: the same work as its Celery
    task, without importing Celery (swarms/apps.py registers swarms/periodic.py's)."""
    _local_work[task] = work


def _work(task: str) -> Callable[[], object]:
    """What the timer calls for `task`: its registered work, else its Celery task."""
    return _local_work.get(task) or _celery_task(task)


def _celery_task(name: str):
    """The task registered under `name`, its module imported if it was not yet (a web process
    imports no tasks module of its own). Celery's app is imported here, not with this module:
    settings.py imports this module, and Celery beat's app (sverm/beat.py) has no task."""
    from sverm.celery import app

    if name not in app.tasks:
        app.autodiscover_tasks(force=True)
    return app.tasks[name]


_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def start_embedded() -> None:
    """Run the periodic tasks in this process, on one daemon thread (the embedded mode: Celery
    beat runs them otherwise); a process starts it once."""
    global _thread
    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return
        schedule = EmbeddedSchedule()
        _thread = threading.Thread(target=schedule.run_forever, name="sverm-periodic", daemon=True)
        _thread.start()

"""The schedules' periodic job as a plain function under its Celery task name: Celery beat sends
the task (schedules/tasks.py), the embedded timer (sverm/periodic.py) calls it in its thread."""

from collections.abc import Callable

from schedules.services import schedules_fire_due


def schedules_tick() -> list[str]:
    """Fire the due schedules and start the queued firings that may start; the firings' ids."""
    return [firing.pk for firing in schedules_fire_due()]


# Celery task name -> its work (the name sverm/periodic.py's PERIODIC_TASKS declares).
PERIODIC_JOBS: dict[str, Callable[[], object]] = {"schedules.fire_due": schedules_tick}

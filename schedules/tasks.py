"""Celery tasks of the schedules app: the periodic tick, declared in sverm/periodic.py."""

from celery import shared_task

from schedules.periodic import schedules_tick


# Not retried: the next tick does the work of one that failed (slots stay due until fired).
@shared_task(name="schedules.fire_due", ignore_result=True)
def fire_due_schedules_task() -> list[str]:
    """Fire the due schedules (each slot once, whichever worker gets it)."""
    return schedules_tick()

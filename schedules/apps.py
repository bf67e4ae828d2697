from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from schedules.periodic import PERIODIC_JOBS
        from schedules.services import schedule_run_ended
        from sverm import periodic
        from swarms.signals import run_ended

        # The embedded timer fires due schedules without Celery (beat sends the same task).
        for name, work in PERIODIC_JOBS.items():
            periodic.register_local(name, work)
        # A run a schedule made ended: its queued firing (overlap policy `queue`) starts now.
        run_ended.connect(schedule_run_ended, dispatch_uid="schedules.run_ended")

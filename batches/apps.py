from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batches"

    def ready(self) -> None:
        # A run's end asks for a pass of its batch; the embedded mode runs the dispatch job and
        # the periodic pass in this process (Celery's tasks are in batches/tasks.py).
        from batches import receivers, services
        from sverm import periodic
        from swarms import jobs
        from swarms.signals import run_ended

        run_ended.connect(receivers.on_run_ended, dispatch_uid="batches.on_run_ended")
        jobs.register_local(services.ADVANCE_BATCH, receivers.advance_batch)
        periodic.register_local(services.ADVANCE_OPEN_BATCHES, services.batches_advance_open)

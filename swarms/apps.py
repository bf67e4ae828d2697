from django.apps import AppConfig


class SwarmsConfig(AppConfig):
    name = "swarms"
    verbose_name = "Swarms"

    def ready(self) -> None:
        # The embedded mode's side of swarms/jobs.py: what runs a job in this process when no
        # Celery worker does, and what stops a run executing here when it is cancelled.
        from sverm import periodic
        from swarms import executor, fast_reads, jobs, metrics
        from swarms.periodic import PERIODIC_JOBS
        from swarms.webhooks import delivery

        jobs.register_local(jobs.EXECUTE_RUN, executor.submit_run, inline=True)
        jobs.register_local(jobs.DELIVER_WEBHOOK, delivery.webhook_attempt)
        jobs.register_canceller(executor.cancel_local)
        # The embedded timer's periodic jobs, run without Celery.
        for name, work in PERIODIC_JOBS.items():
            periodic.register_local(name, work)
        # What the hot reads keep in memory is dropped when this process changes it.
        fast_reads.forget_on_change()
        # Runs' Prometheus metrics: the scrape's database counts, each run's end.
        metrics.metrics_connect()

"""App configs of the project package: database behaviour every app relies on, and Daphne's
app without the server it imports."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class SvermConfig(AppConfig):
    name = "sverm"
    verbose_name = "sverm"

    def ready(self) -> None:
        from sverm.metrics.exposition import scrape_collector_register
        from sverm.text_match import lookups_register, sqlite_functions_install
        from sverm.worker_heartbeat import WorkerHeartbeatCollector

        lookups_register()
        connection_created.connect(sqlite_functions_install, dispatch_uid="sverm.sqlite_upper")
        scrape_collector_register("worker_heartbeat", WorkerHeartbeatCollector())


class DaphneRunserverConfig(AppConfig):
    """Daphne's app (its `manage.py runserver`, which serves ASGI and WebSockets), without what
    Daphne's own app config does on import: import `daphne.server`, i.e. Twisted, autobahn and
    pyOpenSSL (~29 MiB), into every process that loads the apps, Uvicorn workers, the Celery
    worker and `manage.py` commands included. A process that serves with Daphne (`runserver`,
    `python -m sverm.server`) imports the server itself. Daphne's check that its app precedes
    staticfiles is left out: registering it imports the server again (Celery's worker runs the
    checks), and INSTALLED_APPS lists this first."""

    name = "daphne"
    verbose_name = "Daphne"
    # Named by its path in INSTALLED_APPS; never the `sverm` entry's config (SvermConfig is).
    default = False

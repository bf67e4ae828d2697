"""The Celery app of `celery -A sverm.beat beat` (docker-compose.yml's beat): sverm's Celery
configuration (`CELERY_*` settings, the schedule from sverm/periodic.py) without Django's apps.

Beat only sends each periodic task by name to the broker at its time; it runs no task, so it
needs neither the apps nor the tasks' modules. With `sverm.celery`'s app, Celery's Django fix-up
sets Django up and imports every task module in beat too, which then holds what a worker holds
(~105 MiB RSS against ~40 here; bench/README.md, "Where memory goes"). The messages are the same:
same broker, transport, serializer, task names and options.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sverm.settings")

# No fix-ups: the Django one is what sets the apps up. Not the current app: a process that imports
# both (the tests) keeps sending through sverm.celery's.
app = Celery("sverm", fixups=[], set_as_current=False)
app.config_from_object("django.conf:settings", namespace="CELERY")

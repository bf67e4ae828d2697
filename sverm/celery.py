"""The Celery app, configured from Django settings (`CELERY_*`)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sverm.settings")

app = Celery("sverm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

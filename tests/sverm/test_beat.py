"""Celery beat's app (sverm/beat.py): the worker's Celery configuration without Django's apps."""

import json
import os
import subprocess
import sys

from sverm.beat import app as beat_app
from sverm.celery import app as worker_app
from tests.processes import ROOT

# What decides the messages beat sends and how it reaches the broker.
SENDING = (
    "broker_url", "broker_transport", "broker_transport_options",
    "broker_connection_retry_on_startup",
    "broker_connection_max_retries", "task_serializer", "accept_content", "timezone",
    "beat_schedule",
)  # fmt: skip


def test_beat_sends_with_the_workers_configuration():
    for name in SENDING:
        assert beat_app.conf[name] == worker_app.conf[name], name
    assert {"reap-stale-runs", "prune-retention", "fire-schedules"} <= set(
        beat_app.conf.beat_schedule
    )


def test_beat_does_not_become_the_current_app():
    from celery import current_app

    assert current_app._get_current_object() is not beat_app


def test_beat_loads_no_django_app(tmp_path):
    probe = (
        "import json, sys; from sverm.beat import app; app.conf.beat_schedule; "
        "from django.apps import apps; "
        "print(json.dumps([apps.ready, sorted({'swarms', 'rest_framework', 'openai'} "
        "& {name.split('.')[0] for name in sys.modules})]))"
    )
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="sverm.settings", SVERM_DATA_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:1/0", SECRET_KEY="test", DEBUG="0",
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, []]

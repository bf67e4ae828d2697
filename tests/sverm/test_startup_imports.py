"""What a process that serves sverm holds after start: modules only some paths need (an
OpenAI-compatible provider, a webhook delivery, the Daphne server) are imported by those paths,
not by loading the apps (bench/README.md, "Where memory goes")."""

import json
import os
import subprocess
import sys

from tests.processes import ROOT

# Loads the apps, the ASGI application and every URL's view, as a server's first request does,
# then prints which of the named top-level packages it imported.
PROBE = """
import json, sys
import django
django.setup()
import sverm.asgi
from django.urls import get_resolver
get_resolver().url_patterns
tops = {name.split(".")[0] for name in sys.modules}
print(json.dumps(sorted(set(json.loads(sys.argv[1])) & tops)))
"""
LAZY = ["openai", "pydantic", "httpx", "twisted", "autobahn", "OpenSSL"]


def _imported(env: dict[str, str], names: list[str] = LAZY) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(names)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _base_env(tmp_path) -> dict[str, str]:
    drop = ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "SVERM_EXECUTOR", "SVERM_PROVIDERS")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(DJANGO_SETTINGS_MODULE="sverm.settings", SVERM_DATA_DIR=str(tmp_path))
    return env


def test_the_embedded_server_starts_without_the_heavy_modules_of_some_paths(tmp_path):
    # With a provider configured too: its SDK is imported by its first call, not at start.
    env = {**_base_env(tmp_path), "OPENAI_API_KEY": "sk-test"}
    # Redis's client and Celery too: the embedded mode has neither Redis nor a broker.
    assert _imported(env, [*LAZY, "redis", "celery", "kombu"]) == []


def test_a_production_process_starts_without_them(tmp_path):
    # Nothing is contacted at import: the URLs only have to parse.
    env = {
        **_base_env(tmp_path),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "SECRET_KEY": "test",
        "DEBUG": "0",
    }
    assert _imported(env) == []

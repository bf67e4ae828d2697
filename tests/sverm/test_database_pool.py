"""PostgreSQL connections are bounded per process (Django's psycopg pool), and docker-compose's
layout stays within PostgreSQL's default max_connections with the defaults."""

import json
import os
import subprocess
import sys

import pytest

from tests.test_compose import as_argv, environment_of, load_compose

SHOW_DATABASE = (
    "import json, django.conf as c; d = c.settings.DATABASES['default']; print(json.dumps({"
    "'engine': d['ENGINE'], 'options': d.get('OPTIONS', {}), 'max_age': d['CONN_MAX_AGE'],"
    "'checks': d['CONN_HEALTH_CHECKS']}))"
)
POSTGRES = "postgres://sverm:pw@db:5432/sverm"
# PostgreSQL's defaults: max_connections, and the slots kept for superusers.
MAX_CONNECTIONS, SUPERUSER_RESERVED = 100, 3
# Left for `manage.py` commands (one connection each), psql and the migrate job.
HEADROOM = 10


def database_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL"))}
    environ.update(SVERM_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="sverm.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", SHOW_DATABASE], env=environ, capture_output=True, text=True
    )


def loaded(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgresql_connections_come_from_a_bounded_pool(tmp_path):
    values = loaded(database_settings(tmp_path, DATABASE_URL=POSTGRES))
    assert values["options"]["pool"] == {"min_size": 2, "max_size": 12, "timeout": 30.0}
    assert values["max_age"] == 0 and values["checks"] is True


def test_the_pool_size_and_wait_are_configurable_and_zero_turns_it_off(tmp_path):
    sized = loaded(
        database_settings(
            tmp_path, DATABASE_URL=POSTGRES, DB_POOL_MAX_SIZE="1", DB_POOL_TIMEOUT="5"
        )
    )
    assert sized["options"]["pool"] == {"min_size": 1, "max_size": 1, "timeout": 5.0}
    off = loaded(
        database_settings(
            tmp_path, DATABASE_URL=POSTGRES, DB_POOL_MAX_SIZE="0", DB_CONN_MAX_AGE="60"
        )
    )
    assert "pool" not in off["options"] and off["max_age"] == 60


def test_persistent_connections_and_the_pool_together_refuse_to_start(tmp_path):
    result = database_settings(tmp_path, DATABASE_URL=POSTGRES, DB_CONN_MAX_AGE="60")
    assert result.returncode != 0
    assert "DB_CONN_MAX_AGE" in result.stderr and "DB_POOL_MAX_SIZE=0" in result.stderr


def test_sqlite_has_no_pool(tmp_path):
    values = loaded(database_settings(tmp_path))
    assert values["engine"] == "sverm.sqlite_backend"
    assert "pool" not in values["options"]


@pytest.mark.parametrize("workers", [None, "4"])
def test_compose_layout_fits_postgresqls_default_max_connections(tmp_path, workers):
    """Every process of the stack (each Uvicorn worker, the Celery worker, beat) may hold the
    pool's maximum; together, with room for manage.py and psql, under max_connections."""
    env = {"POSTGRES_PASSWORD": "pw", "SECRET_KEY": "k"}
    if workers:
        env["WEB_CONCURRENCY"] = workers
    services = load_compose(env)["services"]
    web = as_argv(services["web"]["command"])
    processes = int(next(a for a in web if a.startswith("--workers=")).split("=")[1])
    processes += 2  # worker, beat (migrate has exited before they start)
    container = environment_of(services["worker"])
    assert {"DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT"} <= set(container)  # operators can tune them
    pooled = {name: container[name] for name in ("DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT")}
    pool = loaded(database_settings(tmp_path, DATABASE_URL=POSTGRES, **pooled))["options"]["pool"]
    assert processes * pool["max_size"] + HEADROOM <= MAX_CONNECTIONS - SUPERUSER_RESERVED

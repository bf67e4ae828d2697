"""Settings come from the environment; the embedded mode needs none of it."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, django.conf as c; s = c.settings; print(json.dumps({"
    "'key': s.SECRET_KEY, 'db': s.DATABASES['default']['ENGINE'],"
    "'db_name': str(s.DATABASES['default']['NAME']),"
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'cache': s.CACHES['default']['BACKEND'],"
    "'broker': s.CELERY_BROKER_URL, 'hosts': s.ALLOWED_HOSTS, 'debug': s.DEBUG,"
    "'init': s.DATABASES['default'].get('OPTIONS', {}).get('init_command', '')}))"
)
CLEARED = ("SECRET_KEY", "REDIS_URL", "DATABASE_URL", "DEBUG", "ALLOWED_HOSTS", "CELERY_BROKER_URL")


def load_settings(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environ.update({"SVERM_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "sverm.settings"})
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", PRINT], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_embedded_mode_generates_and_keeps_a_secret_key(tmp_path):
    first = load_settings(tmp_path)
    assert first.returncode == 0, first.stderr
    values = json.loads(first.stdout)
    key_file = tmp_path / ".secret_key"
    assert key_file.read_text() == values["key"] and len(values["key"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(load_settings(tmp_path).stdout)["key"] == values["key"]
    assert values["db"] == "sverm.sqlite_backend"
    assert values["db_name"] == str(tmp_path / "sverm.sqlite3")
    assert values["layer"] == "sverm.layers.ThreadSafeInMemoryChannelLayer"
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["broker"] == "memory://"
    assert values["debug"] is False
    assert "PRAGMA synchronous=FULL" in values["init"]


def test_sqlite_synchronous_is_chosen_by_the_environment(tmp_path):
    values = json.loads(load_settings(tmp_path, SVERM_SQLITE_SYNCHRONOUS="normal").stdout)
    assert "PRAGMA synchronous=NORMAL" in values["init"]
    refused = load_settings(tmp_path, SVERM_SQLITE_SYNCHRONOUS="OFF")
    assert refused.returncode != 0
    assert "SVERM_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA" in refused.stderr


def test_redis_switches_layer_cache_and_broker(tmp_path):
    result = load_settings(tmp_path, REDIS_URL="redis://cache:6379/2", SECRET_KEY="s" * 50)
    values = json.loads(result.stdout)
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["cache"] == "sverm.cache.FailSafeRedisCache"  # Django's RedisCache, fail-safe
    assert values["broker"] == "redis://cache:6379/2"
    assert values["key"] == "s" * 50
    assert not (tmp_path / ".secret_key").exists()


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = load_settings(tmp_path, REDIS_URL="redis://cache:6379/0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_database_url_and_allowed_hosts(tmp_path):
    result = load_settings(
        tmp_path,
        DATABASE_URL="postgres://u:p@db:5432/sverm",
        ALLOWED_HOSTS="api.example.com, .example.org",
        DEBUG="true",
    )
    values = json.loads(result.stdout)
    assert values["db"] == "django.db.backends.postgresql"
    assert values["db_name"] == "sverm"
    assert values["hosts"] == ["api.example.com", ".example.org"]
    assert values["debug"] is True


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_debug_falsy_values(tmp_path, value):
    assert json.loads(load_settings(tmp_path, DEBUG=value).stdout)["debug"] is False

"""SVERM_WEBHOOK_RETRY_SCHEDULE: the webhook retry delays read from the environment, validated."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from sverm import settings as settings_module
from swarms.webhooks import delivery as webhook_delivery

ROOT = Path(__file__).resolve().parents[2]
NAME = "SVERM_WEBHOOK_RETRY_SCHEDULE"
STANDARD = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


def test_the_default_is_the_standard_webhooks_schedule(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert settings_module.env_delays(NAME, STANDARD) == STANDARD
    monkeypatch.setenv(NAME, "  ")
    assert settings_module.env_delays(NAME, STANDARD) == STANDARD


@pytest.mark.parametrize(
    ("value", "delays"),
    [
        ("0,0.2,0.2", [0.0, 0.2, 0.2]),
        (" 1 , 30 ,600 ", [1.0, 30.0, 600.0]),
        ("86400", [86400.0]),
        ("0", [0.0]),
    ],
)
def test_comma_separated_seconds_are_parsed(monkeypatch, value, delays):
    monkeypatch.setenv(NAME, value)
    assert settings_module.env_delays(NAME, STANDARD) == delays


@pytest.mark.parametrize(
    "value",
    ["soon", "-1", "5,", "1,,2", "1.2.3", ".", "nan", "inf", "1e3", "0x10", "86401", "5s", "٣"],
)
def test_a_bad_schedule_is_improperly_configured(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured) as error:
        settings_module.env_delays(NAME, STANDARD)
    assert str(error.value) == (
        f"{NAME} must be comma-separated delays in seconds from 0 to 86400 (e.g. '0,5,300'), "
        f"not {value!r}."
    )


def test_the_setting_drives_the_delivery_schedule(settings):
    assert django_settings.SVERM_WEBHOOK_RETRY_SCHEDULE  # the suite runs with a schedule
    settings.SVERM_WEBHOOK_RETRY_SCHEDULE = [0.0, 0.5]
    assert webhook_delivery.retry_schedule() == [0.0, 0.5]


def _load(tmp_path, value: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    environ.update(
        SVERM_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="sverm.settings", **{NAME: value}
    )
    code = (
        "import json, django.conf as c; print(json.dumps(c.settings.SVERM_WEBHOOK_RETRY_SCHEDULE))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_the_environment_sets_the_schedule_at_startup_and_a_bad_one_stops_it(tmp_path):
    loaded = _load(tmp_path, "0,0.25,1")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == [0.0, 0.25, 1.0]
    refused = _load(tmp_path, "0,5m")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert f"{NAME} must be comma-separated delays in seconds" in refused.stderr

"""Fixtures for the plan limits: rate limits switched back on, seed 002's plan rows, a frozen
clock, and runs that are created but never executed."""

from collections.abc import Iterator
from unittest import mock

import pytest

from accounts.models import PLAN_DEFAULTS, PlanLimits
from tests.runs.conftest import _restore_default_prices

# 10 s into a minute: the window ends at WINDOW_END, 50 s later.
WINDOW_START = 1_800_000_000 - 1_800_000_000 % 60
FROZEN_NOW = WINDOW_START + 10.0
WINDOW_END = WINDOW_START + 60


@pytest.fixture
def rate_limits_on(settings):
    """Undo the suite-wide `_rate_limits_off`: plan limits (requests and run quotas) apply."""
    settings.SVERM_RATE_LIMITS = True
    return settings


@pytest.fixture
def plan_rows(db) -> dict[str, PlanLimits]:
    """Seed 002's rows, as the migration made them (a `transactional_db` test flushes them)."""
    rows = {}
    for plan, (requests, concurrent, daily) in PLAN_DEFAULTS.items():
        rows[plan], _ = PlanLimits.objects.update_or_create(
            plan=plan,
            defaults={
                "requests_per_minute": requests,
                "concurrent_runs": concurrent,
                "runs_per_day": daily,
            },
        )
    return rows


class Clock:
    """The throttle's clock, frozen at `now` until moved."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    frozen = Clock(FROZEN_NOW)
    with mock.patch("sverm.api.throttling.clock", frozen):
        yield frozen


@pytest.fixture
def runs_not_executing(db, settings, plan_rows):
    """Runs are created but never dispatched (`db`: on_commit never fires), with the shipped
    prices and built-in templates present."""
    settings.SVERM_EXECUTOR = "thread"
    settings.LLM_PROVIDERS = {}
    _restore_default_prices()
    return settings


def limit_headers(response) -> tuple[int, int, int]:
    """(X-RateLimit-Limit, -Remaining, -Reset) of a response, as integers."""
    return (
        int(response["X-RateLimit-Limit"]),
        int(response["X-RateLimit-Remaining"]),
        int(response["X-RateLimit-Reset"]),
    )


def has_limit_headers(response) -> bool:
    return any(name.startswith("X-RateLimit-") for name in response.headers)

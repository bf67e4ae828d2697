"""Billing test helpers: billing's routes mounted as sverm/urls.py mounts them, ledger rows at
chosen moments through the real service, and the `executing` fixture of the run tests."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.models import Workspace
from billing.models import UsageRecord
from billing.services import usage_record_add, usage_run_started
from tests.runs.conftest import executing, not_executing  # noqa: F401  (runs: real, or none)

_runs = itertools.count(1)


@pytest.fixture(autouse=True)
def _billing_routes(settings):
    settings.ROOT_URLCONF = "tests.billing.urls"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def record(
    workspace: Workspace,
    cost: str | Decimal,
    *,
    at: datetime | None = None,
    swarm_type: str = "research-swarm-v1",
    model: str = "gpt-4o-mini",
    tokens: tuple[int, int] = (100, 50),
    run_id: str | None = None,
    swarm_id: str = "",
    user_id: str = "",
    api_key_id: str = "",
) -> UsageRecord:
    """One LLM call through `usage_record_add` (ledger + rollup), at `at` (default now), of a
    run of its own unless `run_id` names one."""
    return usage_record_add(
        workspace_id=workspace.pk,
        run_id=run_id or f"run_test{next(_runs)}",
        swarm_id=swarm_id,
        swarm_type=swarm_type,
        agent_id="manager",
        model=model,
        provider="openai",
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost_usd=Decimal(cost),
        created_at=at,
        user_id=user_id,
        api_key_id=api_key_id,
    )


def started(workspace: Workspace, swarm_type: str, at: datetime, count: int = 1) -> None:
    """`count` runs started at `at`, as run creation counts them in the rollup."""
    for _ in range(count):
        usage_run_started(workspace_id=workspace.pk, swarm_type=swarm_type, at=at)

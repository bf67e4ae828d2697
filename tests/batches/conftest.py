"""Batch test helpers: a swarm to batch over, clients by role, batches made through the API, and
for tests whose runs really execute (`batch_executing`) a teardown that waits for every batch to
end and every dispatch job to finish before the database is flushed."""

import contextlib
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from batches.models import Batch, BatchEvent, BatchItem
from batches.services import batch_cancel
from sverm.api.errors import ApplicationError
from swarms import jobs
from swarms.models import Run, RunStatus
from tests.conftest import jwt_client
from tests.factories import make_swarm
from tests.runs.conftest import (  # noqa: F401  (fixtures used by the batch tests)
    ACTIVE,
    DEADLINE_SECONDS,
    POLL_SECONDS,
    _restore_default_prices,
    decimal_json,
    executing,
    not_executing,
)

TEMPLATE = "research-swarm-v1"


@pytest.fixture
def catalog(db):
    """The shipped prices and built-in templates (a `transactional_db` test flushes them)."""
    _restore_default_prices()


@pytest.fixture
def swarm(catalog, workspace, user):
    return make_swarm(workspace, user, name="Scout")


@pytest.fixture
def operator(workspace, member_of) -> APIClient:
    return jwt_client(member_of(workspace, Role.OPERATOR))


@pytest.fixture
def viewer(workspace, member_of) -> APIClient:
    return jwt_client(member_of(workspace, Role.VIEWER))


def create(client: APIClient, body: dict[str, Any], **headers):
    return client.post("/api/batches", body, format="json", **headers)


def created(client: APIClient, body: dict[str, Any]) -> dict:
    response = create(client, body)
    assert response.status_code == 201, response.content
    return decimal_json(response)


def items_of(batch_id: str) -> list[BatchItem]:
    return list(BatchItem.objects.filter(batch_id=batch_id).order_by("index"))


def events_of(batch_id: str) -> list[BatchEvent]:
    return list(BatchEvent.objects.filter(batch_id=batch_id).order_by("seq"))


def results(client: APIClient, batch_id: str) -> list[dict]:
    response = client.get(f"/api/batches/{batch_id}/results")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-ndjson"
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("\n")
    return [json.loads(line, parse_float=Decimal) for line in body.splitlines()]


def wait_for(check: Callable[[], Any], what: str, timeout: float = DEADLINE_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(POLL_SECONDS)


def wait_ended(batch_id: str, timeout: float = DEADLINE_SECONDS) -> Batch:
    """The batch once it ended (its terminal event written)."""
    return wait_for(
        lambda: Batch.objects.filter(pk=batch_id, completed_at__isnull=False).first(),
        f"batch {batch_id} ending",
        timeout,
    )


def _quiet() -> bool:
    return (
        not Run.objects.filter(status__in=ACTIVE).exists()
        and not Batch.objects.filter(completed_at__isnull=True).exists()
        and jobs.pending_threads() == 0
    )


@pytest.fixture
def batch_executing(executing):  # noqa: F811
    """`executing`, and on the way out every batch cancelled if still open, then a wait for
    all of them to end and for the dispatch jobs (threads) to finish: a pass still running
    must not meet the flushed tables."""
    yield executing
    for batch in Batch.objects.filter(completed_at__isnull=True):
        with contextlib.suppress(ApplicationError):
            batch_cancel(batch=batch)
    wait_for(_quiet, "batches, runs and dispatch jobs settling")


def end_run(run_id: str, status: str = RunStatus.COMPLETED, cost: str = "0.001") -> None:
    """Write a run's end as a worker would (without its events or signal): for dispatch tests
    whose runs never execute."""
    Run.objects.filter(pk=run_id).update(
        status=status, current_cost_usd=Decimal(cost), error_code="" if status != "failed"
        else "provider_error", error_message="" if status != "failed" else "boom",
    )  # fmt: skip

"""Batches made through the service, as the API makes them (never dispatched in a `db` test):
for the batch tests and the security suite's worlds."""

from decimal import Decimal

from batches.models import Batch
from batches.services import BatchInput, BatchSource, batch_create


def make_batch(
    swarm,
    tasks: int = 5,
    *,
    total: str = "1",
    mode: str = "split",
    cap: str | None = None,
    concurrency: int | None = 2,
    user=None,
) -> Batch:
    """A batch of `tasks` inputs (`task 0`, `task 1`…; odd ones with a customId) over the
    swarm's default version."""
    source = BatchSource(
        swarm.workspace_id, swarm.default_version.definition, swarm=swarm,
        version=swarm.default_version,
    )  # fmt: skip
    return batch_create(
        source=source,
        inputs=[BatchInput(f"task {n}", f"c{n}" if n % 2 else "") for n in range(tasks)],
        budget_mode=mode,
        total_budget_usd=Decimal(total),
        per_item_budget_usd=None if cap is None else Decimal(cap),
        concurrency=concurrency,
        created_by=user,
    )

"""Spending as a run's attempt does it, without executing the run: claim it, reserve and settle
its calls through the connection's own recorder (the ledger rows and the rollup with them, the
run's cost folded from a progress event), then finish it `completed`."""

from decimal import Decimal

from django.db import connection

from swarms.engine import RunResult, Step, Usage
from swarms.models import Run
from swarms.services.lifecycle import run_claim, run_finish
from swarms.services.recorders import recorder_for

MODEL = "gpt-4o-mini"


def spend(run_id: str, *costs: str, agent: str = "manager") -> Decimal:
    """The run's LLM calls costing `costs` (exact USD), recorded as an attempt records them;
    returns the run's exact total."""
    lease = run_claim(run_id=run_id)
    assert lease is not None, f"run {run_id} was not queued"
    run = Run.objects.get(pk=run_id)
    amounts = [Decimal(cost) for cost in costs]
    total = sum(amounts, Decimal(0))

    def steps(status: str) -> list[Step]:
        return [
            Step(f"call-{index}", agent, MODEL, status, Decimal("0.5"),
                 Usage(agent, MODEL, "simulated", 100 + index, 50, amount)
                 if status == "settled" else None, f"text {index}" if status == "settled" else "")
            for index, amount in enumerate(amounts)
        ]  # fmt: skip

    recorder = recorder_for(connection)
    recorder.record(run=run, lease=lease, steps=steps("reserved"), events=[])
    progress = {"progress": 0.9, "agents_active": 0, "cost_usd": str(total)}
    recorder.record(
        run=run, lease=lease, steps=steps("settled"), events=[("run.progress", "", progress)]
    )
    result = RunResult("completed", "Done.", None, None, (), total)
    assert run_finish(
        run_id=run_id, result=result, lease=lease,
        terminal=("run.completed", {"cost_usd": str(total)}),
    )  # fmt: skip
    return total

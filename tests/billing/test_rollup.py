"""The monthly rollup moves with the ledger: exactly, under concurrent writers (PostgreSQL),
and after runs really executed, where `/v1/usage` and `/api/usage` agree with the ledger."""

import threading
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.roles import Role
from billing.models import MonthlyUsage, UsageRecord
from billing.periods import month_of
from billing.services import usage_record_add, usage_records_add, usage_run_started
from sverm.money import money
from swarms.models import TERMINAL_STATUSES, Run
from tests.billing.conftest import record
from tests.runs.conftest import INLINE_YAML, decimal_json

THREADS = 8
CALLS_PER_THREAD = 25
DEADLINE_SECONDS = 30.0


@pytest.mark.django_db
def test_a_call_lands_in_the_ledger_and_its_months_rollup_together(workspace):
    at = timezone.now()
    first = record(workspace, "0.0000012345", tokens=(7, 3), at=at)
    record(workspace, "1.5", tokens=(100, 200), at=at)
    row = MonthlyUsage.objects.get(
        workspace=workspace, month=month_of(at), swarm_type="research-swarm-v1"
    )
    assert (row.tokens_in, row.tokens_out, row.runs) == (107, 203, 0)
    assert row.cost_usd == Decimal("1.5000012345")
    assert first.created_at == at


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_lose_no_update(workspace):
    """Threads, each with its own database connection, add calls and start runs for the same
    workspace, month and type at once, starting before the rollup row exists (so they also race
    to create it). The rollup must equal the ledger, and what was written, to the last digit."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL's row locking.")
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    at = timezone.now()

    def cost(thread: int, call: int) -> Decimal:
        return Decimal("0.0000012345") * (thread * CALLS_PER_THREAD + call + 1)

    def writer(thread: int) -> None:
        try:
            barrier.wait(timeout=10)
            for call in range(CALLS_PER_THREAD):
                usage_record_add(
                    workspace_id=workspace.pk, run_id=f"run_t{thread}", swarm_id="",
                    swarm_type="custom", agent_id=f"agent-{call}", model="gpt-4o-mini",
                    provider="openai", tokens_in=thread + call + 1, tokens_out=2 * call + 1,
                    cost_usd=cost(thread, call), created_at=at,
                )  # fmt: skip
                usage_run_started(workspace_id=workspace.pk, swarm_type="custom", at=at)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "writers did not finish"
    assert errors == []

    pairs = [(t, c) for t in range(THREADS) for c in range(CALLS_PER_THREAD)]
    written = {
        "tokens_in": sum(t + c + 1 for t, c in pairs),
        "tokens_out": sum(2 * c + 1 for _t, c in pairs),
        "cost_usd": sum((cost(t, c) for t, c in pairs), Decimal(0)),
    }
    ledger = UsageRecord.objects.filter(workspace=workspace).aggregate(
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost_usd=Sum("cost_usd")
    )
    assert ledger == written
    rows = list(MonthlyUsage.objects.filter(workspace=workspace))
    assert [(row.month, row.swarm_type) for row in rows] == [(month_of(at), "custom")]
    (row,) = rows
    assert row.runs == THREADS * CALLS_PER_THREAD
    assert {name: getattr(row, name) for name in written} == written


# ---------------------------------------------------------------------------------------------
# After real runs
# ---------------------------------------------------------------------------------------------
def wait_all_terminal(run_ids: list[str]) -> list[Run]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        runs = list(Run.objects.filter(pk__in=run_ids))
        if all(run.status in TERMINAL_STATUSES for run in runs):
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"runs not finished: {[(r.pk, r.status) for r in runs]}")
        time.sleep(0.02)


def ledger_sums(**filters) -> dict:
    return UsageRecord.objects.filter(**filters).aggregate(
        cost=Sum("cost_usd"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out")
    )


@pytest.mark.usefixtures("executing")
def test_usage_equals_the_ledger_after_runs_really_executed(
    key_client, workspace, other_workspace, api_client
):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    elsewhere, _, _ = key_client(other_workspace, Role.OPERATOR)
    posts = [
        (client, "research-swarm-v1"),
        (client, "research-swarm-v1"),
        (client, INLINE_YAML),
        (elsewhere, "writing-swarm-v1"),
    ]
    run_ids = []
    for caller, template in posts:
        response = caller.post(
            "/v1/swarms", {"template": template, "task": "Compare heat pumps"}, format="json"
        )
        assert response.status_code == 201, response.content
        run_ids.append(response.json()["swarm_id"])
        wait_all_terminal(run_ids)  # one at a time: plans cap concurrent runs
    runs = wait_all_terminal(run_ids)
    assert {run.status for run in runs} == {"completed"}

    body = decimal_json(client.get("/v1/usage"))
    month = body["current_month"]
    mine = ledger_sums(workspace=workspace)
    assert mine["cost"] > 0
    # The sum of the runs' shown costs: at most a micro-dollar a run under the exact total.
    assert money(mine["cost"]) - Decimal("0.000003") <= month["total_usd"] <= mine["cost"]
    assert month["total_usd"].quantize(Decimal("0.01")) == mine["cost"].quantize(Decimal("0.01"))
    assert month["total_tokens"] == mine["tokens_in"] + mine["tokens_out"]
    assert month["total_swarms"] == 3
    assert {kind: figures["count"] for kind, figures in month["by_swarm_type"].items()} == {
        "research-swarm-v1": 2, "custom": 1
    }  # fmt: skip
    for kind, figures in month["by_swarm_type"].items():
        shown = [money(run.current_cost_usd) for run in runs if run.swarm_type == kind]
        assert figures["total_usd"] == sum(shown), kind
    assert sum(f["total_usd"] for f in month["by_swarm_type"].values()) == month["total_usd"]

    dashboard = decimal_json(
        api_client.get("/api/usage", {"workspace_id": workspace.pk, "group_by": "template"})
    )
    assert dashboard["totals"]["costUsd"] == month["total_usd"]
    assert dashboard["totals"]["runs"] == 3
    assert dashboard["totals"]["tokensIn"] == mine["tokens_in"]
    assert {row["key"]: row["runs"] for row in dashboard["data"]} == {
        "research-swarm-v1": 2, "custom": 1
    }  # fmt: skip

    theirs = decimal_json(elsewhere.get("/v1/usage"))["current_month"]
    assert theirs["total_usd"] == money(ledger_sums(workspace=other_workspace)["cost"])  # 1 run
    assert set(theirs["by_swarm_type"]) == {"writing-swarm-v1"}


@pytest.mark.usefixtures("executing")
def test_the_rebuild_finds_no_drift_after_runs_really_executed(key_client, workspace, capsys):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    run_ids = []
    for template in ("research-swarm-v1", INLINE_YAML):
        response = client.post(
            "/v1/swarms", {"template": template, "task": "Summarise the news"}, format="json"
        )
        assert response.status_code == 201, response.content
        run_ids.append(response.json()["swarm_id"])
        wait_all_terminal(run_ids)
    assert UsageRecord.objects.filter(run_id__in=run_ids).count() > 2
    call_command("usage_rebuild")
    assert capsys.readouterr().out.strip() == "no drift"


@pytest.mark.django_db
def test_many_ledger_rows_at_once_add_up_in_their_rollups(workspace):
    def row(swarm_type, cost, tokens):
        return UsageRecord(
            workspace_id=workspace.pk, run_id="run_x", swarm_id="", swarm_type=swarm_type,
            agent_id="a", model="gpt-4o-mini", provider="simulated", tokens_in=tokens,
            tokens_out=2 * tokens, cost_usd=Decimal(cost),
        )  # fmt: skip

    created = usage_records_add(
        [row("research", "0.001", 10), row("research", "0.0025", 5), row("custom", "0.5", 1)]
    )
    assert len(created) == UsageRecord.objects.filter(run_id="run_x").count() == 3
    rollups = {m.swarm_type: m for m in MonthlyUsage.objects.filter(workspace=workspace)}
    assert rollups["research"].cost_usd == Decimal("0.0035")
    assert (rollups["research"].tokens_in, rollups["research"].tokens_out) == (15, 30)
    assert rollups["custom"].cost_usd == Decimal("0.5")
    assert usage_records_add([]) == []

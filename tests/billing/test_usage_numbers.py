"""Numbers that add up (issue 20): seed 002's `GET /usage` reports, per swarm type, `count` and
`total_usd`, and the month's `total_usd`. Every amount is rounded down to 6 decimals as shown,
and totals of runs are sums of the runs' shown costs: a type's `total_usd` is the sum of its
runs' `current_cost_usd`, the month's the sum of its types', on every surface (`/v1/usage`,
`/api/usage`, the admin report), even where rounding the exact sums would disagree."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.roles import Role
from billing.models import MonthlyUsage
from billing.periods import current_month, month_after
from sverm.money import money
from tests.billing.conftest import record, utc
from tests.billing.spending import spend
from tests.conftest import PASSWORD
from tests.runs.conftest import INLINE_YAML, decimal_json

pytestmark = pytest.mark.usefixtures("not_executing")

TASK = "Map the Norwegian hydrogen economy"
# Per run: its calls' exact costs. Each has a part below a micro-dollar, so the runs shown one
# by one (rounded down) add up to less than their exact sum rounded down.
RESEARCH = [("0.0000019", "0.0034567891"), ("0.0000008",), ("0.1234567899",)]
CUSTOM = [("0.0000009",), ("0.0045678912", "0.0000004")]


def total_of(costs) -> Decimal:
    return sum((Decimal(cost) for cost in costs), Decimal(0))


@pytest.fixture
def operator(key_client, workspace):
    client, _, _ = key_client(workspace, Role.OPERATOR)
    return client


@pytest.fixture
def month_of_runs(operator):
    """Five runs started through `POST /v1/swarms` (three of a template, two inline), each
    spending its calls through the real recorder; returns their ids by swarm type."""
    runs: dict[str, list[str]] = {"research-swarm-v1": [], "custom": []}
    for template, kind, spending in (("research-swarm-v1", "research-swarm-v1", RESEARCH),
                                     (INLINE_YAML, "custom", CUSTOM)):  # fmt: skip
        for costs in spending:
            response = operator.post("/v1/swarms", {"template": template, "task": TASK},
                                     format="json")  # fmt: skip
            assert response.status_code == 201, response.content
            run_id = response.json()["swarm_id"]
            spend(run_id, *costs)
            runs[kind].append(run_id)
    return runs


def shown_cost(client, run_id: str) -> Decimal:
    """A run's cost as the run API shows it: its status's and its result's, which agree."""
    status = decimal_json(client.get(f"/v1/swarms/{run_id}"))
    result = decimal_json(client.get(f"/v1/swarms/{run_id}/result"))
    assert status["status"] == "completed"
    assert status["current_cost_usd"] == result["cost_report"]["total_usd"]
    return status["current_cost_usd"]


def test_each_types_total_is_the_sum_of_its_runs_shown_costs(operator, month_of_runs):
    month = decimal_json(operator.get("/v1/usage"))["current_month"]
    assert set(month["by_swarm_type"]) == {"research-swarm-v1", "custom"}
    for kind, run_ids in month_of_runs.items():
        shown = [shown_cost(operator, run_id) for run_id in run_ids]
        figures = month["by_swarm_type"][kind]
        assert figures["count"] == len(run_ids)
        assert figures["total_usd"] == sum(shown), kind
    assert month["total_usd"] == sum(f["total_usd"] for f in month["by_swarm_type"].values())
    assert month["total_swarms"] == 5


def test_separate_rounding_would_have_disagreed(operator, month_of_runs):
    """The runs above are chosen so that the old rule (the rollup's exact sum rounded down,
    its shares by largest remainder) differs from the sum of the runs by micro-dollars."""
    month = decimal_json(operator.get("/v1/usage"))["current_month"]
    research = month["by_swarm_type"]["research-swarm-v1"]["total_usd"]
    custom = month["by_swarm_type"]["custom"]["total_usd"]
    # 0.003458 + 0 + 0.123456, where the exact 0.126916279 would show 0.126916
    assert research == sum(money(total_of(costs)) for costs in RESEARCH) == Decimal("0.126914")
    assert money(sum(total_of(costs) for costs in RESEARCH)) == Decimal("0.126916")
    assert custom == Decimal("0.004568")
    exact_month = sum(total_of(costs) for costs in RESEARCH + CUSTOM)
    assert month["total_usd"] == Decimal("0.131482")
    assert money(exact_month) == Decimal("0.131485")


def test_the_report_by_template_and_the_admin_agree_with_v1(
    operator, api_client, workspace, month_of_runs
):
    month = decimal_json(operator.get("/v1/usage"))["current_month"]
    start, end = current_month(), month_after(current_month())
    report = decimal_json(api_client.get("/api/usage", {
        "workspace_id": workspace.pk, "group_by": "template", "from": start.isoformat(),
        "to": end.isoformat(),
    }))  # fmt: skip
    assert {row["key"]: (row["runs"], row["costUsd"]) for row in report["data"]} == {
        kind: (figures["count"], figures["total_usd"])
        for kind, figures in month["by_swarm_type"].items()
    }
    assert report["totals"]["costUsd"] == month["total_usd"]
    staff = Client()
    staff.force_login(User.objects.create_superuser(email="ops@example.com", password=PASSWORD))
    page = staff.get(reverse("admin:billing_monthlyusage_report"), {"workspace": workspace.pk})
    assert page.context["usage"].total_usd == month["total_usd"]
    assert page.context["ledger_total"] == month["total_usd"]  # the daily chart's sum too


def test_a_run_across_months_counts_its_part_in_each(api_client, workspace):
    """A run's calls either side of midnight UTC on the 1st: each month counts its part, as
    shown, and its types still add up to its total."""
    record(workspace, "0.0000016", at=utc(2026, 1, 31, 23, 59, 59), run_id="run_across")
    record(workspace, "0.0000016", at=utc(2026, 2, 1, 0, 0, 1), run_id="run_across")
    record(workspace, "0.0000016", at=utc(2026, 2, 3), run_id="run_feb", swarm_type="custom")
    january = decimal_json(api_client.get("/v1/usage", {"month": "2026-01"}))["current_month"]
    february = decimal_json(api_client.get("/v1/usage", {"month": "2026-02"}))["current_month"]
    assert january["total_usd"] == Decimal("0.000001")
    assert february["by_swarm_type"] == {
        "research-swarm-v1": {"count": 0, "total_usd": Decimal("0.000001")},
        "custom": {"count": 0, "total_usd": Decimal("0.000001")},
    }
    assert february["total_usd"] == Decimal("0.000002")


def test_the_rebuild_keeps_and_repairs_the_shown_costs(capsys, workspace, month_of_runs):
    call_command("usage_rebuild")
    assert capsys.readouterr().out.strip() == "no drift"
    row = MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom")
    MonthlyUsage.objects.filter(pk=row.pk).update(shown_cost_usd=Decimal("9"))
    call_command("usage_rebuild")
    month = f"{current_month():%Y-%m}"
    assert capsys.readouterr().out.strip().splitlines() == [
        f"{workspace.pk} {month} custom: shown_cost_usd 9 -> 0.004568", "1 drifted row fixed."
    ]  # fmt: skip
    row.refresh_from_db()
    assert row.shown_cost_usd == Decimal("0.004568")


def test_the_migration_fills_the_shown_costs_of_existing_rows(workspace, month_of_runs):
    before = dict(MonthlyUsage.objects.values_list("swarm_type", "shown_cost_usd"))
    assert before == {"research-swarm-v1": Decimal("0.126914"), "custom": Decimal("0.004568")}
    MonthlyUsage.objects.update(shown_cost_usd=Decimal(0))  # as the column is added
    migration = importlib.import_module("billing.migrations.0003_usage_by_who_and_shown_cost")
    migration.shown_costs_fill(apps, None)
    assert dict(MonthlyUsage.objects.values_list("swarm_type", "shown_cost_usd")) == before

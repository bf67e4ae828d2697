"""During a rolling deploy a worker still on the previous version writes the ledger and the
rollup without the columns this version added (who started the run, the shown cost): its rows
must go in, with the columns empty, rather than fail the run on a NOT NULL constraint. Written
as that worker's SQL would be: only the columns it knew."""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import MonthlyUsage, UsageRecord

pytestmark = pytest.mark.django_db


def test_a_ledger_row_without_who_goes_in_empty(workspace):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_usagerecord (workspace_id, run_id, swarm_id, swarm_type, "
            "agent_id, model, provider, tokens_in, tokens_out, cost_usd, created_at) "
            "VALUES (%s, 'run_old', '', 'custom', 'manager', 'gpt-4o-mini', 'openai', 10, 5, "
            "%s, %s)",
            [workspace.pk, Decimal("0.0000125"), timezone.now()],
        )
    row = UsageRecord.objects.get(run_id="run_old")
    assert (row.user_id, row.api_key_id, row.cost_usd) == ("", "", Decimal("0.0000125"))


def test_a_rollup_row_without_the_shown_cost_goes_in_at_zero(workspace):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_monthlyusage (workspace_id, month, swarm_type, runs, tokens_in, "
            "tokens_out, cost_usd) VALUES (%s, %s, 'custom', 1, 10, 5, %s)",
            [workspace.pk, timezone.now().date().replace(day=1), Decimal("0.0000125")],
        )
    row = MonthlyUsage.objects.get(workspace=workspace, swarm_type="custom")
    assert row.shown_cost_usd == 0 and row.cost_usd == Decimal("0.0000125")

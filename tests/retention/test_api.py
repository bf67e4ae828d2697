"""What a pruned run and a purged swarm look like to API clients and in the admin: the run row
answers as before, the result has no output or agent log but the full cost report (from the
ledger), the events list holds only the terminal event."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from swarms.models import Swarm
from swarms.services.retention import runs_prune_expired, swarms_purge_trash
from tests.conftest import assert_v1_error
from tests.factories import make_swarm
from tests.retention.conftest import NOW, delivery, finished_run
from tests.runs.conftest import decimal_json

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def test_status_result_and_events_of_a_pruned_run(api_client, workspace):
    run = finished_run(workspace, ago=31 * DAY, cost="0.0123")
    delivery(run)
    status_before = api_client.get(f"/v1/swarms/{run.pk}").json()
    api_before = api_client.get(f"/api/runs/{run.pk}").json()
    result_before = decimal_json(api_client.get(f"/v1/swarms/{run.pk}/result"))
    assert result_before["output"] != ""

    assert runs_prune_expired(now=NOW).runs == 1

    # The run itself answers as it did.
    assert api_client.get(f"/v1/swarms/{run.pk}").json() == status_before
    api_after = api_client.get(f"/api/runs/{run.pk}").json()
    assert api_after == {**api_before, "output": ""}
    assert api_before["output"] != ""
    listed = api_client.get("/v1/swarms").json()
    assert [item["swarm_id"] for item in listed["items"]] == [run.pk]

    # The result: same status, cost report and timing; no output, no agent log.
    response = api_client.get(f"/v1/swarms/{run.pk}/result")
    assert response.status_code == 200
    result = decimal_json(response)
    assert result["output"] == ""
    assert result["agent_logs"] == []
    assert result_before["agent_logs"] != []
    for key in ("swarm_id", "status", "cost_report", "elapsed_seconds", "error", "completed_at"):
        assert result[key] == result_before[key], key
    assert result["cost_report"]["total_usd"] == Decimal("0.0123")

    api_result = api_client.get(f"/api/runs/{run.pk}/result").json()
    assert (api_result["output"], api_result["agentLogs"]) == ("", [])
    assert api_result["costReport"]["agents"][0]["agentId"] == "manager"

    # Events: only the terminal one, at its own seq; the webhook log is gone.
    events = api_client.get(f"/api/runs/{run.pk}/events").json()
    assert [(e["seq"], e["type"]) for e in events["data"]] == [(5, "run.completed")]
    assert events["data"][0]["data"]["output"] == ""
    assert events["pageInfo"]["total"] == 1
    assert api_client.get(f"/api/runs/{run.pk}/events?after=5").json()["data"] == []
    deliveries = api_client.get(f"/api/runs/{run.pk}/webhook-deliveries").json()
    assert deliveries["data"] == []


def test_a_run_of_a_purged_swarm_is_404(api_client, workspace, user):
    swarm = make_swarm(workspace, user, name="Gone")
    run = finished_run(workspace, swarm=swarm, ago=DAY)
    assert api_client.delete(f"/api/swarms/{swarm.pk}").status_code in (200, 204)
    Swarm.objects.filter(pk=swarm.pk).update(deleted_at=NOW - 31 * DAY)
    assert swarms_purge_trash(now=NOW).swarms == 1
    assert_v1_error(api_client.get(f"/v1/swarms/{run.pk}/result"), 404, "not_found")
    assert api_client.get(f"/api/swarms/{swarm.pk}").status_code == 404
    # The usage it cost is still reported.
    usage = decimal_json(api_client.get(f"/v1/usage?month={NOW:%Y-%m}"))
    assert usage["current_month"]["total_usd"] == Decimal("0.0123")
    assert usage["current_month"]["by_swarm_type"]["custom"]["total_usd"] == Decimal("0.0123")


def test_the_admin_shows_pruned_runs_and_the_trash_after_a_purge(staff, workspace, user):
    run = finished_run(workspace, ago=31 * DAY)
    swarm = make_swarm(workspace, user, name="Trashed")
    Swarm.objects.filter(pk=swarm.pk).update(deleted_at=NOW - 31 * DAY)
    kept = make_swarm(workspace, user, name="Recently trashed")
    Swarm.objects.filter(pk=kept.pk).update(deleted_at=NOW - DAY)
    runs_prune_expired(now=NOW)
    swarms_purge_trash(now=NOW)

    page = staff.get(reverse("admin:swarms_run_change", args=[quote(run.pk)]))
    assert page.status_code == 200
    assert "run.completed" in page.content.decode()
    trash = staff.get(reverse("admin:swarms_swarm_changelist"), {"state": "deleted"})
    assert trash.status_code == 200
    assert [s.pk for s in trash.context["cl"].result_list] == [kept.pk]

"""The run page as an operator reads and steers it over HTTP: the fields laid out for reading
(definition as YAML, times to the second, money to 6 decimals), its links, cost report, agents,
the timeline paged, webhook deliveries, and the Cancel and Retry buttons (POST with CSRF,
refused sensibly, audited), for staff who may steer runs only."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from billing.models import UsageRecord
from swarms.models import Run, RunStatus, WebhookDelivery
from tests.admin.conftest import messages_of, run_url
from tests.factories import add_events, create_run, make_run, make_swarm

pytestmark = pytest.mark.usefixtures("not_executing")

DEFINITION = {
    "version": 1,
    "topology": "hierarchical",
    "instructions": "Be brief.",
    "agents": [
        {"id": "lead", "role": "manager", "model": "gpt-4o-mini", "max_tokens": 256},
        {"id": "digger", "role": "worker", "model": "deepseek-chat", "replicas": 2},
    ],
}
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def cancel_url(run) -> str:
    return reverse("admin:swarms_run_cancel", args=[quote(run.pk)])


def retry_url(run) -> str:
    return reverse("admin:swarms_run_retry", args=[quote(run.pk)])


def charge(run, agent_id: str, model: str, cost: str, tokens_in=100, tokens_out=50) -> None:
    UsageRecord.objects.create(
        workspace_id=run.workspace_id, run_id=run.pk, swarm_id=run.swarm_id or "",
        swarm_type=run.swarm_type, agent_id=agent_id, model=model, provider="openai",
        tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=Decimal(cost),
    )  # fmt: skip


@pytest.fixture
def finished(workspace, user):
    """A completed run of a swarm, with ledger rows and a webhook delivery."""
    swarm = make_swarm(workspace, user, name="Hydrogen desk")
    now = timezone.now()
    run = make_run(
        workspace, status=RunStatus.COMPLETED, swarm=swarm, version=swarm.default_version,
        definition=DEFINITION, task="Map Norway's electrolysers", created_by=user,
        current_cost_usd=Decimal("0.0047134"), max_budget_usd=Decimal("0.5"),
        started_at=now - timedelta(seconds=75), completed_at=now, output="Norway: 2 GW by 2030.",
        webhook_url="https://hooks.example.com/sverm",
    )  # fmt: skip
    charge(run, "lead", "gpt-4o-mini", "0.0012")
    charge(run, "lead", "gpt-4o-mini", "0.0010134")
    charge(run, "digger-1", "deepseek-chat", "0.0025", tokens_in=400, tokens_out=80)
    add_events(run, ["agent.started", "agent.message", "agent.completed"])
    WebhookDelivery.objects.create(
        run=run, workspace=workspace, message_id="msg_1", attempt=1, url=run.webhook_url,
        event_type="run.completed", status_code=502, success=False, latency_ms=130,
        error="Bad gateway from the receiver",
    )  # fmt: skip
    return run


def test_the_run_page_reads_well(staff, finished, workspace):
    response = staff.get(run_url(finished.pk))
    assert response.status_code == 200
    html = response.content.decode()
    # The definition as YAML, in a monospace block, not one line of JSON.
    yaml_block = re.search(r'<pre class="run-yaml">(.*?)</pre>', html, re.S).group(1)
    assert "topology: hierarchical\n" in yaml_block
    assert "- id: lead\n" in yaml_block and '{"' not in yaml_block
    # Money to 6 decimals (the exact amount on hover), times to the second.
    assert 'title="exactly $0.0047134">$0.004713<' in html
    assert "0.0047134000" not in html
    assert len(re.findall(TIME, html)) >= 4
    assert re.search(r"<div class=\"readonly\">1m 15s</div>", html)
    # Links: its swarm and version, workspace, live page, usage report, events and deliveries.
    swarm_url = reverse("admin:swarms_swarm_change", args=[quote(finished.swarm_id)])
    assert f'href="{swarm_url}"' in html and "version 1" in html
    assert reverse("admin:accounts_workspace_change", args=[quote(workspace.pk)]) in html
    assert f'href="{reverse("run-live", args=[finished.pk])}"' in html
    report = f"{reverse('admin:billing_monthlyusage_report')}?workspace={workspace.pk}&amp;month="
    assert report in html
    assert f"?run__id__exact={finished.pk}" in html
    assert "Norway: 2 GW by 2030." in html


def test_the_cost_report_and_agents_come_from_the_ledger(staff, finished):
    response = staff.get(run_url(finished.pk))
    rows = {
        (row["agent"].agent_id, row["agent"].model): row for row in response.context["cost_rows"]
    }
    assert rows[("lead", "gpt-4o-mini")]["calls"] == 2
    assert rows[("lead", "gpt-4o-mini")]["agent"].cost_usd == Decimal("0.002213")
    assert rows[("digger-1", "deepseek-chat")]["agent"].tokens_in == 400
    assert response.context["total_calls"] == 3
    assert response.context["cost_total"] == "$0.004713"
    html = response.content.decode()
    cost_report = html[html.index('id="cost-report"') : html.index('id="agents"')]
    assert "$0.002213" in cost_report and "$0.004713" in cost_report and ">2<" in cost_report
    agents = {agent["id"]: agent for agent in response.context["run_agents"]}
    assert list(agents) == ["lead", "digger-1", "digger-2"]  # replicas expanded
    assert agents["lead"]["cost"] == "$0.002213"
    assert agents["digger-2"]["cost"] == "—"
    # add_events named agents agent-0..2; the definition's agents have no events: waiting.
    assert {agent["state"] for agent in agents.values()} == {"waiting"}


def test_the_timeline_is_paged_by_50(staff, workspace):
    run = make_run(workspace, status=RunStatus.COMPLETED)
    add_events(run, ["agent.message"] * 120)
    first = staff.get(run_url(run.pk))
    assert [row["event"].seq for row in first.context["event_rows"]] == list(range(1, 51))
    assert "events 1\u201350 of 120" in first.content.decode()
    last = staff.get(run_url(run.pk), {"events_page": 3})
    assert [row["event"].seq for row in last.context["event_rows"]] == list(range(101, 121))
    assert "?events_page=2#timeline" in last.content.decode()
    # The whole timeline in the events list, 50 a page, of this run only.
    other = make_run(workspace, status=RunStatus.COMPLETED)
    add_events(other, ["agent.message"] * 3)
    listing = staff.get(reverse("admin:swarms_runevent_changelist"), {"run__id__exact": run.pk})
    assert listing.status_code == 200
    assert [e.seq for e in listing.context["cl"].result_list] == list(range(1, 51))
    assert {e.run_id for e in listing.context["cl"].result_list} == {run.pk}


def test_webhook_deliveries_are_shown_and_named_in_plural(staff, finished):
    html = staff.get(run_url(finished.pk)).content.decode()
    section = html[html.index('id="webhook-deliveries"') :]
    assert "run.completed" in section and ">502<" in section and "Bad gateway" in section
    index = staff.get(reverse("admin:index")).content.decode()
    assert "Webhook deliveries" in index and "deliverys" not in index


# ---------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------
def test_cancel_cancels_a_queued_run_and_is_audited(staff, operator, workspace):
    run = create_run(workspace)
    page = staff.get(run_url(run.pk)).content.decode()
    assert f'action="{cancel_url(run)}"' in page and 'id="run-retry"' not in page
    response = staff.post(cancel_url(run), follow=True)
    assert response.redirect_chain[-1][0] == run_url(run.pk)
    assert messages_of(response) == [("success", f"Cancelled run {run.pk}.")]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    event = AuditEvent.objects.get(action="run.cancel", target_id=run.pk)
    assert (event.actor_type, event.actor_id) == ("admin", operator.pk)
    # The finished run offers no Cancel any more, and Retry instead.
    page = staff.get(run_url(run.pk)).content.decode()
    assert 'id="run-cancel"' not in page and 'id="run-retry"' in page


def test_cancel_asks_a_running_run_to_stop(staff, workspace):
    run = make_run(workspace, status=RunStatus.RUNNING, heartbeat_ago=1)
    response = staff.post(cancel_url(run), follow=True)
    ((level, text),) = messages_of(response)
    assert level == "success" and text.startswith(f"Asked run {run.pk} to stop")
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.cancel_requested_at is not None


@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.FAILED])
def test_cancel_of_a_finished_run_is_refused_and_changes_nothing(staff, workspace, status):
    run = make_run(workspace, status=status)
    response = staff.post(cancel_url(run), follow=True)
    assert messages_of(response) == [
        ("error", f"Run {run.pk} already {status}; there is nothing to cancel.")
    ]
    run.refresh_from_db()
    assert (run.status, run.cancel_requested_at) == (status, None)
    assert not AuditEvent.objects.filter(action="run.cancel").exists()


def test_cancel_of_a_cancelled_run_says_so(staff, workspace):
    run = make_run(workspace, status=RunStatus.CANCELLED)
    response = staff.post(cancel_url(run), follow=True)
    assert messages_of(response) == [
        ("warning", f"Run {run.pk} is already cancelled; nothing changed.")
    ]


def test_cancel_needs_a_post_with_the_pages_csrf_token(operator, workspace):
    run = create_run(workspace)
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.get(cancel_url(run)).status_code == 405
    assert client.post(cancel_url(run)).status_code == 403  # no token
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    page = client.get(run_url(run.pk)).content.decode()
    token = re.search(
        rf'action="{re.escape(cancel_url(run))}".*?name="csrfmiddlewaretoken" value="([^"]+)"',
        page,
        re.S,
    ).group(1)
    assert client.post(cancel_url(run), {"csrfmiddlewaretoken": token}).status_code == 302
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_cancel_from_the_live_page_returns_there(staff, workspace):
    run = create_run(workspace)
    live = reverse("run-live", args=[run.pk])
    page = staff.get(live).content.decode()
    assert f'action="{cancel_url(run)}"' in page
    assert f'name="next" value="{live}"' in page
    response = staff.post(cancel_url(run), {"next": live})
    assert response.status_code == 302 and response["Location"] == live
    # Another site is never a destination.
    other = create_run(workspace)
    response = staff.post(cancel_url(other), {"next": "https://evil.example/"})
    assert response["Location"] == run_url(other.pk)


# ---------------------------------------------------------------------------------------------
# Retry
# ---------------------------------------------------------------------------------------------
def test_retry_starts_the_failed_run_again_as_a_linked_new_run(staff, operator, workspace, user):
    swarm = make_swarm(workspace, user, models=["gpt-4o-mini"])
    failed = create_run(workspace, swarm=swarm, created_by=user, task="Try again",
                        budget=Decimal("0.75"), status=RunStatus.FAILED)  # fmt: skip
    response = staff.post(retry_url(failed), follow=True)
    retry = Run.objects.get(retry_of=failed)
    assert response.redirect_chain[-1][0] == run_url(retry.pk)
    ((level, text),) = messages_of(response)
    assert level == "success" and f"as run {retry.pk}" in text and failed.pk in text
    assert (retry.status, retry.task, retry.max_budget_usd) == ("queued", "Try again",
                                                                Decimal("0.75"))  # fmt: skip
    assert (retry.swarm_id, retry.version_id) == (swarm.pk, failed.version_id)
    assert retry.definition == failed.definition and retry.created_by_id == operator.pk
    assert AuditEvent.objects.get(action="run.retry", target_id=failed.pk).after == {
        "retry_run_id": retry.pk
    }
    assert AuditEvent.objects.filter(action="run.create", target_id=retry.pk).exists()
    # The two pages link each other.
    assert run_url(failed.pk) in response.content.decode()
    assert run_url(retry.pk) in staff.get(run_url(failed.pk)).content.decode()


@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.QUEUED, RunStatus.RUNNING])
def test_retry_of_a_run_that_did_not_fail_is_refused(staff, workspace, status):
    run = make_run(workspace, status=status)
    response = staff.post(retry_url(run), follow=True)
    ((level, text),) = messages_of(response)
    assert level == "error" and "only failed or cancelled runs are retried" in text
    assert response.redirect_chain[-1][0] == run_url(run.pk)
    assert Run.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Who may
# ---------------------------------------------------------------------------------------------
def test_staff_who_may_only_view_runs_see_no_buttons_and_are_refused(viewer_staff, workspace):
    run = create_run(workspace)
    page = viewer_staff.get(run_url(run.pk))
    assert page.status_code == 200
    assert 'id="run-cancel"' not in page.content.decode()
    assert viewer_staff.post(cancel_url(run)).status_code == 403
    run.status = RunStatus.FAILED
    run.save(update_fields=["status"])
    assert viewer_staff.post(retry_url(run)).status_code == 403
    assert Run.objects.count() == 1
    assert Run.objects.get(pk=run.pk).cancel_requested_at is None


def test_non_staff_are_sent_to_the_login_and_nothing_changes(user, workspace):
    run = create_run(workspace)
    member = Client()
    member.force_login(user)  # the workspace's admin, but not staff
    for url in (cancel_url(run), retry_url(run), run_url(run.pk)):
        response = member.post(url) if url != run_url(run.pk) else member.get(url)
        assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_an_unknown_run_is_404(staff):
    missing = "run_01hzzzzzzzzzzzzzzzzzzzzzzz"
    assert staff.post(reverse("admin:swarms_run_cancel", args=[missing])).status_code == 404
    assert staff.post(reverse("admin:swarms_run_retry", args=[missing])).status_code == 404

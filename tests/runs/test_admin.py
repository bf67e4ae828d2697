"""The run admin as staff use it: the changelist with its status filter and id search, the
read-only change page with its timeline, and the cancel action."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.messages import constants as levels
from django.test import Client
from django.urls import reverse

from swarms.models import Approval, Run, RunStatus
from tests.factories import add_events, create_run, make_run
from tests.runs.conftest import event_types

pytestmark = pytest.mark.usefixtures("not_executing")

CHANGELIST = "admin:swarms_run_changelist"


@pytest.fixture
def runs(workspace, other_workspace):
    queued = create_run(workspace, task="Queued one")
    done = create_run(workspace, task="Finished one", status=RunStatus.COMPLETED)
    failed = create_run(other_workspace, task="Failed elsewhere", status=RunStatus.FAILED)
    return queued, done, failed


def listed(client, **params) -> set[str]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200, response.content[:500]
    pks = {obj.pk for obj in response.context["cl"].result_list}
    html = response.content.decode()
    for pk in pks:
        assert reverse("admin:swarms_run_change", args=[quote(pk)]) in html
    return pks


def run_action(client, action, *runs):
    response = client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [run.pk for run in runs]},
        follow=True,
    )
    assert response.status_code == 200, response.content[:500]
    return [(m.level, m.message) for m in response.context["messages"]]


def test_the_changelist_lists_every_workspaces_runs(staff, runs):
    assert listed(staff) == {run.pk for run in runs}


@pytest.mark.parametrize(("status", "index"), [("queued", 0), ("completed", 1), ("failed", 2)])
def test_the_changelist_filters_by_status(staff, runs, status, index):
    assert listed(staff, status__exact=status) == {runs[index].pk}
    assert listed(staff, status__exact="cancelled") == set()


def test_the_changelist_finds_a_run_by_id_and_by_task(staff, runs):
    queued, done, _ = runs
    assert listed(staff, q=done.pk) == {done.pk}
    assert listed(staff, q="Queued one") == {queued.pk}
    assert listed(staff, q="nothing like it") == set()


def test_the_change_page_is_read_only_with_the_timeline_paged(staff, runs):
    queued, _, _ = runs
    add_events(queued, ["agent.message"] * 3)
    response = staff.get(reverse("admin:swarms_run_change", args=[quote(queued.pk)]))
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in html
    assert "Queued one" in html
    approvals, steps = response.context["inline_admin_formsets"]
    assert approvals.formset.model.__name__ == "Approval"  # none for this run
    assert steps.formset.model.__name__ == "RunStep"  # call checkpoints, none for a queued run
    # The timeline is a page of events (tests/admin/test_run_page.py pages through more).
    shown = [row["event"] for row in response.context["event_rows"]]
    assert [(event.seq, event.agent_id) for event in shown] == [
        (1, "agent-0"), (2, "agent-1"), (3, "agent-2")
    ]  # fmt: skip
    assert "agent.message" in html
    # Nothing can be posted through it.
    before = Run.objects.get(pk=queued.pk).task
    staff.post(reverse("admin:swarms_run_change", args=[quote(queued.pk)]), {"task": "Changed"})
    assert Run.objects.get(pk=queued.pk).task == before


def test_runs_cannot_be_added_or_deleted_in_the_admin(staff, runs):
    assert staff.get(reverse("admin:swarms_run_add")).status_code == 403
    queued = runs[0]
    assert staff.get(reverse("admin:swarms_run_delete", args=[quote(queued.pk)])).status_code == 403
    assert Run.objects.filter(pk=queued.pk).exists()


def test_the_cancel_action_cancels_a_queued_run(staff, runs):
    queued, _, _ = runs
    messages = run_action(staff, "cancel_runs", queued)
    assert messages == [(levels.SUCCESS, "Cancelled 1 run(s).")]
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert queued.completed_at is not None
    assert event_types(queued.pk) == ["run.cancelled"]


def test_the_cancel_action_asks_a_running_run_to_stop_and_says_so(staff, workspace):
    # Its worker is elsewhere (not executing here): the action records the request at once.
    running = make_run(workspace, status=RunStatus.RUNNING)
    messages = run_action(staff, "cancel_runs", running)
    assert messages == [
        (levels.SUCCESS, "Asked 1 running run(s) to stop; they end cancelled within a second.")
    ]
    running.refresh_from_db()
    assert running.status == RunStatus.RUNNING
    assert running.cancel_requested_at is not None


def test_the_cancel_action_reports_runs_it_cannot_cancel(staff, runs):
    queued, done, failed = runs
    messages = run_action(staff, "cancel_runs", queued, done, failed)
    assert (levels.SUCCESS, "Cancelled 1 run(s).") in messages
    warnings = [message for level, message in messages if level == levels.WARNING]
    assert len(warnings) == 2
    assert any(done.pk in message and "completed" in message for message in warnings)
    assert any(failed.pk in message and "failed" in message for message in warnings)
    statuses = dict(Run.objects.values_list("pk", "status"))
    assert statuses == {queued.pk: "cancelled", done.pk: "completed", failed.pk: "failed"}


def test_non_staff_cannot_open_the_run_admin(runs, user):
    client = Client()
    client.force_login(user)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_the_run_page_lists_its_approvals_and_the_approvals_list_decides(staff, runs):
    run = runs[0]
    Run.objects.filter(pk=run.pk).update(status="awaiting_approval")
    waiting = Approval.objects.create(
        run=run, key="k1-t", agent_id="reader-1", tool="http_fetch",
        arguments='{"url": "https://example.org"}', deadline_at=run.created_at,
    )  # fmt: skip
    page = staff.get(reverse("admin:swarms_run_change", args=[quote(run.pk)])).content.decode()
    assert waiting.pk in page and "https://example.org" in page

    listing = staff.get(reverse("admin:swarms_approval_changelist"), {"status__exact": "pending"})
    assert waiting.pk in listing.content.decode()
    answer = staff.post(
        reverse("admin:swarms_approval_changelist"),
        {"action": "deny_selected", "_selected_action": [waiting.pk]},
        follow=True,
    )
    assert "denied" in answer.content.decode()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == ("denied", "denied in the admin")
    assert Run.objects.get(pk=run.pk).status == "queued"

"""The live run page as Django serves it: staff only, 404 for an unknown run, the stream it
follows, escaped run text, and the links to it from the run admin."""

import json
import re

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from accounts.models import User
from swarms.models import Approval, Run
from tests.conftest import PASSWORD
from tests.factories import create_run

pytestmark = pytest.mark.django_db

HOSTILE_TASK = 'Survey <img src=x onerror="alert(1)"> & </script><script>alert(2)</script> swarms'


@pytest.fixture
def run(workspace, user) -> Run:
    """A queued research run (`db` tests never dispatch it) whose task is hostile HTML."""
    return create_run(workspace, created_by=user, task=HOSTILE_TASK)


@pytest.fixture
def staff_client(make_user) -> Client:
    """Staff, not superuser: staff see every run, on the page and on its stream."""
    client = Client()
    client.force_login(make_user(is_staff=True))
    return client


@pytest.fixture
def superuser_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser(email="ops@example.com", password=PASSWORD))
    return client


def live_url(run_id: str) -> str:
    return reverse("run-live", args=[run_id])


def page_config(html: str) -> dict:
    match = re.search(
        r'<script id="run-live-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "the page carries its config as a json_script"
    return json.loads(match.group(1))


def test_url_shape(run):
    assert live_url(run.pk) == f"/runs/{run.pk}/live"


def test_staff_sees_the_page(staff_client, run):
    response = staff_client.get(live_url(run.pk))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert run.pk in html
    assert f"/api/runs/{run.pk}/stream" in html
    assert "swarms/run_live.js" in html
    assert "swarms/run_live.css" in html
    config = page_config(html)
    assert config["runId"] == run.pk
    assert config["streamPath"] == f"/api/runs/{run.pk}/stream"
    assert config["status"] == "queued"
    assert config["budgetUsd"] == "5"
    # Cards up front for every planned agent, replicas expanded.
    assert [a["id"] for a in config["agents"]] == [
        "manager", "researcher-1", "researcher-2", "researcher-3", "writer",
    ]  # fmt: skip
    assert reverse("admin:swarms_run_change", args=[quote(run.pk)]) in html


def test_run_text_is_escaped(staff_client, run):
    html = staff_client.get(live_url(run.pk)).content.decode()
    assert "<img src=x" not in html
    assert "<script>alert(2)" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    # The JSON config cannot close its script element either.
    page_config(html)


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_read_only(staff_client, run, method):
    assert getattr(staff_client, method)(live_url(run.pk)).status_code == 405


def test_unknown_run_is_404(staff_client):
    response = staff_client.get(live_url("run_01HZZZZZZZZZZZZZZZZZZZZZZZ"))
    assert response.status_code == 404


def test_non_staff_is_sent_to_the_admin_login(make_user, run):
    client = Client()
    client.force_login(make_user())  # a workspace admin, but not staff
    response = client.get(live_url(run.pk))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={live_url(run.pk)}"


def test_anonymous_is_sent_to_the_admin_login(run):
    response = Client().get(live_url(run.pk))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={live_url(run.pk)}"


def test_anonymous_unknown_run_is_not_revealed():
    response = Client().get(live_url("run_01HZZZZZZZZZZZZZZZZZZZZZZZ"))
    assert response.status_code == 302


def test_admin_change_page_links_to_it(superuser_client, run):
    response = superuser_client.get(reverse("admin:swarms_run_change", args=[quote(run.pk)]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{live_url(run.pk)}"' in html
    assert "Watch this run live" in html


def test_admin_change_page_of_a_finished_run_offers_a_replay(superuser_client, run):
    Run.objects.filter(pk=run.pk).update(status="completed")
    response = superuser_client.get(reverse("admin:swarms_run_change", args=[quote(run.pk)]))
    assert "Replay this run live" in response.content.decode()


def test_admin_changelist_links_to_it(superuser_client, run):
    response = superuser_client.get(reverse("admin:swarms_run_changelist"))
    assert response.status_code == 200
    assert f'href="{live_url(run.pk)}"' in response.content.decode()


def paused_run(run: Run, status: str = "awaiting_approval") -> Run:
    Run.objects.filter(pk=run.pk).update(status=status)
    run.refresh_from_db()
    return run


def test_waiting_calls_are_shown_with_approve_and_deny_buttons(staff_client, run):
    run = paused_run(run)
    waiting = Approval.objects.create(
        run=run, key="k1-t", agent_id="reader-1", tool="http_fetch",
        arguments='{"url": "https://example.org/<b>"}', deadline_at=run.created_at,
    )  # fmt: skip
    page = staff_client.get(live_url(run.pk)).content.decode()
    assert "Waiting for approval" in page and "reader-1" in page
    assert "https://example.org/&lt;b&gt;" in page  # escaped
    action = reverse("run-approval-decide", args=[run.pk, waiting.pk])
    assert f'action="{action}"' in page

    answer = staff_client.post(action, {"decision": "deny", "reason": "not that one"})
    assert answer.status_code == 302 and answer["Location"] == live_url(run.pk)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == ("denied", "not that one")
    assert Run.objects.get(pk=run.pk).status == "queued"  # none waits: queued to resume
    again = staff_client.post(action, {"decision": "approve"}, follow=True)
    assert "was denied already" in again.content.decode()
    assert "Waiting for approval" not in staff_client.get(live_url(run.pk)).content.decode()


def test_a_run_paused_for_budget_can_have_it_raised_from_the_page(staff_client, run):
    run = paused_run(run, "awaiting_budget")
    page = staff_client.get(live_url(run.pk)).content.decode()
    assert "Paused for budget" in page
    action = reverse("run-budget-raise", args=[run.pk])
    bad = staff_client.post(action, {"max_budget_usd": "lots"}, follow=True)
    assert "Not an amount of USD" in bad.content.decode()
    answer = staff_client.post(action, {"max_budget_usd": "$9.50"})
    assert answer.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.max_budget_usd) == ("queued", 9.5)


def test_the_decision_forms_are_for_staff_only(make_user, run):
    run = paused_run(run)
    waiting = Approval.objects.create(
        run=run, key="k1-t", agent_id="reader-1", tool="http_fetch", arguments="{}",
        deadline_at=run.created_at,
    )  # fmt: skip
    client = Client()
    client.force_login(make_user())
    answer = client.post(reverse("run-approval-decide", args=[run.pk, waiting.pk]),
                         {"decision": "approve"})  # fmt: skip
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    waiting.refresh_from_db()
    assert waiting.status == "pending"

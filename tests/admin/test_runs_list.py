"""The runs list as an operator reads it over HTTP: the columns (task clipped with the whole on
hover, money to 6 decimals, who started it, heartbeat, duration), the filters (status,
workspace, template, stuck, date) and a query count that does not grow with the rows."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.services import api_key_create
from swarms.models import Run, RunStatus
from tests.factories import make_run, make_swarm

pytestmark = pytest.mark.usefixtures("not_executing")

CHANGELIST = reverse("admin:swarms_run_changelist")
LONG_TASK = "Survey every hydrogen electrolyser project in Norway " * 4


def listed(client, **params) -> set[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200, response.content[:500]
    return {run.pk for run in response.context["cl"].result_list}


def row_of(html: str, run: Run) -> str:
    """The <tr> of `run` in the changelist's HTML."""
    match = re.search(rf'<tr>(?:(?!</tr>).)*?title="{run.pk} (?:(?!</tr>).)*</tr>', html, re.S)
    assert match, f"no row for {run.pk}"
    return match.group(0)


@pytest.fixture
def populated(workspace, other_workspace, user):
    """Runs in every state the list tells apart (in two workspaces)."""
    swarm = make_swarm(workspace, user, name="Hydrogen desk")
    key, _raw = api_key_create(workspace=workspace, name="ci-runner", role="operator",
                               created_by=user)  # fmt: skip
    now = timezone.now()
    runs = {
        "cheap": make_run(
            workspace, status=RunStatus.COMPLETED, task=LONG_TASK, swarm=swarm,
            current_cost_usd=Decimal("0.0018"), max_budget_usd=Decimal("0.25"),
            started_at=now - timedelta(seconds=185), completed_at=now - timedelta(seconds=60),
            heartbeat_at=now - timedelta(seconds=61), created_by=user,
        ),
        "by_key": make_run(
            workspace, status=RunStatus.FAILED, template_id="research-swarm-v1",
            swarm_type="research-swarm-v1", error_code="worker_lost",
            error_message="The worker executing this run stopped responding.",
            created_by=user, api_key=key,
        ),
        "silent": make_run(workspace, heartbeat_ago=600, started_ago=900),
        "alive": make_run(workspace, heartbeat_ago=2, started_ago=30),
        "resumed": make_run(workspace, heartbeat_ago=1, started_ago=300, attempt=2),
        "paused_then_claimed": make_run(workspace, heartbeat_ago=1, attempt=2, pauses=1),
        "approval": make_run(workspace, status=RunStatus.AWAITING_APPROVAL),
        "budget": make_run(workspace, status=RunStatus.AWAITING_BUDGET),
        "elsewhere": make_run(other_workspace, status=RunStatus.QUEUED, task="Elsewhere"),
    }  # fmt: skip
    # A finished run resumed once is history, not stuck.
    runs["old_resumed"] = make_run(workspace, status=RunStatus.COMPLETED, attempt=3)
    return runs


def test_the_columns_an_operator_reads(staff, populated, user):
    html = staff.get(CHANGELIST).content.decode()
    cheap = row_of(html, populated["cheap"])
    # Money to 6 decimals, never cents.
    assert '<td class="field-cost">' in cheap and "$0.001800" in cheap
    assert "$0.250000" in cheap
    assert not re.search(r">\$?0\.00<", html)
    # The task clipped, the whole on hover.
    assert f'title="{LONG_TASK}"' in cheap
    assert LONG_TASK[:59] + "…" in cheap
    # Swarm (linked), status badge, who started it, duration, heartbeat to the second on hover.
    assert "Hydrogen desk" in cheap
    assert reverse("admin:swarms_swarm_change", args=[quote(populated["cheap"].swarm_id)]) in cheap
    assert 'class="status-badge status-completed" title="Completed">Completed<' in cheap
    assert f">{user.email}<" in cheap
    assert ">2m 05s<" in cheap
    assert re.search(r'<time class="" datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d '
                     r'UTC">1m 01s ago</time>', cheap)  # fmt: skip

    by_key = row_of(html, populated["by_key"])
    assert f"key: ci-runner ({populated['by_key'].api_key.prefix}…)" in by_key
    assert ">research-swarm-v1<" in by_key
    assert 'title="The worker executing this run stopped responding.">worker_lost<' in by_key
    assert "status-failed" in by_key

    # Paused statuses say so briefly, in full on hover.
    approval = row_of(html, populated["approval"])
    assert 'status-awaiting_approval" title="Awaiting approval">Needs approval<' in approval
    # A running run silent longer than the reaper waits is marked.
    assert 'class="run-silent"' in row_of(html, populated["silent"])
    assert 'class="run-silent"' not in row_of(html, populated["alive"])
    # Each row links to its run page and its live page.
    for run in populated.values():
        assert reverse("admin:swarms_run_change", args=[quote(run.pk)]) in html
        assert reverse("run-live", args=[run.pk]) in html


def test_filters_by_status_workspace_template_and_date(
    staff, populated, workspace, other_workspace
):
    assert listed(staff, status__exact="awaiting_budget") == {populated["budget"].pk}
    assert listed(staff, workspace__id__exact=other_workspace.pk) == {populated["elsewhere"].pk}
    assert len(listed(staff, workspace__id__exact=workspace.pk)) == len(populated) - 1
    assert listed(staff, swarm_type="research-swarm-v1") == {populated["by_key"].pk}
    offered = {
        param for spec in staff.get(CHANGELIST).context["cl"].filter_specs
        for param in spec.expected_parameters()
    }  # fmt: skip
    assert {"status__exact", "stuck", "workspace__id__exact", "swarm_type",
            "created_at__gte"} <= offered  # fmt: skip
    old = populated["old_resumed"]
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    # The date filter's "Past 7 days", as the sidebar links it.
    response = staff.get(CHANGELIST)
    (dates,) = [
        s
        for s in response.context["cl"].filter_specs
        if getattr(s, "field_path", "") == "created_at"
    ]
    (week,) = [c for c in dates.choices(response.context["cl"]) if c["display"] == "Past 7 days"]
    this_week = staff.get(CHANGELIST + week["query_string"]).context["cl"].result_list
    assert {run.pk for run in this_week} == {run.pk for run in populated.values()} - {old.pk}
    past = timezone.now() - timedelta(days=40)
    assert listed(staff, created_at__year=past.year, created_at__month=past.month) >= {old.pk}


@pytest.mark.parametrize(
    ("stuck", "expected"),
    [
        ("silent", {"silent"}),
        ("resumed", {"resumed"}),
        ("approval", {"approval"}),
        ("budget", {"budget"}),
        ("any", {"silent", "resumed", "approval", "budget"}),
    ],
)
def test_the_stuck_filter(staff, populated, stuck, expected):
    assert listed(staff, stuck=stuck) == {populated[name].pk for name in expected}


def test_silent_means_longer_than_the_reapers_threshold(staff, populated, settings):
    settings.SVERM_STALE_AFTER_SECONDS = 1200  # the silent run's 600 s are within it now
    assert listed(staff, stuck="silent") == set()
    page = staff.get(CHANGELIST).content.decode()
    assert "Worker silent &gt; 1200s" in page
    settings.SVERM_STALE_AFTER_SECONDS = 60
    assert listed(staff, stuck="silent") == {populated["silent"].pk}


def test_a_page_of_runs_costs_the_same_queries_whatever_it_holds(staff, workspace, user):
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = staff.get(CHANGELIST)
        assert response.status_code == 200
        return len(queries)

    key, _ = api_key_create(workspace=workspace, name="k", role="operator", created_by=user)
    swarm = make_swarm(workspace, user)
    make_run(workspace, swarm=swarm, created_by=user, api_key=key)
    few = page_queries()
    for n in range(30):
        make_run(
            workspace, swarm=make_swarm(workspace, user, name=f"S{n}"), created_by=user,
            api_key=api_key_create(workspace=workspace, name=f"k{n}", role="operator",
                                   created_by=user)[0],
        )  # fmt: skip
    assert page_queries() == few
    assert few <= 15


def test_non_staff_are_sent_to_the_login(client_for, user, populated):
    from django.test import Client

    member = Client()
    member.force_login(user)  # a workspace admin, not staff
    response = member.get(CHANGELIST)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]

"""The usage report in the admin: one workspace and month, a table per swarm type from the
rollup and an inline-SVG bar chart of daily cost from the ledger, linked from the changelist."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.admin import CHART_HEIGHT
from billing.periods import current_month
from tests.billing.conftest import record, started, utc

pytestmark = pytest.mark.django_db

REPORT = "admin:billing_monthlyusage_report"
BAR = re.compile(
    r'<title>(?P<label>[^<]+)</title>\s*<rect class="bar" x="[\d.]+" y="[\d.]+"\s*'
    r'width="[\d.]+" height="(?P<height>[\d.]+)"/>'
)


@pytest.fixture
def february(workspace, other_workspace):
    started(workspace, "research-swarm-v1", utc(2026, 2, 2), count=2)
    started(workspace, "custom", utc(2026, 2, 9))
    record(workspace, "0.30", at=utc(2026, 2, 2, 8), tokens=(1000, 200))
    record(workspace, "0.10", at=utc(2026, 2, 2, 23, 59, 59), tokens=(10, 2))
    record(workspace, "0.20", at=utc(2026, 2, 9, 0, 0), swarm_type="custom", tokens=(7, 1))
    record(workspace, "5", at=utc(2026, 3, 1))  # next month: not in the report
    record(other_workspace, "9", at=utc(2026, 2, 2))


def report(client, **params):
    response = client.get(reverse(REPORT), params)
    assert response.status_code == 200, response.content[:500]
    return response, response.content.decode()


def test_the_report_has_a_table_per_swarm_type_and_a_daily_chart(staff, workspace, february):
    response, html = report(staff, workspace=workspace.pk, month="2026-02")
    usage = response.context["usage"]
    assert [(t.swarm_type, t.count, t.total_usd) for t in usage.types] == [
        ("research-swarm-v1", 2, Decimal("0.4")),
        ("custom", 1, Decimal("0.2")),
    ]
    start = html.index('id="usage-by-type"')
    table = html[start : html.index("</table>", start)]
    assert "research-swarm-v1" in table and "custom" in table
    assert "$0.400000" in table and "$0.200000" in table and "$0.600000" in table
    assert ">1010<" in table and ">202<" in table  # tokens in / out of research-swarm-v1

    assert "<svg" in html and 'class="usage-chart"' in html
    bars = [(m["label"], float(m["height"])) for m in BAR.finditer(html)]
    assert len(bars) == 28  # one per day of February 2026
    heights = {label.split(":")[0]: height for label, height in bars}
    assert heights["2026-02-02"] == CHART_HEIGHT  # the costliest day fills the chart
    assert heights["2026-02-09"] == CHART_HEIGHT / 2
    assert [day for day, height in heights.items() if height] == ["2026-02-02", "2026-02-09"]
    assert "2026-02-02: $0.400000" in {label for label, _ in bars}
    assert response.context["ledger_total"] == Decimal("0.6")


def test_the_month_defaults_to_the_current_one(staff, workspace):
    record(workspace, "0.5")
    response, _html = report(staff, workspace=workspace.pk)
    assert response.context["month"] == current_month()
    assert response.context["usage"].total_usd == Decimal("0.5")


def test_a_month_without_usage_says_so_and_draws_empty_bars(staff, workspace):
    _response, html = report(staff, workspace=workspace.pk, month="2025-04")
    assert "No usage in April 2025." in html
    heights = [float(m["height"]) for m in BAR.finditer(html)]
    assert heights == [0.0] * 30


def test_without_a_workspace_it_shows_the_form_only(staff):
    _response, html = report(staff)
    assert 'name="workspace"' in html and 'name="month"' in html
    assert 'class="usage-chart"' not in html


@pytest.mark.parametrize(
    ("params", "error"),
    [({"workspace": "wsp_nope"}, "No such workspace."), ({"month": "2026-13"}, "YYYY-MM")],
)
def test_bad_input_is_shown_on_the_form(staff, workspace, params, error):
    _response, html = report(staff, **{"workspace": workspace.pk, **params})
    assert error in html
    assert 'class="usage-chart"' not in html


def test_the_changelist_links_to_the_report(staff, workspace, february):
    response = staff.get(reverse("admin:billing_monthlyusage_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    url = reverse(REPORT)
    assert f'href="{url}"' in html  # the object tool
    assert f'href="{url}?workspace={workspace.pk}&amp;month=2026-02"' in html  # per row


def test_only_staff_see_it(client, user, workspace):
    response = client.get(reverse(REPORT), {"workspace": workspace.pk})
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    client.force_login(user)  # a workspace admin, not platform staff
    assert client.get(reverse(REPORT), {"workspace": workspace.pk}).status_code == 302

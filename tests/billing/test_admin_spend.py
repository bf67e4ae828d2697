"""The admin usage report, over HTTP as a staff user: the workspace chosen by name (Django's
autocomplete, no typed `wsp_` id), the month grouped by swarm type, API key, user or model,
and a "Download CSV" link that answers the table as CSV (by key or user, exactly
`/api/usage`'s CSV of the month)."""

import csv
import html
import io
import re
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from accounts.roles import Role
from accounts.services import api_key_create
from billing.periods import current_month, month_after
from tests.billing.conftest import record, started, utc

pytestmark = pytest.mark.django_db

REPORT = "admin:billing_monthlyusage_report"
MARCH = {"month": "2026-03"}


@pytest.fixture
def march(workspace, other_workspace, user, member_of):
    """March 2026 of `workspace`: a key's run, another key's (made by an operator), and a run a
    signed-in operator started; `other_workspace` spends too."""
    ops = member_of(workspace, Role.OPERATOR)
    key_a, _ = api_key_create(workspace=workspace, name="CI deploys", role=Role.OPERATOR,
                              created_by=user)  # fmt: skip
    key_b, _ = api_key_create(workspace=workspace, name="Nightly", role=Role.OPERATOR,
                              created_by=ops)  # fmt: skip
    started(workspace, "research-swarm-v1", utc(2026, 3, 2), count=3)
    record(workspace, "0.0020009", at=utc(2026, 3, 2, 9), run_id="run_a", user_id=user.pk,
           api_key_id=key_a.pk)  # fmt: skip
    record(workspace, "0.0010009", at=utc(2026, 3, 3, 9), run_id="run_a", user_id=user.pk,
           api_key_id=key_a.pk)  # fmt: skip
    record(workspace, "0.0500001", at=utc(2026, 3, 4, 9), run_id="run_b", user_id=ops.pk,
           api_key_id=key_b.pk, model="deepseek-chat")  # fmt: skip
    record(workspace, "0.0000007", at=utc(2026, 3, 5, 9), run_id="run_c", user_id=ops.pk)
    record(other_workspace, "7", at=utc(2026, 3, 2, 9))
    return {"key_a": key_a, "key_b": key_b, "ops": ops}


def report(client, **params):
    response = client.get(reverse(REPORT), params)
    assert response.status_code == 200, response.content[:500]
    return response, response.content.decode()


def table(page: str, table_id: str) -> list[list[str]]:
    """The text of each row's cells (header, body and footer) of the table with this id."""
    start = page.index(f'id="{table_id}"')
    body = page[start : page.index("</table>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
         for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)]
        for row in rows
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Choosing the workspace by name
# ---------------------------------------------------------------------------------------------
def test_the_workspace_is_chosen_with_an_autocomplete_by_name(staff, workspace):
    _response, page = report(staff)
    select = re.search(r'<select name="workspace"[^>]*>', page)
    assert select is not None, "no workspace select"
    assert 'class="admin-autocomplete' in select[0]
    assert f'data-ajax--url="{reverse("admin:autocomplete")}"' in select[0]
    assert 'data-app-label="billing"' in select[0] and 'data-model-name="monthlyusage"' in select[0]
    assert 'type="text" name="workspace"' not in page  # no typed id any more
    assert "select2" in page  # the widget's script and style are on the page

    found = staff.get(reverse("admin:autocomplete"), {
        "term": "acm", "app_label": "billing", "model_name": "monthlyusage",
        "field_name": "workspace",
    })  # fmt: skip
    assert found.status_code == 200, found.content
    assert found.json()["results"] == [{"id": workspace.pk, "text": str(workspace)}]
    assert "Acme" in str(workspace)


def test_the_chosen_workspace_shows_by_name(staff, workspace, march):
    _response, page = report(staff, workspace=workspace.pk, **MARCH)
    assert f'<option value="{workspace.pk}" selected>{html.escape(str(workspace))}</option>' in page
    assert "Usage of Acme, March 2026" in page


# ---------------------------------------------------------------------------------------------
# Grouped by key and by user
# ---------------------------------------------------------------------------------------------
def test_grouped_by_api_key_with_names_links_and_a_total(staff, workspace, march):
    response, page = report(staff, workspace=workspace.pk, group_by="api_key", **MARCH)
    key_a, key_b = march["key_a"], march["key_b"]
    rows = table(page, "usage-by-group")
    assert rows[0] == ["API key", "Name", "Prefix", "Runs", "Calls", "Tokens in", "Tokens out",
                       "Cost (USD)"]  # fmt: skip
    assert rows[1:] == [
        [key_b.pk, "Nightly", key_b.prefix, "1", "1", "100", "50", "$0.050000"],
        [key_a.pk, "CI deploys", key_a.prefix, "1", "2", "200", "100", "$0.003001"],
        ["No API key", "—", "—", "1", "1", "100", "50", "$0.000000"],
        ["Total", "3", "4", "400", "200", "$0.053001"],
    ]
    change = reverse("admin:accounts_apikey_change", args=[quote(key_a.pk)])
    assert f'href="{change}"' in page
    assert 'id="usage-by-type"' not in page
    assert response.context["usage"].total_usd == Decimal("0.053001")  # the rollup agrees


def test_grouped_by_user_with_emails(staff, workspace, user, march):
    _response, page = report(staff, workspace=workspace.pk, group_by="user", **MARCH)
    rows = table(page, "usage-by-group")
    assert rows[0][:3] == ["User", "Email", "Name"]
    assert [row[1:3] + row[-1:] for row in rows[1:-1]] == [
        [march["ops"].email, "—", "$0.050000"],
        [user.email, "Owner", "$0.003001"],
    ]
    assert rows[-1][-1] == "$0.053001"
    assert f'href="{reverse("admin:accounts_user_change", args=[quote(user.pk)])}"' in page


def test_a_bad_grouping_is_shown_on_the_form(staff, workspace):
    _response, page = report(staff, workspace=workspace.pk, group_by="week")
    assert "Select a valid choice. week is not one of the available choices." in page
    assert "csv-download" not in page


# ---------------------------------------------------------------------------------------------
# Download CSV
# ---------------------------------------------------------------------------------------------
def download(staff, page: str) -> tuple:
    link = re.search(r'<a href="([^"]+)" class="button csv-download"[^>]*>Download CSV</a>', page)
    assert link is not None, "no Download CSV link"
    response = staff.get(html.unescape(link[1]))
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return response, list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.parametrize("group_by", ["api_key", "user", "model"])
def test_the_csv_is_the_apis_csv_of_the_month(staff, api_client, workspace, march, group_by):
    _response, page = report(staff, workspace=workspace.pk, group_by=group_by, **MARCH)
    response, lines = download(staff, page)
    assert response["Content-Disposition"] == (
        f'attachment; filename="usage_{workspace.pk}_2026-03_by-{group_by}.csv"'
    )
    api = api_client.get("/api/usage", {
        "workspace_id": workspace.pk, "from": "2026-03-01", "to": "2026-04-01",
        "group_by": group_by, "format": "csv",
    })  # fmt: skip
    assert response.content == api.content
    assert lines[-1][0] == "total" and "0.053001" in lines[-1]


def test_the_csv_by_swarm_type_is_the_rollups_table(staff, workspace, march):
    _response, page = report(staff, workspace=workspace.pk, **MARCH)
    assert 'id="usage-by-type"' in page
    _response, lines = download(staff, page)
    assert lines == [
        ["row", "key", "runs", "costUsd", "tokensIn", "tokensOut"],
        ["group", "research-swarm-v1", "3", "0.053001", "400", "200"],
        ["total", "", "3", "0.053001", "400", "200"],
    ]


def test_only_staff_download(client, user, workspace, march):
    url = reverse(REPORT)
    params = {"workspace": workspace.pk, "group_by": "api_key", "format": "csv", **MARCH}
    response = client.get(url, params)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    client.force_login(user)  # a workspace admin, not platform staff
    assert client.get(url, params).status_code == 302


def test_the_current_month_by_default_in_every_grouping(staff, workspace, user):
    record(workspace, "0.5", user_id=user.pk)
    month = current_month()
    record(workspace, "9", at=utc(month_after(month).year, month_after(month).month, 1))
    _response, page = report(staff, workspace=workspace.pk, group_by="user")
    assert table(page, "usage-by-group")[-1][-1] == "$0.500000"

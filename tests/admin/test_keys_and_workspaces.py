"""Objects link to each other in the admin: a workspace's page to its runs, swarms, API keys,
members and usage report; a swarm's to its workspace and runs; and API keys show when they
expire, were last used and were revoked, their status and their rotation chain."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from tests.factories import make_run, make_swarm

pytestmark = pytest.mark.usefixtures("not_executing")

KEYS = reverse("admin:accounts_apikey_changelist")


def hrefs(html: str) -> list[str]:
    return [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', html)]


@pytest.fixture
def keys(workspace, user):
    now = timezone.now()

    def key(name: str, **fields) -> ApiKey:
        api_key, _raw = api_key_create(workspace=workspace, name=name, role="operator",
                                       created_by=user)  # fmt: skip
        ApiKey.objects.filter(pk=api_key.pk).update(**fields)
        api_key.refresh_from_db()
        return api_key

    old = key("deploy (old)", expires_at=now + timedelta(hours=2),
              last_used_at=now - timedelta(minutes=3))  # fmt: skip
    new = key("deploy", replaces=old)
    return {
        "old": old,
        "new": new,
        "expired": key("nightly", expires_at=now - timedelta(days=1)),
        "revoked": key("leaked", revoked_at=now - timedelta(hours=5)),
    }


def test_the_workspace_page_links_to_everything_of_it(staff, workspace, other_workspace, user,
                                                      keys):  # fmt: skip
    swarm = make_swarm(workspace, user)
    mine = {make_run(workspace, swarm=swarm).pk, make_run(workspace).pk}
    make_run(other_workspace)
    page = staff.get(reverse("admin:accounts_workspace_change", args=[quote(workspace.pk)]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Runs (2)" in html and "Swarms (1)" in html and "Members (1)" in html
    assert "API keys (4, 3 not revoked)" in html
    links = {href.split("?")[0]: href for href in hrefs(html) if "?" in href}
    # Each link opens the list filtered to this workspace, and shows only its rows.
    runs = staff.get(links[reverse("admin:swarms_run_changelist")])
    assert {run.pk for run in runs.context["cl"].result_list} == mine
    swarms = staff.get(links[reverse("admin:swarms_swarm_changelist")])
    assert [s.pk for s in swarms.context["cl"].result_list] == [swarm.pk]
    api_keys = staff.get(links[KEYS])
    assert {k.pk for k in api_keys.context["cl"].result_list} == {k.pk for k in keys.values()}
    members = staff.get(links[reverse("admin:accounts_membership_changelist")])
    assert [m.user_id for m in members.context["cl"].result_list] == [user.pk]
    report = links[reverse("admin:billing_monthlyusage_report")]
    assert f"workspace={workspace.pk}" in report
    assert f"month={timezone.now():%Y-%m}" in report
    assert staff.get(report).status_code == 200
    # The list offers the same, in one column.
    listing = staff.get(reverse("admin:accounts_workspace_changelist")).content.decode()
    assert f"?workspace__id__exact={workspace.pk}" in listing


def test_the_swarm_page_links_to_its_workspace_and_runs(staff, workspace, user):
    swarm = make_swarm(workspace, user, name="Desk")
    run = make_run(workspace, swarm=swarm)
    html = staff.get(reverse("admin:swarms_swarm_change", args=[quote(swarm.pk)])).content.decode()
    assert reverse("admin:accounts_workspace_change", args=[quote(workspace.pk)]) in html
    runs_link = next(h for h in hrefs(html) if "swarm__id__exact" in h)
    assert "Its runs (1)" in html
    listed = staff.get(runs_link).context["cl"].result_list
    assert [r.pk for r in listed] == [run.pk]


def test_the_key_list_shows_status_expiry_last_use_and_revocation(staff, keys):
    response = staff.get(KEYS)
    html = response.content.decode()
    for name, status in [("old", "active"), ("new", "active"), ("expired", "expired"),
                         ("revoked", "revoked")]:  # fmt: skip
        row = re.search(rf"<tr>(?:(?!</tr>).)*?{keys[name].prefix}…(?:(?!</tr>).)*</tr>", html,
                        re.S).group(0)  # fmt: skip
        assert f'class="status-badge status-{status}">{status}<' in row, name
    old = re.search(rf"<tr>(?:(?!</tr>).)*?{keys['old'].prefix}…(?:(?!</tr>).)*</tr>", html,
                    re.S).group(0)  # fmt: skip
    assert re.search(r">in 1h 59m<|>in 2h 00m<", old)  # expires
    assert ">3m 00s ago<" in old or ">3m 01s ago<" in old  # last used
    assert "never" in html  # a key that never expires / was never used

    # Filtered by status.
    def statuses(value):
        listed = staff.get(KEYS, {"status": value}).context["cl"].result_list
        return {key.pk for key in listed}

    assert statuses("expired") == {keys["expired"].pk}
    assert statuses("revoked") == {keys["revoked"].pk}
    assert statuses("active") == {keys["old"].pk, keys["new"].pk}


def test_the_key_page_shows_its_rotation_both_ways(staff, keys):
    old, new = keys["old"], keys["new"]
    old_url = reverse("admin:accounts_apikey_change", args=[quote(old.pk)])
    new_url = reverse("admin:accounts_apikey_change", args=[quote(new.pk)])
    new_page = staff.get(new_url).content.decode()
    assert f'<a href="{old_url}">' in new_page
    old_page = staff.get(old_url).content.decode()
    assert f'<a href="{new_url}">' in old_page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", old_page)  # expiry, to the second

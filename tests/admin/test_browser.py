"""The operator pages in headless Chromium at 1366x768, on a real sverm (embedded mode, served by
Daphne): a screenshot of each page into the artifacts directory, the key columns' header and
first-row cells inside the screen and not clipped, no sideways scrolling, and the run page's
Cancel and Retry buttons doing what they say (checked through the API afterwards).

Chromium and Playwright are the live page test's (tests/live/conftest.py): a missing one skips
here, and fails under CI=true."""

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.live.conftest import artifacts_dir, browser, embedded_server  # noqa: F401 (fixtures)
from tests.live.test_browser import sign_in, watch_errors
from tests.processes import embedded_server_env, manage

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1366, "height": 768}
DEADLINE_S = 60.0
# Two quick calls: a run that completes in a couple of seconds at the latency below.
QUICK_YAML = """\
version: 1
topology: sequential
instructions: Be brief.
agents:
  - id: drafter
    role: drafter
    model: gpt-4o-mini
    max_tokens: 128
  - id: editor
    role: editor
    model: gpt-4o-mini
    max_tokens: 128
"""
# Many calls of a second each: still running when the operator presses Cancel.
LONG_TEMPLATE = "research-swarm-v1"

RUN_COLUMNS = ["short_id", "task_short", "origin", "status_badge", "error", "cost", "budget",
               "attempt", "heartbeat", "creator", "duration", "live_link"]  # fmt: skip
KEY_COLUMNS = ["name_short", "masked", "workspace_name", "role", "status", "expires", "last_used",
               "revoked", "created"]  # fmt: skip

# Rows that make the list as wide as it gets: long task, swarm name, e-mail and key name,
# the longest status, an error code, a big budget; and keys in every state, rotated once.
SEED = """
from datetime import timedelta
from decimal import Decimal
from django.utils import timezone
from accounts.models import ApiKey, Membership, User, Workspace
from accounts.services import api_key_create
from swarms import services
from swarms.models import Run

now = timezone.now()
workspace = Workspace.objects.get()
Workspace.objects.filter(pk=workspace.pk).update(plan="team")
owner = User.objects.get(email="staff@example.com")
analyst = User.objects.create_user(
    email="ingrid.kristiansen-solberg@hydrogen-operations.example.com", password=None)
Membership.objects.create(workspace=workspace, user=analyst, role="operator")
swarm = services.swarm_create(
    workspace=workspace, name="Norwegian hydrogen electrolyser market intelligence desk",
    created_by=owner, models=["gpt-4o-mini"])
old, _ = api_key_create(workspace=workspace, name="production deploy pipeline (eu-north-1)",
                        role="operator", created_by=owner)
ApiKey.objects.filter(pk=old.pk).update(expires_at=now + timedelta(hours=2),
                                        last_used_at=now - timedelta(minutes=4))
new, _ = api_key_create(workspace=workspace, name="production deploy pipeline (rotated)",
                        role="operator", created_by=owner)
ApiKey.objects.filter(pk=new.pk).update(replaces=old, last_used_at=now)
expired, _ = api_key_create(workspace=workspace, name="nightly export", role="viewer",
                            created_by=owner)
ApiKey.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(days=3))
revoked, _ = api_key_create(workspace=workspace, name="leaked laptop key", role="admin",
                            created_by=owner)
ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=now - timedelta(days=1))
task = ("Survey every hydrogen electrolyser project announced in Norway since 2019, with "
        "capacity, owner, offtaker, subsidy and expected start of operation; flag the doubtful.")
common = dict(workspace=workspace, definition=swarm.default_version.definition, task=task,
              estimated_cost_usd=Decimal("0.0123456"), agents_total=5)
Run.objects.create(**common, swarm=swarm, version=swarm.default_version, swarm_type="custom",
                   status="failed", error_code="budget_exceeded",
                   error_message="The next call needed $0.004100 more than the budget left.",
                   max_budget_usd=Decimal("10000"), current_cost_usd=Decimal("9999.9987654321"),
                   attempt=3, created_by=owner, api_key=new,
                   started_at=now - timedelta(hours=3, minutes=7),
                   completed_at=now - timedelta(minutes=2),
                   heartbeat_at=now - timedelta(minutes=2, seconds=5))
Run.objects.create(**common, swarm_type="research-swarm-v1", template_id="research-swarm-v1",
                   status="awaiting_approval", max_budget_usd=Decimal("5"),
                   current_cost_usd=Decimal("0.0018"), attempt=1, created_by=analyst,
                   started_at=now - timedelta(minutes=12), heartbeat_at=now - timedelta(minutes=9))
Run.objects.create(**common, swarm_type="custom", status="awaiting_budget",
                   max_budget_usd=Decimal("0.05"), current_cost_usd=Decimal("0.0499"),
                   budget_needed_usd=Decimal("0.0041"), attempt=2, created_by=analyst,
                   started_at=now - timedelta(minutes=40))
print(workspace.pk, old.pk)
"""


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    """Each simulated call takes a second (the long run is still running at Cancel); no
    request limits (the test polls)."""
    return embedded_server_env(tmp_path, SVERM_SIMULATED_LATENCY="1", SVERM_RATE_LIMITS="0")


def screenshots_dir() -> Path:
    path = artifacts_dir() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(page, name: str) -> Path:
    path = screenshots_dir() / f"admin-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Api:
    def __init__(self, server) -> None:
        self.base = server.base_url
        self.headers = {"Authorization": f"Bearer {server.api_key}"}

    def start(self, template: str, task: str) -> str:
        response = httpx.post(f"{self.base}/v1/swarms", json={"template": template, "task": task},
                              headers=self.headers, timeout=10)  # fmt: skip
        assert response.status_code == 201, response.text
        return response.json()["swarm_id"]

    def status(self, run_id: str) -> str:
        response = httpx.get(f"{self.base}/v1/swarms/{run_id}", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["status"]

    def wait_for(self, run_id: str, statuses: set[str]) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while (status := self.status(run_id)) not in statuses:
            assert time.monotonic() < deadline, f"{run_id} still {status}, not {statuses}"
            time.sleep(0.1)
        return status

    def run_ids(self) -> set[str]:
        response = httpx.get(f"{self.base}/v1/swarms", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return {row["swarm_id"] for row in response.json()["items"]}


# The layout as the browser laid it out: where each key column's header and first-row cells
# are, whether a cell's content overflows it, and whether anything scrolls sideways.
LAYOUT_JS = """
(columns) => {
  const box = (el) => el && (({left, right, width}) => ({left, right, width}))(
    el.getBoundingClientRect());
  const results = document.querySelector('#changelist .results');
  const cells = {};
  for (const name of columns) {
    const th = document.querySelector(`#result_list thead th.column-${name}`);
    const td = document.querySelector(
      `#result_list tbody tr:first-child > .field-${name}`);
    cells[name] = {th: box(th), td: box(td),
                   overflow: td ? td.scrollWidth - td.clientWidth : null};
  }
  return {viewport: document.documentElement.clientWidth,
          pageWidth: document.documentElement.scrollWidth,
          results: results && {scroll: results.scrollWidth, client: results.clientWidth},
          cells};
}
"""


def assert_columns_fit(page, columns: list[str], name: str) -> None:
    layout = page.evaluate(LAYOUT_JS, columns)
    where = f"{name}: {json.dumps(layout, indent=1)}"
    width = layout["viewport"]
    assert width == VIEWPORT["width"], where
    assert layout["pageWidth"] <= width, f"the page scrolls sideways; {where}"
    assert layout["results"]["scroll"] <= layout["results"]["client"], f"table clipped; {where}"
    for column, cell in layout["cells"].items():
        assert cell["th"] and cell["td"], f"no {column} column; {where}"
        for part in ("th", "td"):
            assert cell[part]["left"] >= 0 and cell[part]["right"] <= width, (column, where)
        assert cell["overflow"] <= 0, f"{column}'s first cell is clipped; {where}"


def assert_no_sideways_scroll(page, name: str) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{name} scrolls sideways: {widths}"


def test_operator_pages_fit_1366_and_the_buttons_work(browser, embedded_server, embedded_env):  # noqa: F811
    server = embedded_server
    workspace_id, old_key_id = manage(embedded_env, "shell", "-c", SEED).splitlines()[-1].split()
    api = Api(server)
    done = api.start(QUICK_YAML, "One paragraph on Norwegian hydrogen.")
    api.wait_for(done, {"completed"})

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, server)
    base = f"{server.base_url}/admin"

    # The runs list: every key column on screen, none clipped.
    page.goto(f"{base}/swarms/run/")
    shoot(page, "runs")
    assert page.locator("#result_list tbody tr").count() == 4
    assert_columns_fit(page, RUN_COLUMNS, "runs list")
    # Its widest row (the failed run, first in the list sorted by cost) fits too.
    page.goto(f"{base}/swarms/run/?o=-5")
    assert "$9999.998765" in page.text_content("#result_list tbody tr:first-child")
    assert_columns_fit(page, RUN_COLUMNS, "runs list by cost")
    page.goto(f"{base}/swarms/run/?stuck=any")
    shoot(page, "runs-stuck")
    assert page.locator("#result_list tbody tr").count() == 2

    # The completed run's page: read, then nothing to cancel, Retry refused (it completed).
    page.goto(f"{base}/swarms/run/{done}/change/")
    shoot(page, "run")
    assert_no_sideways_scroll(page, "run page")
    assert page.locator("#cost-report tbody tr").count() >= 1
    assert page.locator("#timeline tbody tr").count() >= 2
    assert "topology: sequential" in page.text_content("pre.run-yaml")
    assert page.locator("#run-cancel").count() == 0 and page.locator("#run-retry").count() == 0

    # Cancel a running run from its page.
    running = api.start(LONG_TEMPLATE, "A long survey of Norwegian hydrogen, to be cancelled.")
    api.wait_for(running, {"running"})
    page.goto(f"{server.base_url}/runs/{running}/live")
    assert page.locator("#run-cancel").is_visible()
    shoot(page, "live")
    page.goto(f"{base}/swarms/run/{running}/change/")
    shoot(page, "run-running")
    page.click("#run-cancel")
    page.wait_for_load_state()
    assert f"Asked run {running} to stop" in page.text_content("ul.messagelist")
    assert api.wait_for(running, {"cancelled", "completed", "failed"}) == "cancelled"

    # Retry it: a new run, linked from the old one's page.
    before = api.run_ids()
    page.goto(f"{base}/swarms/run/{running}/change/")
    page.click("#run-retry")
    page.wait_for_load_state()
    (retry,) = api.run_ids() - before
    assert f"as run {retry}" in page.text_content("ul.messagelist")
    assert retry in page.url.replace("_5F", "_")
    page.click("#run-cancel")  # it would run for a while; stop it
    page.wait_for_load_state()
    api.wait_for(retry, {"cancelled"})

    # The workspace page, the API keys list and a key's rotation, the usage report.
    page.goto(f"{base}/accounts/workspace/{workspace_id}/change/")
    shoot(page, "workspace")
    assert_no_sideways_scroll(page, "workspace page")
    for text in ("Runs (", "Swarms (", "API keys (", "Members (", "Usage report"):
        link = page.get_by_role("link", name=text).first
        assert link.is_visible(), text
        assert link.bounding_box()["x"] + link.bounding_box()["width"] <= VIEWPORT["width"]
    page.goto(f"{base}/accounts/apikey/")
    shoot(page, "api-keys")
    assert_columns_fit(page, KEY_COLUMNS, "API keys list")
    statuses = page.locator("#result_list td.field-status").all_text_contents()
    assert {"active", "expired", "revoked"} <= set(statuses)
    page.goto(f"{base}/accounts/apikey/{old_key_id}/change/")
    shoot(page, "api-key")
    assert "production deploy pipeline (rotated)" in page.text_content(".field-replaced_by_links")
    page.goto(f"{base}/accounts/workspace/{workspace_id}/change/")
    page.get_by_role("link", name="Usage report").click()
    page.wait_for_load_state()
    shoot(page, "usage-report")
    assert_no_sideways_scroll(page, "usage report")
    assert page.locator("#content h1").count() == 1

    assert errors == [], errors
    print(f"screenshots in {screenshots_dir()}")

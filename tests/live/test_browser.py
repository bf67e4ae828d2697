"""The live run page in a real browser: Chromium signs in through the admin, a run starts over
/v1 on a real Daphne (embedded mode), and the page follows it to the end, surviving a dropped
socket by resuming with `?after=`. A screenshot is kept as a test artifact."""

import re
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.live.conftest import keep_artifact

pytestmark = pytest.mark.integration

# Hostile markup in the task: the page must show it as text and never run it.
TASK = (
    'How did <b>swarm robotics</b> evolve? <img src=x onerror="window.__xss = 1"> '
    "Cover history, current state & open questions."
)
AGENTS = ["manager", "researcher-1", "researcher-2", "researcher-3", "writer"]
DROP_AFTER = 5  # the first socket is cut after this many events; the page must resume
STREAM = re.compile(r"/api/runs/[^/?]+/stream")
DEADLINE_MS = 60_000


def sign_in(page, server) -> None:
    page.goto(f"{server.base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", server.email)
    page.fill("#id_password", server.password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.base_url}/admin/")


def start_run(server) -> str:
    response = httpx.post(
        f"{server.base_url}/v1/swarms",
        json={"template": "research-swarm-v1", "task": TASK},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["swarm_id"]


def run_status(server, run_id: str) -> dict:
    response = httpx.get(
        f"{server.base_url}/v1/swarms/{run_id}",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def cut_first_socket(page) -> list[str]:
    """Route the page's stream sockets to the real server; cut the first one (as a proxy
    restart would) after DROP_AFTER events. Returns the URLs the page connected to."""
    urls: list[str] = []

    def route(ws) -> None:
        urls.append(ws.url)
        server = ws.connect_to_server()
        if len(urls) > 1:
            return  # later sockets pass through untouched
        forwarded = 0

        def from_server(message) -> None:
            nonlocal forwarded
            if forwarded >= DROP_AFTER:
                return
            ws.send(message)
            forwarded += 1
            if forwarded == DROP_AFTER:
                ws.close(code=1001, reason="dropped by the test")
                server.close()

        server.on_message(from_server)

    page.route_web_socket(STREAM, route)
    return urls


def watch_errors(page) -> list[str]:
    """Uncaught exceptions, console errors and failed requests of the page (bar the favicon,
    which the admin does not serve)."""
    errors: list[str] = []

    def on_console(message) -> None:
        url = str(message.location.get("url"))
        if message.type == "error" and not url.endswith("/favicon.ico"):
            errors.append(f"console: {message.text} at {url}")

    def on_response(response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            errors.append(f"HTTP {response.status}: {response.url}")

    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", on_console)
    page.on("response", on_response)
    return errors


def test_live_page_follows_a_run_to_completion(browser, embedded_server, tmp_path):
    server = embedded_server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = watch_errors(page)
    screenshot = tmp_path / "run_live.png"
    started = time.monotonic()
    try:
        sign_in(page, server)
        urls = cut_first_socket(page)
        run_id = start_run(server)
        page.goto(f"{server.base_url}/runs/{run_id}/live")
        page.wait_for_selector('#run-live[data-terminal="true"]', timeout=DEADLINE_MS)
        page.wait_for_selector('#stream-state[data-state="closed"]', timeout=10_000)
        page.screenshot(path=str(screenshot), full_page=True)
    except Exception as exc:
        page.screenshot(path=str(screenshot), full_page=True)
        kept = keep_artifact(screenshot)
        raise AssertionError(
            f"the page did not reach the end of the run ({exc}); stream: "
            f"{page.text_content('#stream-state')!r}; errors: {errors}; screenshot: {kept}\n"
            f"Daphne log:\n{server.log_tail()}"
        ) from exc
    finally:
        elapsed = time.monotonic() - started
    kept = keep_artifact(screenshot)
    print(f"live page finished in {elapsed:.1f}s; screenshot: {screenshot} and {kept}")

    # The run as the API sees it, for comparison.
    final = run_status(server, run_id)
    assert final["status"] == "completed"

    # Header: id, task shown as text (the markup neither rendered nor run), status, meters.
    assert page.text_content("#run-id") == run_id
    assert page.text_content("#run-task") == TASK
    assert page.locator("#run-live img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.get_attribute("#run-status", "data-status") == "completed"
    assert page.text_content("#run-status") == "completed"
    assert page.text_content("#progress-text") == "100%"
    assert page.get_attribute("#progress-bar", "aria-valuenow") == "100"
    assert page.text_content("#budget") == "$5.00"
    page_cost = Decimal(page.text_content("#cost").removeprefix("$"))
    assert page_cost > 0
    assert abs(page_cost - Decimal(str(final["current_cost_usd"]))) <= Decimal("0.000001")
    assert page.text_content("#agents-active") == "0"

    # Outcome: completed, with the run's output as text.
    assert page.is_visible("#run-outcome")
    assert page.text_content("#outcome-title").startswith("Run completed")
    assert page.is_hidden("#outcome-error")
    output = page.text_content("#outcome-output")
    assert output.strip()

    # One card per agent, each done with its own cost; the cards add up to the run's cost.
    cards = page.locator("#agents .rl-agent")
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.agentId)") == AGENTS
    card_costs = Decimal(0)
    for agent_id in AGENTS:
        card = page.locator(f'#agents .rl-agent[data-agent-id="{agent_id}"]')
        assert card.get_attribute("data-state") == "done", agent_id
        assert card.locator(".rl-agent-text").text_content().strip(), agent_id
        cost = Decimal(card.locator(".rl-agent-cost").text_content().removeprefix("$"))
        assert cost > 0, agent_id
        card_costs += cost
    assert abs(card_costs - page_cost) <= Decimal("0.000001") * (len(AGENTS) + 1)

    # The log: every event exactly once, in order, ending with the terminal one.
    lines = page.locator("#log li")
    seqs = [int(s) for s in lines.evaluate_all("ls => ls.map(l => l.dataset.seq)")]
    types = lines.evaluate_all("ls => ls.map(l => l.dataset.type)")
    assert len(seqs) >= 10
    assert seqs == list(range(1, len(seqs) + 1))
    assert types[0] == "run.started"
    assert types[-1] == "run.completed"
    assert types.count("run.completed") == 1
    assert {"agent.delegated", "agent.message", "agent.completed", "run.progress"} <= set(types)
    assert page.text_content("#log-count") == str(len(seqs))
    assert page.get_attribute("#run-live", "data-last-seq") == str(seqs[-1])

    # The socket was cut once and the page resumed after the last event it had seen.
    assert len(urls) == 2, urls
    afters = [parse_qs(urlsplit(url).query)["after"] for url in urls]
    assert afters == [["0"], [str(DROP_AFTER)]]
    assert all(urlsplit(url).path == f"/api/runs/{run_id}/stream" for url in urls)

    assert errors == []
    context.close()

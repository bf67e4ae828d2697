"""A real sverm in the embedded mode (its own SQLite file in tmp_path, the in-memory channel
layer, the thread executor) served by Daphne, and Debian's Chromium driven by Playwright.

A missing Chromium or Playwright skips the browser tests locally and fails them when CI=true."""

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import embedded_server_env, free_port, manage, stop, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path(os.environ.get("SVERM_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STAFF_EMAIL = "staff@example.com"


def unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


def artifacts_dir() -> Path:
    """Where screenshots are kept after the run: $SVERM_TEST_ARTIFACTS, else <repo>/.artifacts."""
    return Path(os.environ.get("SVERM_TEST_ARTIFACTS") or ROOT / ".artifacts")


def keep_artifact(path: Path) -> Path:
    target_dir = artifacts_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(path, target_dir / path.name))


@dataclass
class EmbeddedServer:
    base_url: str
    api_key: str
    email: str
    password: str
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    return embedded_server_env(tmp_path, SVERM_SIMULATED_LATENCY="0.3")


@pytest.fixture
def embedded_server(embedded_env, tmp_path) -> Iterator[EmbeddedServer]:
    """migrate + bootstrap into a fresh SQLite file, then Daphne on a free port."""
    password = secrets.token_urlsafe(18)
    manage(embedded_env, "migrate", "--noinput")
    # One argument: a password may start with "-", which would read as an option.
    out = manage(embedded_env, "bootstrap", "--email", STAFF_EMAIL, f"--password={password}")
    match = re.search(r"^API key: (sk-sverm-\S+)$", out, re.M)
    assert match, f"bootstrap printed no API key:\n{out}"

    port = free_port()
    log_path = tmp_path / "daphne.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "sverm.asgi:application"],
            cwd=ROOT, env=embedded_env, stdout=log, stderr=log,
        )  # fmt: skip
    server = EmbeddedServer(
        base_url=f"http://127.0.0.1:{port}",
        api_key=match.group(1),
        email=STAFF_EMAIL,
        password=password,
        log=log_path,
    )
    wait_until_serving(process, server.base_url, log_path)
    try:
        yield server
    finally:
        stop(process)


@pytest.fixture
def browser():
    """Debian's Chromium under Playwright (Playwright's own browser download is not used)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

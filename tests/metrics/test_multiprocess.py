"""The multiprocess mode (PROMETHEUS_MULTIPROC_DIR) with real processes: a scrape adds up what
every process recorded, those that ended or were killed included; open-WebSocket gauges count
only processes still alive, whether one ended normally (it removes its own) or was killed with
SIGKILL (the next scrape on its host removes it); another host's files are left to that host.
(tests/integration/test_metrics_stack.py does the same with Uvicorn and Celery.)"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sverm.metrics import exposition, multiprocess
from tests.metrics.conftest import Scrape

# A scrape reads the database's counts too (the runs, here none).
pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

# A process that records, then waits for a line on stdin (or for being killed) before it ends.
CHILD = """
import os, socket, sys
if len(sys.argv) > 1:
    socket.gethostname = lambda: sys.argv[1]  # another host (another container)
if len(sys.argv) > 2:  # a dead process's file, as if it had had this process's pid
    stale = sys.argv[2]
    mine = f"gauge_livesum_{sys.argv[1]}-{os.getpid()}.db"
    os.rename(stale, os.path.join(os.path.dirname(stale), mine))
from sverm import metrics
metrics.rate_limit_refused(limit="requests_per_minute", scope="key")
metrics.llm_usage_add(provider="p", model="m", tokens_in=10, tokens_out=5, cost_usd=0.25)
metrics.websocket_opened("run")
print("recorded", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def shared_dir(tmp_path, monkeypatch) -> Path:
    """The directory, as this process's scrapes read it (its own metrics stay in memory)."""
    path = tmp_path / "prometheus"
    monkeypatch.setenv(multiprocess.ENV_VAR, str(path))
    return path


def child(shared_dir: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], cwd=ROOT, text=True,
        env={**env, multiprocess.ENV_VAR: str(shared_dir)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout.readline().strip() == "recorded"
    return process


def end(process: subprocess.Popen) -> None:
    process.communicate("\n", timeout=30)
    assert process.returncode == 0


def scraped() -> Scrape:
    body, _content_type = exposition.scrape("")
    return Scrape(body.decode())


def live_files(shared_dir: Path) -> set[str]:
    return {path.name for path in shared_dir.glob("gauge_live*.db")}


def test_a_scrape_adds_up_every_process_and_counts_live_gauges_of_live_ones(shared_dir):
    ends, killed, stays = child(shared_dir), child(shared_dir), child(shared_dir)
    elsewhere = child(shared_dir, "worker-container")
    during = scraped()
    assert during.total("sverm_rate_limit_refusals_total", scope="key") == 4
    assert during.total("sverm_llm_tokens_total", direction="in") == 40
    assert during.total("sverm_llm_cost_usd_total") == 1.0
    assert during.total("sverm_websocket_connections", stream="run") == 4
    host = multiprocess.process_identifier().rsplit("-", 1)[0]
    assert live_files(shared_dir) == {
        f"gauge_livesum_{host}-{ends.pid}.db",
        f"gauge_livesum_{host}-{killed.pid}.db",
        f"gauge_livesum_{host}-{stays.pid}.db",
        f"gauge_livesum_worker-container-{elsewhere.pid}.db",
    }

    end(ends)  # removes its live gauge as it exits
    killed.send_signal(signal.SIGKILL)  # leaves it behind
    killed.wait(timeout=30)
    after = scraped()
    # Counters and histograms are totals: the ended and the killed processes' still count.
    assert after.total("sverm_rate_limit_refusals_total", scope="key") == 4
    assert after.total("sverm_llm_tokens_total", direction="out") == 20
    # Open WebSockets: the live process of this host, and the other host's (not ours to judge).
    assert after.total("sverm_websocket_connections", stream="run") == 2
    assert live_files(shared_dir) == {
        f"gauge_livesum_{host}-{stays.pid}.db",
        f"gauge_livesum_worker-container-{elsewhere.pid}.db",
    }
    end(stays)
    end(elsewhere)
    assert scraped().total("sverm_websocket_connections") == 0


def test_a_process_starting_under_a_dead_ones_identifier_drops_its_live_gauges(shared_dir):
    """A restarted container numbers its processes alike: a live gauge file named after a new
    process's identifier was left by a dead one, and must not add to the new one's values."""
    dead = child(shared_dir, "reused")
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=30)
    left = shared_dir / f"gauge_livesum_reused-{dead.pid}.db"
    assert scraped().total("sverm_websocket_connections") == 1  # another host's: kept

    again = child(shared_dir, "reused", str(left))  # takes the file over, then starts
    assert not left.exists()
    assert scraped().total("sverm_websocket_connections") == 1  # its own one, not 1 + 1
    end(again)
    assert scraped().total("sverm_websocket_connections") == 0

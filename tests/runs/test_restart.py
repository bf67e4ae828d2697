"""The embedded default after a crash: a process dies (os._exit) in the middle of a run, and the
next server started on the same database resumes that run to completion, replaying the calls
the dead process settled, instead of leaving it `running` forever."""

import re
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from tests.processes import ROOT, embedded_server_env, manage, start_embedded_server, stop

API_KEY = re.compile(r"API key: (sk-sverm-\S+)")

CRASH_MID_RUN = """
import os, time
from swarms.models import RunEvent
from swarms.services import run_create
from templates_app.models import SwarmTemplate
from accounts.models import Workspace

workspace = Workspace.objects.get(name="Default")
template = SwarmTemplate.objects.get(pk="research-swarm-v1")
run = run_create(
    workspace_id=workspace.pk, definition=template.definition, task="Norwegian hydrogen economy",
    max_budget_usd=None, created_by=None, template_id="research-swarm-v1",
)
print("RUN", run.pk, flush=True)
deadline = time.monotonic() + 30
while not RunEvent.objects.filter(run_id=run.pk, type="agent.completed").exists():
    assert time.monotonic() < deadline, "no call finished"
    time.sleep(0.05)
os._exit(9)  # the process dies mid-run, as under SIGKILL: no cleanup, no final write
"""


def recovering_database(tmp_path, latency: str) -> tuple[dict[str, str], dict[str, str]]:
    """An embedded database whose lost runs are noticed within seconds: its environment and
    the bootstrap admin's API key headers."""
    embedded_env = embedded_server_env(
        tmp_path,
        SVERM_SIMULATED_LATENCY=latency,
        SVERM_HEARTBEAT_SECONDS="0.5",
        SVERM_STALE_AFTER_SECONDS="2",
        SVERM_REAPER_INTERVAL_SECONDS="0.5",
    )
    manage(embedded_env, "migrate", "--noinput")
    out = manage(embedded_env, "bootstrap", "--email", "crash@example.com", "--plan", "team")
    return embedded_env, {"Authorization": f"Bearer {API_KEY.search(out).group(1)}"}


def shell_that_dies(embedded_env: dict[str, str], script: str) -> str:
    """`manage.py shell -c script` that must end with os._exit(9); the run id it printed."""
    died = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT, env=embedded_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert died.returncode == 9, died.stderr
    return re.search(r"^RUN (\S+)$", died.stdout, re.M).group(1)


def test_a_run_whose_process_died_is_resumed_by_the_next_server(tmp_path):
    embedded_env, headers = recovering_database(tmp_path, latency="0.4")
    run_id = shell_that_dies(embedded_env, CRASH_MID_RUN)

    process, base, _log = start_embedded_server(embedded_env, tmp_path)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            assert http.get(f"/v1/swarms/{run_id}").json()["status"] == "running"  # left behind
            deadline = time.monotonic() + 60
            while (status := http.get(f"/v1/swarms/{run_id}").json())["status"] == "running":
                if time.monotonic() > deadline:
                    pytest.fail(f"the run was not resumed: {status}")
                time.sleep(0.2)
            assert status["status"] == "completed", status
            events = http.get(f"/api/runs/{run_id}/events?limit=100").json()["data"]
            result = http.get(f"/v1/swarms/{run_id}/result").json()
    finally:
        stop(process)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    types = Counter(event["type"] for event in events)
    assert types["run.started"] == 1 and types["run.completed"] == 1
    # Five calls (manager, three researchers, writer), each finished and charged once.
    assert types["agent.completed"] == 5
    assert len(result["cost_report"]["agents"]) == 5
    assert "resumed (attempt 2)" in (tmp_path / "server.log").read_text()


QUEUE_AND_DIE = """
import os
from accounts.models import Workspace
from swarms.services import run_create
from templates_app.models import SwarmTemplate

run = run_create(
    workspace_id=Workspace.objects.get(name="Default").pk,
    definition=SwarmTemplate.objects.get(pk="pipeline-swarm-v1").definition,
    task="Norwegian hydrogen economy", max_budget_usd=None, created_by=None,
    template_id="pipeline-swarm-v1",
)
print("RUN", run.pk, flush=True)
os._exit(9)  # its start went to a queue that died with the process
"""


def test_a_run_whose_start_died_with_its_process_is_started_by_the_next_server(tmp_path):
    embedded_env, headers = recovering_database(tmp_path, latency="0.05")
    # The run's start is sent to an in-memory broker that nobody reads, then the process dies.
    run_id = shell_that_dies({**embedded_env, "SVERM_EXECUTOR": "celery"}, QUEUE_AND_DIE)

    process, base, _log = start_embedded_server(embedded_env, tmp_path)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            deadline = time.monotonic() + 30
            while (status := http.get(f"/api/runs/{run_id}").json())["status"] == "queued":
                if time.monotonic() > deadline:
                    pytest.fail(f"the queued run was never started: {status}")
                time.sleep(0.2)
            deadline = time.monotonic() + 30
            while (status := http.get(f"/v1/swarms/{run_id}").json())["status"] == "running":
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
    finally:
        stop(process)
    assert status["status"] == "completed", status
    assert "still queued: its start is sent again" in (tmp_path / "server.log").read_text()

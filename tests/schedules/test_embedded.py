"""The embedded mode for real: `python -m sverm.server` (SQLite, no Celery) with a 1-second
scheduler tick fires a schedule created over HTTP, each slot once, and its runs complete.

The schedule fires every 2 seconds through cron's sixth (seconds) field, which the server allows
only because this test sets SVERM_SCHEDULE_SECONDS_FIELD (production keeps minute granularity)."""

import re
import time

import httpx

from tests.processes import embedded_server_env, manage, start_embedded_server, stop

API_KEY = re.compile(r"^API key: (sk-sverm-\S+)$", re.M)
WORKSPACE = re.compile(r"^Workspace: .* (wsp_\S+) \(plan", re.M)
DEADLINE_SECONDS = 30


def test_the_embedded_timer_fires_a_schedule_made_over_http(tmp_path):
    env = embedded_server_env(
        tmp_path, SVERM_SCHEDULE_TICK_SECONDS="1", SVERM_SCHEDULE_SECONDS_FIELD="1",
        SVERM_SIMULATED_LATENCY="0", SVERM_RATE_LIMITS="0",
    )  # fmt: skip
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", "cron@example.com", "--plan", "team")
    key, workspace_id = API_KEY.search(out).group(1), WORKSPACE.search(out).group(1)
    process, base, _ = start_embedded_server(env, tmp_path)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
            swarm = http.post("/api/swarms", json={"workspaceId": workspace_id, "name": "Tick"})
            assert swarm.status_code == 201, swarm.text
            made = http.post("/api/schedules", json={
                "workspaceId": workspace_id, "name": "Every 2 s", "swarmId": swarm.json()["id"],
                "task": "Say the time", "cron": "* * * * * */2", "maxBudgetUsd": "1",
                "overlapPolicy": "queue", "maxRuns": 3,
            })  # fmt: skip
            assert made.status_code == 201, made.text
            schedule = made.json()
            assert schedule["nextRunAt"] is not None and schedule["state"] == "active"

            deadline = time.monotonic() + DEADLINE_SECONDS
            while True:
                shown = http.get(f"/api/schedules/{schedule['id']}").json()
                if shown["state"] == "ended":
                    break
                assert time.monotonic() < deadline, f"still {shown}"
                time.sleep(0.5)
            assert (shown["runsMade"], shown["nextRunAt"]) == (3, None)

            firings = http.get(f"/api/schedules/{schedule['id']}/firings").json()["data"]
            started = [row for row in firings if row["outcome"] == "started"]
            assert len(started) == 3
            slots = [row["slotAt"] for row in firings]
            assert len(set(slots)) == len(slots)  # no slot twice
            for row in started:
                deadline = time.monotonic() + DEADLINE_SECONDS
                while http.get(f"/api/runs/{row['runId']}").json()["status"] != "completed":
                    assert time.monotonic() < deadline, row
                    time.sleep(0.2)
    finally:
        stop(process)

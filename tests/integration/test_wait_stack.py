"""`GET /api/runs/{id}/wait` in docker-compose's layout (Uvicorn x2, a Celery worker, beat, on
PostgreSQL and Redis) with a pool of two connections per process: forty scripts waiting at once
on five runs hold no connection while they wait (each process stays within its pool, and other
requests are answered meanwhile), and each waiter is answered with its run completed."""

import asyncio

import httpx
import pytest

from tests.integration.test_concurrent_creates import ConnectionSampler, team_limits

pytestmark = pytest.mark.integration

POOL = 2
RUNS = 5
WAITERS_PER_RUN = 8


def test_many_waiters_hold_no_connection_and_all_see_their_run_end(start_production_stack):
    stack = start_production_stack(DB_POOL_MAX_SIZE=str(POOL), SVERM_SIMULATED_LATENCY="0.4")
    team_limits(concurrent_runs=RUNS, requests_per_minute=1000)
    headers = stack.api_key()

    async def scenario():
        async with httpx.AsyncClient(base_url=stack.base, headers=headers, timeout=90) as http:
            run_ids = []
            for n in range(RUNS):
                created = await http.post("/v1/swarms", json={
                    "template": "research-swarm-v1", "task": f"Wind farm {n}",
                    "max_budget_usd": 2,
                })  # fmt: skip
                assert created.status_code == 201, created.text
                run_ids.append(created.json()["swarm_id"])

            async def wait(run_id: str) -> dict:
                response = await http.get(f"/api/runs/{run_id}/wait", params={"timeout": 60})
                assert response.status_code == 200, response.text
                return response.json()

            waits = [asyncio.create_task(wait(run_id))
                     for run_id in run_ids for _ in range(WAITERS_PER_RUN)]  # fmt: skip
            await asyncio.sleep(0.5)
            # While forty requests wait, the server answers others.
            during = await http.get(f"/api/runs/{run_ids[0]}")
            assert during.status_code == 200
            still_waiting = sum(not task.done() for task in waits)
            bodies = await asyncio.gather(*waits)
            return run_ids, bodies, still_waiting

    with ConnectionSampler(stack) as sampler:
        run_ids, bodies, still_waiting = asyncio.run(scenario())

    assert still_waiting > 0, "the runs ended before the waiters were all waiting"
    assert [body["status"] for body in bodies] == ["completed"] * (RUNS * WAITERS_PER_RUN)
    assert {body["id"] for body in bodies} == set(run_ids)
    web = set(stack.pids("web"))
    peaks = {pid: peak for pid, peak in sampler.peak.items() if pid in web}
    assert peaks and max(peaks.values()) <= POOL, peaks
    assert "Traceback" not in stack.log("web")

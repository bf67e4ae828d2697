"""Creating runs under load in docker-compose's layout (Uvicorn x2, a Celery worker with 100
thread slots, beat) while runs execute: creation and the worker's ledger writes never deadlock,
every POST is answered 201 or 429 (never 500), each process holds a bounded number of PostgreSQL
connections, and every run created ends."""

import asyncio
import threading
import time
from collections import Counter

import httpx
import pytest
import redis
from django.conf import settings

from accounts.models import Plan, PlanLimits
from swarms.models import Run
from tests.integration.conftest import REDIS_URL

pytestmark = pytest.mark.integration

TERMINAL = ("completed", "failed", "cancelled")
START = {"template": "research-swarm-v1", "task": "Investigate Norwegian hydrogen economy"}


def pool_ceiling() -> int:
    """The connections a process may hold: the pool's max size (settings.DATABASES)."""
    return settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]


class ConnectionSampler:
    """Samples the stack's PostgreSQL connections per process while the block runs."""

    def __init__(self, stack):
        self.stack = stack
        self.peak: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid, count in self.stack.database_connections().items():
                self.peak[pid] = max(self.peak[pid], count)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def team_limits(*, concurrent_runs: int, requests_per_minute: int = 300) -> None:
    """The team plan's limits as given, with the stack's cached copy (Redis) forgotten."""
    PlanLimits.objects.update_or_create(
        plan=Plan.TEAM,
        defaults={"requests_per_minute": requests_per_minute, "concurrent_runs": concurrent_runs,
                  "runs_per_day": None},
    )  # fmt: skip
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter("*sverm:plan-limits:*"):
            client.delete(key)
    finally:
        client.close()


def wait_all_ended(run_ids: list[str], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(Run.objects.filter(pk__in=run_ids).values_list("status", flat=True))
        if sum(statuses[status] for status in TERMINAL) == len(run_ids):
            return dict(statuses)
        if time.monotonic() > deadline:
            pytest.fail(f"runs still not ended after {timeout:.0f} s: {dict(statuses)}")
        time.sleep(0.25)


def created_ids(responses: list[httpx.Response]) -> list[str]:
    return [r.json()["swarm_id"] for r in responses if r.status_code == 201]


def describe(responses: list[httpx.Response]) -> str:
    bad = [f"{r.status_code} {r.text[:300]}" for r in responses if r.status_code not in (201, 429)]
    return f"{Counter(r.status_code for r in responses)}; not 201/429: {bad[:5]}"


async def post_at_once(base: str, headers: dict[str, str], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        return await asyncio.gather(
            *(http.post("/v1/swarms", json=START, headers=headers) for _ in range(count))
        )


def test_100_posts_at_once_while_runs_execute_all_create_and_end(start_production_stack):
    stack = start_production_stack(SVERM_SIMULATED_LATENCY="1.0")
    # Room for all of them at once: no 429 either, so every POST must create its run.
    team_limits(concurrent_runs=200, requests_per_minute=10_000)
    headers = stack.api_key(plan="team")
    with httpx.Client(base_url=stack.base, timeout=60) as http:
        earlier = [http.post("/v1/swarms", json=START, headers=headers) for _ in range(10)]
    assert [r.status_code for r in earlier] == [201] * 10, describe(earlier)
    background = created_ids(earlier)
    deadline = time.monotonic() + 30
    while not Run.objects.filter(pk__in=background, status="running").exists():
        assert time.monotonic() < deadline, "the earlier runs never started"
        time.sleep(0.1)

    with ConnectionSampler(stack) as sampler:
        responses = asyncio.run(post_at_once(stack.base, headers, 100))

    assert Counter(r.status_code for r in responses) == {201: 100}, describe(responses)
    ids = created_ids(responses)
    assert wait_all_ended(ids + background, timeout=180) == {"completed": 110}
    ceiling = pool_ceiling()
    assert sampler.peak and max(sampler.peak.values()) <= ceiling, (sampler.peak, ceiling)
    assert "deadlock" not in stack.log("web") + stack.log("worker")


def test_8_clients_posting_12_runs_each_while_runs_execute_never_get_500(
    start_production_stack,
):
    stack = start_production_stack(SVERM_SIMULATED_LATENCY="1.0")
    team_limits(concurrent_runs=50)  # seed 002's team plan: the burst goes past it (429s)
    headers = stack.api_key(plan="team")
    responses: list[httpx.Response] = []

    def client() -> None:
        with httpx.Client(base_url=stack.base, timeout=120) as http:
            for _ in range(12):
                responses.append(http.post("/v1/swarms", json=START, headers=headers))
                time.sleep(0.3)  # a client's pace: the test is about posts spread over seconds

    with ConnectionSampler(stack) as sampler:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    statuses = Counter(r.status_code for r in responses)
    assert statuses[201] + statuses[429] == 96, describe(responses)
    assert statuses[201] >= 50, describe(responses)
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limited", refused.text
    ids = created_ids(responses)
    assert wait_all_ended(ids, timeout=180) == {"completed": len(ids)}
    ceiling = pool_ceiling()
    assert sampler.peak and max(sampler.peak.values()) <= ceiling, (sampler.peak, ceiling)
    assert "deadlock" not in stack.log("web") + stack.log("worker")

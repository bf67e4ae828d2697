"""The fast status reads in docker-compose's layout (two Uvicorn workers on PostgreSQL and
Redis): the answer Django would give, from any worker, and a key revoked by another process
refused within SVERM_FAST_READ_CACHE_SECONDS, as the README says."""

import time

import httpx
import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CACHE_SECONDS = 2.0


def test_a_finished_runs_status_is_the_views_and_a_revoked_key_stops_within_the_cache_time(
    start_production_stack,
):
    stack = start_production_stack(
        SVERM_SIMULATED_LATENCY="0.05", SVERM_FAST_READ_CACHE_SECONDS=str(CACHE_SECONDS)
    )
    headers = stack.api_key()
    with httpx.Client(base_url=stack.base, headers=headers, timeout=30) as http:
        created = http.post("/v1/swarms", json={"template": "research-swarm-v1", "task": "Tides"})
        assert created.status_code == 201, created.text
        path = f"/v1/swarms/{created.json()['swarm_id']}"
        wait_for(lambda: http.get(path).json()["status"] == "completed", timeout=60)
        # Many reads over keep-alive connections reach both workers: each answers as Django.
        through_django = http.get(path, headers={"Cookie": "unrelated=1"})
        fast = [http.get(path) for _ in range(40)]
        assert {answer.status_code for answer in fast} == {200}
        assert {answer.content for answer in fast} == {through_django.content}
        assert through_django.json()["status"] == "completed"

        raw = headers["Authorization"].removeprefix("Bearer ")
        key = api_key_authenticate(raw_key=raw)
        # Revoked in this process, behind the servers' backs: no signal reaches them.
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        revoked_at = time.monotonic()
        assert http.get(path, headers={"Cookie": "unrelated=1"}).status_code == 401  # Django's
        # A worker may serve the key it checked for up to the cache time; none serves it after.
        time.sleep(max(revoked_at + CACHE_SECONDS + 0.5 - time.monotonic(), 0))
        later = [http.get(path) for _ in range(20)]
        assert {answer.status_code for answer in later} == {401}
        assert later[0].json()["error"]["code"] == "unauthorized"

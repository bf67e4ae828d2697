"""The production cache (sverm/cache.py) while Redis is unreachable: every operation is served
from the process's memory, the outage is logged once, and Redis is tried again only every
RETRY_SECONDS. Needs no Redis: the cache points at a port nothing listens on."""

import logging
import uuid
from unittest import mock

import pytest
from django.core.cache.backends.redis import RedisCache

from sverm import cache as failsafe
from sverm.cache import FailSafeRedisCache
from tests.processes import free_port


@pytest.fixture
def down():
    location = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    backend = FailSafeRedisCache(location, {"KEY_PREFIX": uuid.uuid4().hex})
    yield backend
    backend.outage.succeeded()


def test_every_operation_is_served_from_memory_and_the_outage_logged_once(down, caplog):
    with caplog.at_level(logging.WARNING, logger="sverm.cache"):
        down.set("a", 1, 30)
        assert down.get("a") == 1
        assert down.add("a", 2) is False and down.add("b", 2) is True
        assert down.incr("a") == 2
        assert down.get_many(["a", "b", "c"]) == {"a": 2, "b": 2}
        assert down.has_key("b")
        down.set_many({"c": 3})
        assert down.touch("c", 60)
        assert down.delete("c") and down.get("c") is None
        down.delete_many(["a", "b"])
        assert down.get("a", "gone") == "gone"
        with pytest.raises(ValueError):
            down.incr("missing")  # as on Redis
    [record] = caplog.records
    assert "Redis is unreachable" in record.getMessage()
    assert "s3cret" not in record.getMessage()  # the URL without its credentials


def test_redis_is_tried_again_only_every_retry_seconds(down):
    tries = []
    real_get = RedisCache.get

    def counted_get(self, *args, **kwargs):
        tries.append(args)
        return real_get(self, *args, **kwargs)

    with mock.patch.object(RedisCache, "get", counted_get):
        assert down.get("k") is None  # found unreachable
        assert down.get("k") is None
        assert len(tries) == 1
        with mock.patch.object(failsafe.time, "monotonic", return_value=1e12):
            assert down.get("k") is None  # RETRY_SECONDS later: tried again
        assert len(tries) == 2

"""Settings for the benchmark's servers and its own process: sverm's, with the bench routes
(bare baseline views, an offset-paginated swarm list) mounted in front of sverm's URLs."""

import os

from sverm.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

if os.environ.get("BENCH_DB_POOL") and DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    # The what-if of benchmark 8: Django's psycopg pool instead of a connection per request.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 4}  # noqa: F405

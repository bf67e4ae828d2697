"""Settings for the benchmark's servers and its own process: sverm's, with the bench routes
(bare baseline views, an offset-paginated swarm list) mounted in front of sverm's URLs."""

from sverm.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

"""What a scrape of `/metrics` answers: every process's recorded metrics (this one's, or with
PROMETHEUS_MULTIPROC_DIR the shared directory's) and the collectors read at scrape time."""

import logging
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from sverm.metrics import RECORDED, multiprocess

logger = logging.getLogger(__name__)


class ScrapeCollector(Protocol):
    """Reads its metrics when `/metrics` is scraped (e.g. counts in the database); `names` are
    the metric names it may yield."""

    names: tuple[str, ...]

    def collect(self) -> Iterable[Metric]: ...


_scrape_collectors: dict[str, ScrapeCollector] = {}


def scrape_collector_register(key: str, collector: ScrapeCollector) -> None:
    """Add a collector to every scrape (again under the same key: replaced)."""
    _scrape_collectors[key] = collector


class _Guarded:
    """A scrape collector whose failure (its database away) leaves its metrics out of this
    scrape, logged, rather than failing the whole scrape."""

    def __init__(self, key: str, collector: ScrapeCollector) -> None:
        self.key, self.collector = key, collector

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self.collector.collect())
        except Exception as exc:
            logger.warning("metrics collector %s failed (%r); left out of this scrape",
                           self.key, exc)  # fmt: skip
            return iter(())
        return iter(metrics)


class _ThisProcess:
    """The single-process mode's own registry, as one collector of the scrape's."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if multiprocess.directory() is not None:
        multiprocess.remove_dead_processes()
        MultiProcessCollector(registry, path=multiprocess.directory())
    else:
        registry.register(_ThisProcess())
    for key, collector in _scrape_collectors.items():
        registry.register(_Guarded(key, collector))
    return registry


def scrape(accept: str) -> tuple[bytes, str]:
    """The exposition's body and content type, in the format `accept` prefers (Prometheus'
    text format, or OpenMetrics when asked for)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(scrape_registry()), content_type


def exported_series() -> dict[str, set[str]]:
    """Every metric sverm exports, by name, with the names of its series (a histogram's
    `_bucket`, `_sum` and `_count`, a counter's `_total`): what a dashboard may query."""
    series = {metric._name: _series_names(metric) for metric in RECORDED}
    for collector in _scrape_collectors.values():
        series.update({name: {name} for name in collector.names})
    return series


def _series_names(metric: MetricWrapperBase) -> set[str]:
    name, kind = metric._name, metric._type
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}

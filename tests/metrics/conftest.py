"""`/metrics` read as Prometheus reads it: scraped over HTTP and parsed with prometheus-client's
own parser. The suite's process keeps one registry for all its tests, so tests compare a scrape
taken before with one taken after (what the database counts at scrape time is the test's own)."""

from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.limits.conftest import clock, plan_rows, rate_limits_on  # noqa: F401  (fixtures)
from tests.runs.conftest import executing, not_executing  # noqa: F401  (fixtures)
from tests.webhooks.conftest import hooks, receiver  # noqa: F401  (fixtures)


class Scrape:
    """One scrape's samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0: none)."""
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and labels.items() <= sample_labels.items()
        )

    def names(self) -> set[str]:
        return {name for name, _labels, _value in self.samples}

    def label_values(self, name: str, label: str) -> set[str]:
        return {labels[label] for sample, labels, _ in self.samples if sample == name}


def scrape(client: APIClient | None = None, **extra) -> Scrape:
    """GET /metrics as this host (allowed by default) and parse it."""
    response = (client or APIClient()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    return Scrape(response.content.decode())


def increase(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)

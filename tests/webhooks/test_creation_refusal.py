"""Creation-time refusal in the run serializers. Skipped until `webhook_url_validator` is wired
into swarms/serializers.py (V1RunCreateSerializer.webhook_url, RunCreateSerializer.webhookUrl)."""

import pytest

from swarms.serializers import RunCreateSerializer, V1RunCreateSerializer
from swarms.webhooks.ssrf import webhook_url_validator

SERIALIZERS = [
    (V1RunCreateSerializer, "webhook_url", {"template": "research-swarm-v1", "task": "t"}),
    (RunCreateSerializer, "webhookUrl", {"task": "t"}),
]


def _wired(serializer, field) -> bool:
    return webhook_url_validator in serializer().fields[field].validators


@pytest.mark.parametrize(("serializer", "field", "base"), SERIALIZERS)
@pytest.mark.parametrize(
    "url", ["http://127.1/x", "http://0x7f000001/x", "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/latest", "http://localhost/x"],
)  # fmt: skip
def test_non_public_webhook_urls_are_refused_at_creation(serializer, field, base, url, settings):
    if not _wired(serializer, field):
        pytest.skip("webhook_url_validator is not wired into swarms/serializers.py yet")
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    data = serializer(data={**base, field: url})
    assert not data.is_valid()
    assert field in data.errors


@pytest.mark.parametrize(("serializer", "field", "base"), SERIALIZERS)
def test_public_webhook_urls_pass(serializer, field, base, settings):
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = []
    data = serializer(data={**base, field: "https://93.184.216.34/hook"})
    assert data.is_valid(), data.errors

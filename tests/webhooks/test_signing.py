"""Standard Webhooks signing, secrets (encrypted, rotatable) and the payload."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from swarms.models import WebhookSecret
from swarms.webhooks import delivery, signing

from .conftest import verify


def test_signature_matches_the_standard_webhooks_test_vector():
    # The example from the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = signing.sign(
        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_independently():
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"swarm_id":"run_x"}'
    headers = signing.signed_headers([secret], "msg_1", 1700000000, body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(signing.new_secret(), headers, body)


@pytest.mark.django_db
def test_secret_is_stored_encrypted_and_rotation_signs_with_both(workspace):
    first = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    row = WebhookSecret.objects.get(workspace=workspace)
    assert first not in row.current_encrypted
    assert first[6:] not in row.current_encrypted
    assert signing.signing_secrets(workspace.pk) == [first]

    second = signing.webhook_secret_rotate(workspace_id=workspace.pk)
    assert second != first
    assert signing.signing_secrets(workspace.pk) == [second, first]
    body = b"{}"
    headers = signing.signed_headers(
        signing.signing_secrets(workspace.pk), "msg_2", 1700000000, body
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(first, headers, body) and verify(second, headers, body)

    # After the grace period only the new secret signs.
    WebhookSecret.objects.filter(workspace=workspace).update(
        previous_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert signing.signing_secrets(workspace.pk) == [second]


@pytest.mark.django_db
def test_a_workspace_without_a_secret_gets_one_when_it_first_signs(workspace):
    found = signing.signing_secrets(workspace.pk)
    assert len(found) == 1 and found[0].startswith("whsec_")
    assert signing.signing_secrets(workspace.pk) == found


def test_secret_survives_a_secret_key_rotation_via_fallbacks(settings):
    token = signing._encrypt("whsec_abc")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-key"
    assert signing._decrypt(token) == "whsec_abc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0", 0.0), ("-5", 0.0), ("999999", 86400.0), ("soon", None), (None, None)],
)
def test_retry_after_seconds(value, expected):
    assert delivery.retry_after_seconds(value) == expected


def test_retry_after_http_date():
    from email.utils import format_datetime

    value = format_datetime(timezone.now() + timedelta(seconds=120), usegmt=True)
    assert 100 < delivery.retry_after_seconds(value) <= 120


def test_default_schedule_is_the_standard_webhooks_one():
    from sverm import settings as defaults

    assert defaults.SVERM_WEBHOOK_RETRY_SCHEDULE == [
        0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600,
    ]  # fmt: skip

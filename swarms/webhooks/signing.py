"""Webhook signing per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with one `whsec_…` secret per workspace (`WebhookSecret`), shown once by
`webhook_secret_rotate`. Secrets must be readable to sign, so they are stored Fernet-encrypted
under a key derived from SECRET_KEY (SECRET_KEY_FALLBACKS still decrypt) and never logged. After a
rotation the previous secret keeps signing, alongside the new one, until its grace period ends.
"""

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from sverm.sealed import seal, unseal
from swarms.models import WebhookSecret

logger = logging.getLogger("sverm.webhooks")

SECRET_PREFIX = "whsec_"
ROTATION_GRACE = timedelta(hours=24)
USER_AGENT = "sverm-webhooks/1"


# The purpose the secrets are sealed under (sverm/sealed.py): changing it loses every secret.
SEALED_AS = "sverm-webhooks"


def _encrypt(secret: str) -> str:
    return seal(SEALED_AS, secret)


def _decrypt(token: str) -> str:
    return unseal(SEALED_AS, token)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_secret_rotate(*, workspace_id: str, grace: timedelta = ROTATION_GRACE) -> str:
    """Create the workspace's secret, or replace it keeping the old one signing for `grace`.
    Returns the new secret: the only time it is shown."""
    secret, _row = webhook_secret_issue(workspace_id=workspace_id, grace=grace)
    return secret


def webhook_secret_issue(
    *, workspace_id: str, grace: timedelta = ROTATION_GRACE
) -> tuple[str, WebhookSecret]:
    """`webhook_secret_rotate`, also returning the row as saved (the API shows its dates beside
    the new secret, from the same write)."""
    secret = new_secret()
    now = timezone.now()
    with transaction.atomic():
        row = WebhookSecret.objects.select_for_update().filter(workspace_id=workspace_id).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = WebhookSecret.objects.create(
                        workspace_id=workspace_id, current_encrypted=_encrypt(secret)
                    )
                    _secret_audit(row, before=None)
                return secret, row
            except IntegrityError:
                # Created concurrently (another rotation, or a first delivery): rotate that one.
                row = WebhookSecret.objects.select_for_update().get(workspace_id=workspace_id)
        before = {"rotated_at": row.rotated_at, "previous_expires_at": row.previous_expires_at}
        row.previous_encrypted = row.current_encrypted
        row.previous_expires_at = now + grace
        row.current_encrypted = _encrypt(secret)
        row.rotated_at = now
        row.save()
        _secret_audit(row, before=before)
    return secret, row


def _secret_audit(row: WebhookSecret, *, before: dict | None) -> None:
    """`webhook_secret.rotate` (its first issue too, with no `before`): the dates, never the
    secrets."""
    audit_record(
        action="webhook_secret.rotate", workspace_id=row.workspace_id,
        target_type="webhook_secret", target_id=row.workspace_id, before=before,
        after={"rotated_at": row.rotated_at, "previous_expires_at": row.previous_expires_at},
    )  # fmt: skip


@dataclass(frozen=True)
class WebhookSecretInfo:
    """What may be shown about a workspace's secret: never the secret itself."""

    workspace_id: str
    exists: bool
    created_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None


def webhook_secret_info(
    *, workspace_id: str, row: WebhookSecret | None = None
) -> WebhookSecretInfo:
    """The secret's dates; `previous_valid_until` only while the previous secret still signs."""
    if row is None:
        row = WebhookSecret.objects.filter(workspace_id=workspace_id).first()
    if row is None:
        return WebhookSecretInfo(workspace_id, False, None, None, None)
    previous_until = row.previous_expires_at
    if not row.previous_encrypted or previous_until is None or previous_until <= timezone.now():
        previous_until = None
    return WebhookSecretInfo(workspace_id, True, row.created_at, row.rotated_at, previous_until)


def signing_secrets(workspace_id: str) -> list[str]:
    """The secrets that sign now: the current one, then the previous one during its grace.
    A workspace without a secret gets one (read it by rotating)."""
    row = WebhookSecret.objects.filter(workspace_id=workspace_id).first()
    if row is None:
        webhook_secret_rotate(workspace_id=workspace_id)
        row = WebhookSecret.objects.get(workspace_id=workspace_id)
    found = [_decrypt(row.current_encrypted)]
    if (
        row.previous_encrypted
        and row.previous_expires_at
        and row.previous_expires_at > (timezone.now())
    ):
        try:
            found.append(_decrypt(row.previous_encrypted))
        except InvalidToken:
            logger.warning("previous webhook secret of %s cannot be decrypted", workspace_id)
    return found


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{msg_id}.{timestamp}.{body}` under the `whsec_` key."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }

"""Models of the plumbing every app shares: the record behind `Idempotency-Key`
(sverm/api/idempotency.py)."""

from django.db import models
from django.utils import timezone


class IdempotencyStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"


class IdempotencyRecord(models.Model):
    """The first response to a run-creating POST sent with an `Idempotency-Key`, replayed to
    retries of the same request for 24 h (see sverm.api.idempotency). Expired rows count as
    absent and are replaced by the next request with their key."""

    # Named, not imported: the plumbing imports no app; keys are per workspace, the tenant.
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="idempotency_records"
    )
    key = models.CharField(max_length=255)
    # Method and route name, e.g. `POST v1-swarm-list`: one key on two endpoints never collides.
    endpoint = models.CharField(max_length=200)
    # SHA-256 (hex) of the method, path and canonical JSON body.
    request_fingerprint = models.CharField(max_length=64)
    status = models.CharField(
        max_length=20, choices=IdempotencyStatus.choices, default=IdempotencyStatus.PROCESSING
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        # The table swarms created (swarms/migrations/0004): the model moved, its rows did not.
        db_table = "swarms_idempotencyrecord"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "key", "endpoint"], name="idempotency_record_unique"
            )
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expires")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key} ({self.status})"

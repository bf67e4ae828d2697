"""Wire shapes of the webhook endpoints on `/api` (camelCase): delivery attempts, the workspace
secret (shown once, at rotation) and the delivery state of endpoint URLs."""

from rest_framework import serializers

from sverm.api.serializers import InputSerializer
from swarms.engine.events import RUN_COMPLETED
from swarms.models import WebhookDelivery, WebhookEndpoint
from swarms.webhooks.signing import ROTATION_GRACE

MAX_GRACE_SECONDS = 7 * 24 * 3600


class WebhookDeliverySerializer(serializers.ModelSerializer):
    runId = serializers.CharField(source="run_id")
    messageId = serializers.CharField(
        source="message_id",
        help_text="The `webhook-id` header: the same for every attempt at one message.",
    )
    attempt = serializers.IntegerField(help_text="1 for the first attempt at the message.")
    eventType = serializers.CharField(source="event_type", help_text=f"e.g. `{RUN_COMPLETED}`.")
    statusCode = serializers.IntegerField(
        source="status_code", allow_null=True, help_text="Null when no response was received."
    )
    success = serializers.BooleanField(help_text="The endpoint answered 2xx.")
    latencyMs = serializers.IntegerField(source="latency_ms", allow_null=True)
    error = serializers.CharField(allow_blank=True, help_text="Why the attempt failed, if it did.")
    manual = serializers.BooleanField(help_text="A manual redelivery (not retried).")
    nextAttemptAt = serializers.DateTimeField(
        source="next_attempt_at", allow_null=True,
        help_text="When the retry this attempt scheduled is due; null when none was scheduled.",
    )  # fmt: skip
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "runId", "messageId", "attempt", "eventType", "url", "statusCode", "success",
            "latencyMs", "error", "manual", "nextAttemptAt", "createdAt",
        ]  # fmt: skip
        read_only_fields = fields


class WebhookRedeliveryAcceptedSerializer(serializers.Serializer):
    runId = serializers.CharField()
    messageId = serializers.CharField(
        help_text="The message being sent again (its `webhook-id`); the attempt appears in "
        "`GET /api/runs/{run_id}/webhook-deliveries` with `manual: true`."
    )


class WebhookSecretSerializer(serializers.Serializer):
    """The workspace secret's dates; the secret itself is only ever in the rotation response."""

    workspaceId = serializers.CharField(source="workspace_id")
    exists = serializers.BooleanField(
        help_text="False until the first rotation or the first delivery (which creates one)."
    )
    createdAt = serializers.DateTimeField(source="created_at", allow_null=True)
    rotatedAt = serializers.DateTimeField(source="rotated_at", allow_null=True)
    previousValidUntil = serializers.DateTimeField(
        source="previous_valid_until", allow_null=True,
        help_text="Until when the previous secret still signs deliveries (beside the current "
        "one); null when only the current secret signs.",
    )  # fmt: skip


class WebhookSecretCreatedSerializer(WebhookSecretSerializer):
    secret = serializers.CharField(
        help_text="The new `whsec_…` signing secret. Shown only in this response; store it now."
    )


class WebhookSecretRotateSerializer(InputSerializer):
    gracePeriodSeconds = serializers.IntegerField(
        min_value=0, max_value=MAX_GRACE_SECONDS,
        default=int(ROTATION_GRACE.total_seconds()),
        help_text="How long the previous secret keeps signing beside the new one (default "
        "86400, one day; 0 stops it at once, e.g. after a leak).",
    )  # fmt: skip


class WebhookEndpointSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    disabled = serializers.SerializerMethodField(
        help_text="Deliveries to this URL are skipped (it answered 410 Gone)."
    )
    disabledAt = serializers.DateTimeField(source="disabled_at", allow_null=True)
    disabledReason = serializers.CharField(source="disabled_reason", allow_blank=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "workspaceId", "url", "disabled", "disabledAt", "disabledReason", "createdAt",
        ]  # fmt: skip
        read_only_fields = fields

    def get_disabled(self, endpoint: WebhookEndpoint) -> bool:
        return endpoint.disabled_at is not None

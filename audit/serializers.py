"""The audit trail on `/api`: camelCase, like every `/api` body; read only."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import ActorType, AuditEvent


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class ChangedFieldsField(serializers.JSONField):
    """The changed fields' values (model field names; Decimals as strings, date-times as ISO
    8601); null for a creation's `before` and a deletion's `after`."""


class AuditEventSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(
        source="workspace_id", allow_null=True, help_text="Null for platform-wide actions."
    )
    actorType = serializers.ChoiceField(
        source="actor_type", choices=ActorType.choices,
        help_text="`user` (a JWT), `api_key`, `admin` (the Django admin) or `system`.",
    )  # fmt: skip
    actorId = serializers.CharField(source="actor_id", help_text="The user's or API key's id.")
    actorLabel = serializers.CharField(
        source="actor_label", help_text="The user's email or the API key's name."
    )
    action = serializers.CharField(help_text="`<resource>.<verb>`, e.g. `swarm.update`.")
    targetType = serializers.CharField(source="target_type")
    targetId = serializers.CharField(source="target_id")
    before = ChangedFieldsField(allow_null=True)
    after = ChangedFieldsField(allow_null=True)
    ip = serializers.IPAddressField(allow_null=True, help_text="The client's address.")
    correlationId = serializers.CharField(
        source="correlation_id", help_text="The request's `X-Request-ID` (empty: no request)."
    )
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = AuditEvent
        fields = [
            "id", "workspaceId", "actorType", "actorId", "actorLabel", "action", "targetType",
            "targetId", "before", "after", "ip", "correlationId", "createdAt",
        ]  # fmt: skip
        read_only_fields = fields

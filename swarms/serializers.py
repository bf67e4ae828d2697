"""Wire shapes for `/api/swarms`, field for field as seed 003 (camelCase)."""

from rest_framework import serializers

from sverm.api.serializers import InputSerializer
from swarms.models import RetentionTier, Swarm, SwarmVersion

MAX_MODELS = 10


class SwarmSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    defaultVersionId = serializers.CharField(source="default_version_id", allow_null=True)
    createdBy = serializers.CharField(source="created_by_id", allow_null=True)
    runtimeUserId = serializers.CharField(source="runtime_user_id", allow_null=True)
    deletedAt = serializers.DateTimeField(source="deleted_at", allow_null=True)
    retentionTier = serializers.CharField(source="retention_tier")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Swarm
        fields = [
            "id",
            "workspaceId",
            "name",
            "description",
            "defaultVersionId",
            "createdBy",
            "runtimeUserId",
            "deletedAt",
            "retentionTier",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = fields


def _models_field(**kwargs):
    return serializers.ListField(
        child=serializers.CharField(max_length=100),
        min_length=1,
        max_length=MAX_MODELS,
        help_text="Model names its agents use, e.g. `gpt-4o-mini`.",
        **kwargs,
    )


class SwarmCreateSerializer(InputSerializer):
    workspaceId = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    instructions = serializers.CharField(
        max_length=100_000, required=False, allow_blank=True,
        help_text="Shared system instructions for its agents.",
    )  # fmt: skip
    models = _models_field(required=False)
    retentionTier = serializers.ChoiceField(choices=RetentionTier.choices, required=False)


class SwarmUpdateSerializer(InputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    runtimeUserId = serializers.CharField(max_length=32, required=False, allow_null=True)
    defaultVersionId = serializers.CharField(max_length=32, required=False)
    retentionTier = serializers.ChoiceField(choices=RetentionTier.choices, required=False)


class SwarmVersionSerializer(serializers.ModelSerializer):
    swarmId = serializers.CharField(source="swarm_id")
    models = serializers.ListField(source="model_names", child=serializers.CharField())
    createdBy = serializers.CharField(source="created_by_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = SwarmVersion
        fields = [
            "id", "swarmId", "number", "instructions", "models", "definition",
            "createdBy", "createdAt",
        ]  # fmt: skip
        read_only_fields = fields


class SwarmVersionCreateSerializer(InputSerializer):
    instructions = serializers.CharField(max_length=100_000, required=False, allow_blank=True)
    models = _models_field(required=False)
    setDefault = serializers.BooleanField(
        default=False, help_text="Make the new version the swarm's default."
    )



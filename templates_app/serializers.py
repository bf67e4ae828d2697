"""Wire shapes for `/api/templates` (camelCase) and `/v1/templates` (seed 002, snake_case)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from sverm.api.serializers import InputSerializer
from swarms.providers import price_map
from templates_app.models import TEMPLATE_ID_HELP, TEMPLATE_ID_PATTERN, SwarmTemplate
from templates_app.services import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, estimated_cost_range

COST_RANGE_HELP = (
    'Expected to worst-case cost of a typical task at current prices, e.g. "$0.05 - $0.50"; '
    '"unknown" when a model it uses has no price.'
)
SOURCE_HELP = (
    "Send exactly one of `definition` (an object) or `yaml` (its YAML text, at most 64 KiB). "
    "Top-level `name` and `description` keys in it are template metadata."
)


class _CostRangeMixin:
    """Prices are looked up once per response, not once per template."""

    def _cost_range(self, template: SwarmTemplate) -> str:
        root = self.root if self.root is not None else self
        if not hasattr(root, "_prices"):
            root._prices = price_map()
        return estimated_cost_range(template.definition, prices=root._prices)


class TemplateSerializer(_CostRangeMixin, serializers.ModelSerializer):
    """A swarm template: built in (`workspaceId` null, read-only) or a workspace's."""

    workspaceId = serializers.CharField(source="workspace_id", allow_null=True)
    builtIn = serializers.BooleanField(source="built_in")
    definition = serializers.DictField()
    estimatedCostRange = serializers.SerializerMethodField(help_text=COST_RANGE_HELP)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = SwarmTemplate
        fields = [
            "id", "workspaceId", "name", "description", "topology", "builtIn", "definition",
            "yaml", "estimatedCostRange", "createdAt", "updatedAt",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_estimatedCostRange(self, template: SwarmTemplate) -> str:
        return self._cost_range(template)


def _definition_field():
    return serializers.DictField(required=False, help_text=SOURCE_HELP)


def _yaml_field():
    return serializers.CharField(required=False, trim_whitespace=False, help_text=SOURCE_HELP)


class _SourceInput(InputSerializer):
    def source_kwargs(self) -> dict:
        """{"source": ...} when a definition or YAML was sent, else {}."""
        values = self.validated_data
        if "definition" in values:
            return {"source": values["definition"]}
        if "yaml" in values:
            return {"source": values["yaml"]}
        return {}

    def validate(self, attrs):
        if "definition" in attrs and "yaml" in attrs:
            raise serializers.ValidationError(
                "Send either `definition` or `yaml`, not both.", code="invalid"
            )
        return attrs


class TemplateCreateSerializer(_SourceInput):
    """A workspace template, from a definition object or its YAML."""

    workspaceId = serializers.CharField(max_length=32)
    id = serializers.RegexField(
        TEMPLATE_ID_PATTERN, max_length=100, help_text=TEMPLATE_ID_HELP,
        error_messages={"invalid": f"Must be {TEMPLATE_ID_HELP}"},
    )  # fmt: skip
    name = serializers.CharField(
        max_length=MAX_NAME_CHARS, required=False,
        help_text="Required unless the definition has a top-level `name`.",
    )  # fmt: skip
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True,
        help_text="Defaults to the definition's top-level `description`, else empty.",
    )  # fmt: skip
    definition = _definition_field()
    yaml = _yaml_field()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "definition" not in attrs and "yaml" not in attrs:
            raise serializers.ValidationError(
                "Send the template's `definition` (an object) or its `yaml` (a string).",
                code="required",
            )
        return attrs


class TemplateUpdateSerializer(_SourceInput):
    """Changes to a workspace template; omitted fields stay as they are."""

    name = serializers.CharField(max_length=MAX_NAME_CHARS, required=False)
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True
    )
    definition = _definition_field()
    yaml = _yaml_field()


class V1TemplateSerializer(_CostRangeMixin, serializers.ModelSerializer):
    """A template as seed 002 lists it."""

    estimated_cost_range = serializers.SerializerMethodField(help_text=COST_RANGE_HELP)

    class Meta:
        model = SwarmTemplate
        fields = ["id", "name", "description", "topology", "estimated_cost_range"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_estimated_cost_range(self, template: SwarmTemplate) -> str:
        return self._cost_range(template)


@extend_schema_serializer(many=False)  # the list action's body is this object, not an array
class V1TemplateListSerializer(serializers.Serializer):
    """`GET /v1/templates`: every template the call's workspace can use, not paginated."""

    templates = V1TemplateSerializer(many=True)

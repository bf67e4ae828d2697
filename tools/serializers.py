"""MCP servers and the workspace's tools on `/api`: credentials go in, never out."""

from rest_framework import serializers

from sverm.api.money import MoneyField
from sverm.api.serializers import InputSerializer
from tools.models import SERVER_NAME, McpServer

MAX_HEADERS = 10


def _headers_valid(value: dict) -> dict:
    if len(value) > MAX_HEADERS:
        raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
    for name, text in value.items():
        if not name or not all(c.isalnum() or c in "-_" for c in name) or len(name) > 100:
            raise serializers.ValidationError(f"'{name}' is not a header name.")
        if not isinstance(text, str) or "\n" in text or "\r" in text or len(text) > 4000:
            raise serializers.ValidationError(f"The value of '{name}' must be one line of text.")
    return value


class McpServerSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    headerNames = serializers.ListField(
        source="header_names", child=serializers.CharField(),
        help_text="The headers sent with each request (their values are never shown).",
    )  # fmt: skip
    tools = serializers.SerializerMethodField(help_text="What it offered when last asked.")
    toolsFetchedAt = serializers.DateTimeField(source="tools_fetched_at", allow_null=True)
    lastError = serializers.CharField(source="last_error", allow_blank=True)
    requiresApproval = serializers.BooleanField(source="requires_approval")
    pricePerCallUsd = MoneyField(source="price_per_call_usd")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = McpServer
        fields = [
            "id", "workspaceId", "name", "url", "headerNames", "enabled", "requiresApproval",
            "pricePerCallUsd", "tools", "toolsFetchedAt", "lastError", "createdAt",
        ]  # fmt: skip

    def get_tools(self, server: McpServer) -> list[str]:
        from tools.mcp import tool_name

        return [name for t in server.tools if (name := tool_name(server.name, t["name"]))]


class McpServerCreateSerializer(InputSerializer):
    name = serializers.RegexField(
        SERVER_NAME, max_length=30,
        help_text="Prefixes its tools' names (`docs` -> `docs__search`): 1-30 of a-z, 0-9, _.",
    )  # fmt: skip
    url = serializers.URLField(max_length=2000, help_text="Its streamable HTTP endpoint.")
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False,
        default=dict, validators=[_headers_valid],
        help_text='Sent with every request, e.g. {"Authorization": "Bearer ..."}; stored sealed.',
    )  # fmt: skip
    requiresApproval = serializers.BooleanField(
        required=False, default=False, help_text="Every call of its tools waits for an operator."
    )
    pricePerCallUsd = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False, default=0,
        help_text="USD charged per call of its tools, under each run's budget.",
    )  # fmt: skip


class McpServerUpdateSerializer(InputSerializer):
    url = serializers.URLField(max_length=2000, required=False)
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False,
        validators=[_headers_valid], help_text="Replaces every header sent.",
    )  # fmt: skip
    enabled = serializers.BooleanField(required=False)
    requiresApproval = serializers.BooleanField(required=False)
    pricePerCallUsd = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False
    )


class ToolSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="What agents list in `tools` and models call.")
    description = serializers.CharField(allow_blank=True)
    source = serializers.CharField(help_text="`builtin`, or the MCP server's id.")
    parameters = serializers.DictField(help_text="The JSON schema of its arguments.")
    allowed = serializers.BooleanField(help_text="Whether the workspace allowlist allows it.")


class ToolListSerializer(serializers.Serializer):
    data = ToolSerializer(many=True)
    allowedTools = serializers.ListField(
        child=serializers.CharField(), help_text="The workspace allowlist: names and * patterns."
    )

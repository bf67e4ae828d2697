"""OpenAPI generation: every operation documents its error responses in its path's wire format."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from sverm.api.errors import is_v1_path


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The offending field, dotted.")
    pointer = serializers.CharField(help_text="JSON pointer into the request body.")
    detail = serializers.CharField()
    code = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, used by every `/api` error."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `not_found`.")
    correlation_id = serializers.CharField(help_text="Same as the X-Request-ID response header.")
    errors = FieldErrorSerializer(many=True, required=False, help_text="Validation errors only.")


class V1ErrorBodySerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "invalid_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "method_not_allowed",
            "conflict",
            "idempotency_key_in_flight",
            "idempotency_key_reused",
            "budget_exceeded",
            "rate_limited",
            "internal_error",
        ]
    )
    message = serializers.CharField()
    details = serializers.DictField()
    correlation_id = serializers.CharField()


class V1ErrorSerializer(serializers.Serializer):
    """Seed 002's error envelope, used by every `/v1` error."""

    error = V1ErrorBodySerializer()


# The one `?workspace_id=` every scoped list accepts.
WORKSPACE_ID_PARAM = OpenApiParameter(
    "workspace_id", str, description="Only rows of this workspace (`wsp_…`)."
)

ERROR_DESCRIPTIONS = {
    "400": "Invalid request: malformed JSON, unknown or invalid fields, bad query parameters.",
    "401": "Missing, invalid, expired or revoked credentials.",
    "403": "Authenticated, but the role held in the workspace is too low.",
    "404": "No such resource, or it belongs to a workspace you are not a member of.",
    "409": "Conflicts with the resource's current state.",
    "413": "Request body over 1 MiB.",
    "415": "Body not sent as application/json.",
    "422": (
        "Understood but refused, e.g. `budget_exceeded`: even the cheapest path to a completed "
        "run (`details.minimum_cost`) is above the budget."
    ),
    "429": "Rate limited (requests per minute, concurrent runs or daily runs of the plan); "
    "see Retry-After and the X-RateLimit-* headers.",
    "500": "Unexpected server error; quote correlation_id when reporting it.",
    "503": "`service_unavailable`: no database connection came free in time (the server is "
    "overloaded), or a service the operation needs is unreachable; retry after Retry-After.",
}


class SvermAutoSchema(AutoSchema):
    def _error_statuses(self) -> list[str]:
        statuses = ["400"]
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        if not public:
            statuses += ["401", "403", "429"]
        if "{" in self.path or not public:
            statuses.append("404")
        statuses += getattr(self.view, "error_statuses", [])
        if self.method in ("POST", "PUT", "PATCH"):
            statuses += ["413", "415"]
        statuses.append("500")
        if getattr(self.view, "uses_database", True):
            statuses.append("503")
        return sorted(set(statuses))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if is_v1_path(self.path):
            serializer, media_types = V1ErrorSerializer, ["application/json"]
        else:
            serializer, media_types = ProblemSerializer, ["application/problem+json"]
        for status in self._error_statuses():
            if status in responses:
                continue
            response = self._get_response_for_code(serializer, status, media_types, direction)
            response["description"] = ERROR_DESCRIPTIONS[status]
            responses[status] = response
        return responses

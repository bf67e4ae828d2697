"""OpenAPI generation: every operation documents its error responses in its path's wire format."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from sverm.api.deprecation import Deprecation, deprecation_of
from sverm.api.errors import ERROR_CLASSES, is_v1_path
from sverm.api.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReused

# Every error code either API answers with: seed 002's table, then the ones sverm adds.
SEED_002_CODES = ("invalid_request", "unauthorized", "not_found", "budget_exceeded",
                  "rate_limited", "internal_error")  # fmt: skip
ERROR_CODES = {
    error.code: error
    for error in sorted(
        [*ERROR_CLASSES, IdempotencyKeyReused, IdempotencyKeyInFlight],
        key=lambda error: (error.code not in SEED_002_CODES, error.status, error.code),
    )
}
_EXTRA_CODES = [f"`{code}` ({error.status})" for code, error in ERROR_CODES.items()
                if code not in SEED_002_CODES]  # fmt: skip
ERROR_CODE_HELP = (
    "Stable machine-readable code. Seed 002's: "
    + ", ".join(f"`{code}` ({ERROR_CODES[code].status})" for code in SEED_002_CODES)
    + "; sverm's besides: "
    + ", ".join(_EXTRA_CODES)
    + "."
)
# The enum's name in the schema (settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
ERROR_CODE_CHOICES = list(ERROR_CODES)


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
    code = serializers.ChoiceField(choices=list(ERROR_CODES), help_text=ERROR_CODE_HELP)
    correlation_id = serializers.CharField(help_text="Same as the X-Request-ID response header.")
    errors = FieldErrorSerializer(many=True, required=False, help_text="Validation errors only.")


class V1ErrorBodySerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=list(ERROR_CODES), help_text=ERROR_CODE_HELP)
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
    "429": "Rate limited (requests per minute, concurrent runs or daily runs of the plan; per "
    "client IP where no credential is counted); see Retry-After and the X-RateLimit-* headers.",
    "500": "Unexpected server error; quote correlation_id when reporting it.",
    "503": "`service_unavailable`: no database connection came free in time (the server is "
    "overloaded), or a service the operation needs is unreachable; retry after Retry-After.",
}


class SvermAutoSchema(AutoSchema):
    def _deprecation(self) -> Deprecation | None:
        handler = getattr(self.view, "action", None) or self.method.lower()
        return deprecation_of(type(self.view), handler)

    def is_deprecated(self) -> bool:
        return super().is_deprecated() or self._deprecation() is not None

    def get_description(self) -> str:
        description = super().get_description() or ""
        if (deprecation := self._deprecation()) is not None:
            description = f"{deprecation.note()}\n\n{description}".strip()
        return description

    def _error_statuses(self) -> list[str]:
        statuses = ["400", "429"]  # every request counts against a limit (per IP at least)
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        if not public:
            statuses += ["401", "403"]
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


# --- operation ids ---------------------------------------------------------------------------
# What generated clients call each operation: `/v1`'s (the run API, seed 002) are plain verbs on
# runs, templates and usage; every `/api` operation starts with `api_`, so the two never clash
# (`cancel_run` is `DELETE /v1/swarms/{id}`, `api_cancel_run` is `POST /api/runs/{id}/cancel`).
# An operation missing here stops the schema from being generated: a new route is named here.
OPERATION_IDS = {
    ("GET", "/v1/swarms"): "list_runs",
    ("POST", "/v1/swarms"): "create_run",
    ("GET", "/v1/swarms/{id}"): "get_run",
    ("DELETE", "/v1/swarms/{id}"): "cancel_run",
    ("GET", "/v1/swarms/{id}/result"): "get_run_result",
    ("GET", "/v1/templates"): "list_templates",
    ("GET", "/v1/templates/{id}"): "get_template",
    ("GET", "/v1/usage"): "get_usage",
    ("GET", "/healthz"): "get_health",
    ("GET", "/readyz"): "get_readiness",
    ("GET", "/metrics"): "get_metrics",
    ("POST", "/api/auth/login"): "api_login",
    ("POST", "/api/auth/refresh"): "api_refresh_token",
    ("GET", "/api/api-keys"): "api_list_api_keys",
    ("POST", "/api/api-keys"): "api_create_api_key",
    ("GET", "/api/api-keys/{id}"): "api_get_api_key",
    ("DELETE", "/api/api-keys/{id}"): "api_revoke_api_key",
    ("POST", "/api/api-keys/{id}/rotate"): "api_rotate_api_key",
    ("GET", "/api/audit-events"): "api_list_audit_events",
    ("GET", "/api/batches"): "api_list_batches",
    ("POST", "/api/batches"): "api_create_batch",
    ("GET", "/api/batches/{id}"): "api_get_batch",
    ("POST", "/api/batches/{id}/cancel"): "api_cancel_batch",
    ("GET", "/api/batches/{id}/results"): "api_get_batch_results",
    ("GET", "/api/batches/{batch_id}/items"): "api_list_batch_items",
    ("GET", "/api/audit-events/{id}"): "api_get_audit_event",
    ("GET", "/api/runs"): "api_list_runs",
    ("GET", "/api/runs/{id}"): "api_get_run",
    ("PATCH", "/api/runs/{id}"): "api_raise_run_budget",
    ("POST", "/api/runs/{id}/cancel"): "api_cancel_run",
    ("GET", "/api/runs/{id}/result"): "api_get_run_result",
    ("GET", "/api/runs/{id}/wait"): "api_wait_for_run",
    ("GET", "/api/runs/{run_id}/approvals"): "api_list_run_approvals",
    ("GET", "/api/runs/{run_id}/approvals/{id}"): "api_get_run_approval",
    ("POST", "/api/runs/{run_id}/approvals/{id}"): "api_decide_run_approval",
    ("GET", "/api/runs/{run_id}/events"): "api_list_run_events",
    ("GET", "/api/runs/{run_id}/webhook-deliveries"): "api_list_run_webhook_deliveries",
    ("POST", "/api/runs/{run_id}/webhook-deliveries"): "api_redeliver_run_webhook",
    ("GET", "/api/schedules"): "api_list_schedules",
    ("POST", "/api/schedules"): "api_create_schedule",
    ("GET", "/api/schedules/{id}"): "api_get_schedule",
    ("PATCH", "/api/schedules/{id}"): "api_update_schedule",
    ("DELETE", "/api/schedules/{id}"): "api_delete_schedule",
    ("POST", "/api/schedules/{id}/pause"): "api_pause_schedule",
    ("POST", "/api/schedules/{id}/resume"): "api_resume_schedule",
    ("GET", "/api/schedules/{schedule_id}/firings"): "api_list_schedule_firings",
    ("GET", "/api/swarms"): "api_list_swarms",
    ("POST", "/api/swarms"): "api_create_swarm",
    ("GET", "/api/swarms/{id}"): "api_get_swarm",
    ("PATCH", "/api/swarms/{id}"): "api_update_swarm",
    ("DELETE", "/api/swarms/{id}"): "api_delete_swarm",
    ("DELETE", "/api/swarms/{id}/purge"): "api_purge_swarm",
    ("POST", "/api/swarms/{id}/restore"): "api_restore_swarm",
    ("POST", "/api/swarms/{id}/runs"): "api_run_swarm",
    ("GET", "/api/swarms/{swarm_id}/versions"): "api_list_swarm_versions",
    ("POST", "/api/swarms/{swarm_id}/versions"): "api_create_swarm_version",
    ("GET", "/api/swarms/{swarm_id}/versions/{version_id}"): "api_get_swarm_version",
    ("GET", "/api/templates"): "api_list_templates",
    ("POST", "/api/templates"): "api_create_template",
    ("GET", "/api/templates/{id}"): "api_get_template",
    ("PATCH", "/api/templates/{id}"): "api_update_template",
    ("DELETE", "/api/templates/{id}"): "api_delete_template",
    ("GET", "/api/usage"): "api_get_usage_report",
    ("GET", "/api/usage.csv"): "api_get_usage_report_csv",
    ("GET", "/api/workspaces"): "api_list_workspaces",
    ("POST", "/api/workspaces"): "api_create_workspace",
    ("GET", "/api/workspaces/{id}"): "api_get_workspace",
    ("PATCH", "/api/workspaces/{id}"): "api_update_workspace",
    ("GET", "/api/workspaces/{workspace_id}/integrations"): "api_list_integrations",
    ("POST", "/api/workspaces/{workspace_id}/integrations"): "api_install_integration",
    ("GET", "/api/workspaces/{workspace_id}/integrations/{id}"): "api_get_integration",
    ("DELETE", "/api/workspaces/{workspace_id}/integrations/{id}"): "api_remove_integration",
    ("GET", "/api/workspaces/{workspace_id}/mcp-servers"): "api_list_mcp_servers",
    ("POST", "/api/workspaces/{workspace_id}/mcp-servers"): "api_register_mcp_server",
    ("GET", "/api/workspaces/{workspace_id}/mcp-servers/{id}"): "api_get_mcp_server",
    ("PATCH", "/api/workspaces/{workspace_id}/mcp-servers/{id}"): "api_update_mcp_server",
    ("DELETE", "/api/workspaces/{workspace_id}/mcp-servers/{id}"): "api_delete_mcp_server",
    ("POST", "/api/workspaces/{workspace_id}/mcp-servers/{id}/refresh"): "api_refresh_mcp_server",
    ("GET", "/api/workspaces/{workspace_id}/members"): "api_list_members",
    ("POST", "/api/workspaces/{workspace_id}/members"): "api_add_member",
    ("GET", "/api/workspaces/{workspace_id}/members/{user_id}"): "api_get_member",
    ("PATCH", "/api/workspaces/{workspace_id}/members/{user_id}"): "api_change_member_role",
    ("DELETE", "/api/workspaces/{workspace_id}/members/{user_id}"): "api_remove_member",
    ("GET", "/api/workspaces/{workspace_id}/tools"): "api_list_workspace_tools",
    ("GET", "/api/workspaces/{workspace_id}/webhook-endpoints"): "api_list_webhook_endpoints",
    (
        "POST",
        "/api/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/enable",
    ): "api_enable_webhook_endpoint",
    ("GET", "/api/workspaces/{workspace_id}/webhook-secret"): "api_get_webhook_secret",
    ("POST", "/api/workspaces/{workspace_id}/webhook-secret"): "api_rotate_webhook_secret",
}

# --- response headers ------------------------------------------------------------------------
RESPONSE_HEADERS = {
    "X-Request-ID": {
        "description": "The request's id (yours when you sent a sane `X-Request-ID`, else "
        "`req_…`); the same as an error's `correlation_id` and on every log line.",
        "schema": {"type": "string"},
    },
    "X-RateLimit-Limit": {
        "description": "Requests a minute allowed to the caller by the limit that counted this "
        "request: the plan's, per API key or user; else per client IP (`/api/auth/*`, the "
        "health probes, and requests without a credential that checks out, each its own "
        "limit). On every response while rate limits are on (`SVERM_RATE_LIMITS`).",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current minute's window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time (seconds) at which the window starts afresh.",
        "schema": {"type": "integer"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    },
    "WWW-Authenticate": {
        "description": 'How to authenticate: `Bearer realm="sverm"` (a JWT or an API key).',
        "schema": {"type": "string"},
    },
    "Deprecation": {
        "description": "The operation is deprecated (RFC 9745): `@<unix time>` it was "
        "deprecated from.",
        "schema": {"type": "string"},
    },
    "Sunset": {
        "description": "When the deprecated operation stops answering (RFC 8594), an HTTP-date.",
        "schema": {"type": "string"},
    },
}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _header_ref(name: str, *, required: bool = False) -> dict:
    if required:  # a $ref takes no siblings in OpenAPI 3.0: the object itself, marked required
        return {**RESPONSE_HEADERS[name], "required": True}
    return {"$ref": f"#/components/headers/{name}"}


def describe_operations(result, generator, request, public):
    """drf-spectacular's last step: each operation gets its readable id (OPERATION_IDS) and
    every response the headers it carries (X-Request-ID and the X-RateLimit-* trio always;
    Retry-After on 429 and 503)."""
    unnamed = []
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            name = OPERATION_IDS.get((method.upper(), path))
            if name is None:
                unnamed.append(f"{method.upper()} {path}")
                continue
            operation["operationId"] = name
            for status, response in operation["responses"].items():
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = _header_ref("X-Request-ID", required=True)
                for header in RATE_LIMIT_HEADERS:
                    headers[header] = _header_ref(header)
                if operation.get("deprecated"):
                    headers["Deprecation"] = _header_ref("Deprecation", required=True)
                    headers["Sunset"] = _header_ref("Sunset", required=True)
                if status == "401":
                    headers["WWW-Authenticate"] = _header_ref("WWW-Authenticate", required=True)
                if status == "429":
                    headers["Retry-After"] = _header_ref("Retry-After", required=True)
                elif status == "503":
                    headers["Retry-After"] = _header_ref("Retry-After")
    if unnamed:
        raise ValueError(
            "Operations without a readable id in sverm/api/schema.py OPERATION_IDS: "
            + ", ".join(unnamed)
        )
    ids = [op["operationId"] for ops in result["paths"].values() for op in ops.values()
           if isinstance(op, dict) and "operationId" in op]  # fmt: skip
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    result.setdefault("components", {})["headers"] = dict(RESPONSE_HEADERS)
    return result

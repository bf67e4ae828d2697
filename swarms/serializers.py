"""Wire shapes: `/api/swarms` field for field as seed 003 (camelCase), `/api/runs`, and the
`/v1` run API of seed 002 (snake_case)."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sverm.api.money import MONEY_KEY_SUFFIX, MoneyField, money_fields_rendered
from sverm.api.serializers import InputSerializer
from sverm.money import MONEY_PLACES
from swarms.models import (
    V1_STATUSES,
    Approval,
    RetentionTier,
    Run,
    RunEvent,
    RunStatus,
    Swarm,
    SwarmVersion,
)
from swarms.selectors import first_pending_approval
from swarms.webhooks.ssrf import webhook_url_validator

MAX_MODELS = 10
HTTP_URL = URLValidator(schemes=["http", "https"], message="Enter an http or https URL.")
MAX_TASK_LENGTH = 20_000
MIN_BUDGET = MONEY_PLACES  # the smallest amount money shows
MAX_BUDGET = Decimal("10000")


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


# ---------------------------------------------------------------------------------------------
# Runs on /api (camelCase)
# ---------------------------------------------------------------------------------------------
class RunSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    swarmId = serializers.CharField(source="swarm_id", allow_null=True)
    versionId = serializers.CharField(source="version_id", allow_null=True)
    templateId = serializers.CharField(source="template_id", allow_blank=True)
    maxBudgetUsd = MoneyField(source="max_budget_usd")
    estimatedCostUsd = MoneyField(source="estimated_cost_usd")
    currentCostUsd = MoneyField(source="current_cost_usd")
    agentsActive = serializers.IntegerField(source="agents_active")
    agentsTotal = serializers.IntegerField(source="agents_total")
    errorCode = serializers.CharField(source="error_code", allow_blank=True)
    errorMessage = serializers.CharField(source="error_message", allow_blank=True)
    webhookUrl = serializers.CharField(source="webhook_url", allow_blank=True)
    createdBy = serializers.CharField(source="created_by_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)
    pauseOnBudget = serializers.BooleanField(
        source="pause_on_budget", help_text="It pauses (`awaiting_budget`) rather than fail "
        "when its next call cannot fit the budget."
    )  # fmt: skip
    budgetNeededUsd = MoneyField(
        source="budget_needed_usd", allow_null=True,
        help_text="While `awaiting_budget`: how much more the next call needs, at least.",
    )  # fmt: skip
    pauseDeadlineAt = serializers.DateTimeField(
        source="pause_deadline_at", allow_null=True,
        help_text="While `awaiting_budget`: when it fails `budget_exceeded` unless raised.",
    )  # fmt: skip

    class Meta:
        model = Run
        fields = [
            "id", "workspaceId", "swarmId", "versionId", "templateId", "task", "status",
            "progress", "maxBudgetUsd", "estimatedCostUsd", "currentCostUsd", "agentsActive",
            "agentsTotal", "simulated", "output", "errorCode", "errorMessage", "webhookUrl",
            "createdBy", "createdAt", "startedAt", "completedAt", "pauseOnBudget",
            "budgetNeededUsd", "pauseDeadlineAt",
        ]  # fmt: skip
        read_only_fields = fields


class RunCreateSerializer(InputSerializer):
    task = serializers.CharField(max_length=MAX_TASK_LENGTH)
    maxBudgetUsd = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_BUDGET,
        required=False, help_text="Hard limit in USD (default 5.00).",
    )  # fmt: skip
    versionId = serializers.CharField(max_length=32, required=False)
    pauseOnBudget = serializers.BooleanField(
        required=False, default=False,
        help_text="When the next call cannot fit the budget, pause (`awaiting_budget`) until "
        "the budget is raised (`PATCH /api/runs/{id}`) instead of failing `budget_exceeded`.",
    )  # fmt: skip
    workspaceId = serializers.CharField(
        max_length=32, required=False,
        help_text="Workspace to run in; needed only for a swarm shared through an integration.",
    )  # fmt: skip
    webhookUrl = serializers.URLField(
        max_length=2000, required=False, validators=[HTTP_URL, webhook_url_validator]
    )


class AgentCostSerializer(serializers.Serializer):
    agentId = serializers.CharField(source="agent_id")
    model = serializers.CharField()
    costUsd = MoneyField(source="cost_usd")
    tokensIn = serializers.IntegerField(source="tokens_in")
    tokensOut = serializers.IntegerField(source="tokens_out")
    toolCalls = serializers.IntegerField(
        source="tool_calls",
        help_text="On a tool's row (`model`: `tool:<name>`): the agent's calls of it, refused "
        "ones included; 0 on a model's row.",
    )
    toolDurationMs = serializers.IntegerField(
        source="tool_duration_ms", help_text="Milliseconds those calls took together."
    )


class ToolUseSerializer(serializers.Serializer):
    tool = serializers.CharField()
    calls = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Calls that failed or were refused.")
    refused = serializers.IntegerField(help_text="Calls an allowlist refused.")
    durationMs = serializers.IntegerField(source="duration_ms")


class CostReportSerializer(serializers.Serializer):
    totalUsd = MoneyField(source="total_usd")
    totalTokens = serializers.IntegerField(source="total_tokens")
    agents = AgentCostSerializer(many=True)
    tools = ToolUseSerializer(many=True, help_text="The run's tool calls, by tool.")


class AgentLogSerializer(serializers.Serializer):
    agentId = serializers.CharField(source="agent_id")
    timestamp = serializers.DateTimeField()
    action = serializers.CharField()
    target = serializers.CharField(allow_null=True)
    summary = serializers.CharField(allow_blank=True)


class RunResultSerializer(serializers.Serializer):
    runId = serializers.CharField(source="run.id")
    status = serializers.CharField(source="run.status")
    output = serializers.CharField(source="run.output", allow_blank=True)
    costReport = CostReportSerializer(source="cost_report")
    agentLogs = AgentLogSerializer(source="agent_logs", many=True)
    errorCode = serializers.CharField(source="run.error_code", allow_blank=True)
    errorMessage = serializers.CharField(source="run.error_message", allow_blank=True)
    simulated = serializers.BooleanField(source="run.simulated")
    elapsedSeconds = serializers.FloatField(source="elapsed_seconds", allow_null=True)
    createdAt = serializers.DateTimeField(source="run.created_at")
    completedAt = serializers.DateTimeField(source="run.completed_at", allow_null=True)


class EventDataField(serializers.JSONField):
    """An event's data as every surface sends it (the stream's messages too)."""

    def to_representation(self, value):
        return money_fields_rendered(value)


class RunEventSerializer(serializers.ModelSerializer):
    runId = serializers.CharField(source="run_id")
    agentId = serializers.CharField(source="agent_id", allow_blank=True)
    data = EventDataField(
        help_text=f"What happened, by type; money (`cost_usd`, any `*{MONEY_KEY_SUFFIX}`) as "
        "everywhere: USD as a JSON number, rounded down to 6 decimal places."
    )
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = RunEvent
        fields = ["seq", "type", "runId", "agentId", "data", "createdAt"]
        read_only_fields = fields


# ---------------------------------------------------------------------------------------------
# Runs on /v1 (seed 002, snake_case)
# ---------------------------------------------------------------------------------------------
class V1RunCreateSerializer(InputSerializer):
    template = serializers.CharField(
        max_length=65536, help_text="Template id (e.g. `research-swarm-v1`) or inline YAML."
    )
    task = serializers.CharField(max_length=MAX_TASK_LENGTH)
    max_budget_usd = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_BUDGET,
        required=False, help_text="Maximum cost for this swarm (default: $5.00).",
    )  # fmt: skip
    webhook_url = serializers.URLField(
        max_length=2000, required=False, validators=[HTTP_URL, webhook_url_validator]
    )
    pause_on_budget = serializers.BooleanField(
        required=False, default=False,
        help_text="When the next call cannot fit the budget, pause until the budget is raised "
        "(`PATCH /api/runs/{id}`) instead of failing `budget_exceeded`.",
    )  # fmt: skip


def v1_status_field(source: str = "v1_status", **kwargs) -> serializers.ChoiceField:
    """A run's status on `/v1`: one of seed 002's four values (see `Run.v1_status`)."""
    return serializers.ChoiceField(source=source, choices=list(V1_STATUSES), **kwargs)


class V1RunCreatedSerializer(serializers.Serializer):
    swarm_id = serializers.CharField(source="id")
    status = v1_status_field(help_text="`running` from the start: `/v1` has no queued status.")
    estimated_cost_usd = MoneyField()
    created_at = serializers.DateTimeField()


class V1ErrorInfoSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


def _run_error(run) -> dict | None:
    """Why a run failed (`{"code", "message"}`), or None: on its status and on its result."""
    if not run.error_code:
        return None
    return {"code": run.error_code, "message": run.error_message}


class V1AwaitingApprovalSerializer(serializers.Serializer):
    approval_id = serializers.CharField(source="id")
    agent_id = serializers.CharField()
    tool = serializers.CharField()
    arguments = serializers.JSONField(source="arguments_value")
    deadline_at = serializers.DateTimeField()
    pending = serializers.IntegerField(help_text="Calls of the run waiting for a decision.")


class V1AwaitingBudgetSerializer(serializers.Serializer):
    needed_usd = MoneyField(source="budget_needed_usd")
    max_budget_usd = MoneyField()
    deadline_at = serializers.DateTimeField(source="pause_deadline_at")


class V1RunStatusSerializer(serializers.Serializer):
    swarm_id = serializers.CharField(source="id")
    status = v1_status_field(
        help_text="A run waiting for a worker is `running` (progress 0, no agent active); one "
        "paused for approvals or budget is `running` with `awaiting_approval` or "
        "`awaiting_budget` set. `/api/runs` reports the precise status."
    )
    progress = serializers.FloatField()
    current_cost_usd = MoneyField()
    agents_active = serializers.IntegerField()
    agents_total = serializers.IntegerField()
    simulated = serializers.BooleanField()
    error = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    awaiting_budget = serializers.SerializerMethodField(
        help_text="While the run is paused because its next call could not fit its budget (it "
        "was started with `pause_on_budget`): how much more it needs and until when; else null."
    )
    awaiting_approval = serializers.SerializerMethodField(
        help_text="The first tool call waiting for an operator's decision, while the run is "
        "paused for approvals (`POST /api/runs/{id}/approvals/{approval_id}`); else null."
    )

    @extend_schema_field(V1ErrorInfoSerializer(allow_null=True))
    def get_error(self, run) -> dict | None:
        return _run_error(run)

    @extend_schema_field(V1AwaitingBudgetSerializer(allow_null=True))
    def get_awaiting_budget(self, run) -> dict | None:
        if run.status != RunStatus.AWAITING_BUDGET:
            return None
        return V1AwaitingBudgetSerializer(run).data

    @extend_schema_field(V1AwaitingApprovalSerializer(allow_null=True))
    def get_awaiting_approval(self, run) -> dict | None:
        if run.status != RunStatus.AWAITING_APPROVAL:
            return None  # no query for any other run
        waiting = first_pending_approval(run_id=run.pk)
        return None if waiting is None else V1AwaitingApprovalSerializer(waiting).data


class V1AgentCostSerializer(serializers.Serializer):
    agent_id = serializers.CharField()
    model = serializers.CharField()
    cost_usd = MoneyField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()


class V1CostReportSerializer(serializers.Serializer):
    total_usd = MoneyField()
    total_tokens = serializers.IntegerField()
    agents = V1AgentCostSerializer(many=True)


class V1AgentLogSerializer(serializers.Serializer):
    agent_id = serializers.CharField()
    timestamp = serializers.DateTimeField()
    action = serializers.CharField()
    target = serializers.CharField(allow_null=True)
    summary = serializers.CharField(allow_blank=True)


class V1RunResultSerializer(serializers.Serializer):
    swarm_id = serializers.CharField(source="run.id")
    status = v1_status_field(source="run.v1_status")
    output = serializers.CharField(source="run.output", allow_blank=True)
    cost_report = V1CostReportSerializer()
    agent_logs = V1AgentLogSerializer(many=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)
    simulated = serializers.BooleanField(source="run.simulated")
    error = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(source="run.created_at")
    completed_at = serializers.DateTimeField(source="run.completed_at", allow_null=True)

    @extend_schema_field(V1ErrorInfoSerializer(allow_null=True))
    def get_error(self, result) -> dict | None:
        return _run_error(result["run"])


class V1RunCancelledSerializer(serializers.Serializer):
    swarm_id = serializers.CharField(source="id")
    status = v1_status_field()
    cost_usd = MoneyField(source="current_cost_usd")


class ApprovalSerializer(serializers.ModelSerializer):
    runId = serializers.CharField(source="run_id")
    agentId = serializers.CharField(source="agent_id")
    callId = serializers.CharField(source="call_id")
    arguments = serializers.JSONField(
        source="arguments_value", help_text="As the model wrote them."
    )
    editedArguments = serializers.JSONField(
        source="edited_value", allow_null=True, help_text="What was approved instead, if edited."
    )
    decidedBy = serializers.CharField(source="decided_by_id", allow_null=True)
    decidedAt = serializers.DateTimeField(source="decided_at", allow_null=True)
    deadlineAt = serializers.DateTimeField(source="deadline_at")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Approval
        fields = [
            "id", "runId", "agentId", "tool", "callId", "arguments", "status", "editedArguments",
            "reason", "decidedBy", "decidedAt", "deadlineAt", "createdAt",
        ]  # fmt: skip
        read_only_fields = fields


class ApprovalDecisionSerializer(InputSerializer):
    decision = serializers.ChoiceField(choices=["approve", "deny"])
    arguments = serializers.DictField(
        required=False,
        help_text="Approve with these arguments instead of the model's (checked against the "
        "tool's schema).",
    )
    reason = serializers.CharField(
        max_length=2000, required=False, default="", allow_blank=True,
        help_text="Why (the model reads it when the call is denied).",
    )  # fmt: skip


class RunWaitQuerySerializer(serializers.Serializer):
    """`GET /api/runs/{id}/wait`'s query string."""

    timeout = serializers.DecimalField(
        max_digits=7,
        decimal_places=3,
        required=False,
        default=Decimal(30),
        min_value=0,
        max_value=settings.SVERM_WAIT_MAX_SECONDS,
        help_text="Seconds to wait at most (0 answers at once; default 30, at most "
        f"{settings.SVERM_WAIT_MAX_SECONDS}).",
    )


class RunBudgetSerializer(InputSerializer):
    maxBudgetUsd = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_BUDGET,
        help_text="The new hard limit in USD: above the current one.",
    )  # fmt: skip

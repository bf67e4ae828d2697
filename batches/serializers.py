"""Batches on `/api`: what a creation takes (a JSON body, or a JSONL upload with the same settings
as query parameters or form fields) and how a batch and its items are shown."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from batches.inputs import ITEM_KEYS, MAX_CUSTOM_ID_LENGTH, MAX_ITEMS
from batches.models import Batch, BatchItem, BudgetMode, ItemStatus
from batches.selectors import item_cost
from batches.services import DEFAULT_CONCURRENCY, batch_running_cost
from sverm.api.money import MoneyField
from sverm.api.serializers import InputSerializer
from swarms.serializers import MAX_BUDGET, MAX_TASK_LENGTH, MIN_BUDGET

# A batch may hold 1,000 items of up to the run API's largest budget each.
MAX_TOTAL_BUDGET = Decimal("1000000")

INPUT_SCHEMA = {
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_TASK_LENGTH,
         "description": "The task."},
        {
            "type": "object",
            "required": ["task"],
            "additionalProperties": False,
            "properties": {
                "task": {"type": "string", "minLength": 1, "maxLength": MAX_TASK_LENGTH},
                "customId": {
                    "type": "string", "minLength": 1, "maxLength": MAX_CUSTOM_ID_LENGTH,
                    "description": "Your id for the item (unique in the batch), echoed in its "
                    "items and results.",
                },
            },
        },
    ]
}  # fmt: skip
assert set(INPUT_SCHEMA["oneOf"][1]["properties"]) == set(ITEM_KEYS)


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_ITEMS,
        "items": INPUT_SCHEMA,
        "description": f'1 to {MAX_ITEMS} inputs, each a task or `{{"task", "customId"}}`.',
    }
)
class InputsField(serializers.JSONField):
    """Checked item by item by the view (batches/inputs.py), so a 400 names each bad item."""


class BatchSettingsSerializer(InputSerializer):
    """Everything about a batch but its inputs (a JSONL upload sends these as query parameters
    or form fields)."""

    workspaceId = serializers.CharField(
        max_length=32, required=False,
        help_text="The workspace its runs are made in: by default the swarm's own; for a "
        "template, the API key's workspace or your only one.",
    )  # fmt: skip
    swarmId = serializers.CharField(
        max_length=32, required=False, help_text="Run this swarm (or give `templateId`)."
    )
    versionId = serializers.CharField(
        max_length=32, required=False,
        help_text="The swarm's version every item runs; by default its default version when "
        "the batch is created.",
    )  # fmt: skip
    templateId = serializers.CharField(
        max_length=100, required=False,
        help_text="Run this template (e.g. `research-swarm-v1`) instead of a swarm.",
    )  # fmt: skip
    budgetMode = serializers.ChoiceField(
        choices=BudgetMode.choices, required=False, default=BudgetMode.SPLIT,
        help_text="`split` (default): each item's run gets totalBudgetUsd / items, rounded down "
        "to $0.000001. `per_item`: each gets perItemBudgetUsd, and an item starts only while "
        "what the batch spent plus the caps of its running items plus its own fit the total.",
    )  # fmt: skip
    totalBudgetUsd = serializers.DecimalField(
        max_digits=13, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_TOTAL_BUDGET,
        help_text="What the whole batch may spend, a hard limit.",
    )  # fmt: skip
    perItemBudgetUsd = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_BUDGET,
        required=False, help_text="With `per_item`: each item's run budget.",
    )  # fmt: skip
    concurrency = serializers.IntegerField(
        min_value=1, max_value=1000, required=False,
        help_text=f"Items running at once: at most the plan's concurrent runs (default "
        f"{DEFAULT_CONCURRENCY}, or the plan's limit when lower).",
    )  # fmt: skip

    def validate(self, attrs):
        if ("swarmId" in attrs) == ("templateId" in attrs):
            raise serializers.ValidationError(
                {"swarmId": ["Give exactly one of swarmId and templateId."]}
            )
        if "versionId" in attrs and "swarmId" not in attrs:
            raise serializers.ValidationError({"versionId": ["Only with swarmId."]})
        per_item = attrs["budgetMode"] == BudgetMode.PER_ITEM
        if per_item and "perItemBudgetUsd" not in attrs:
            raise serializers.ValidationError(
                {"perItemBudgetUsd": ["Required with budgetMode per_item."]}
            )
        if not per_item and "perItemBudgetUsd" in attrs:
            raise serializers.ValidationError(
                {"perItemBudgetUsd": ["Only with budgetMode per_item (split divides the total)."]}
            )
        return attrs


class BatchCreateSerializer(BatchSettingsSerializer):
    inputs = InputsField()


class BatchUploadSerializer(BatchSettingsSerializer):
    file = serializers.FileField(
        help_text="JSONL: one input a line (a JSON string, or an object with `task` and "
        "optionally `customId`), up to 1 MiB."
    )


class BatchCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="items_total")
    pending = serializers.IntegerField(source="items_pending")
    running = serializers.IntegerField(source="items_running")
    completed = serializers.IntegerField(source="items_completed")
    failed = serializers.IntegerField(source="items_failed")
    cancelled = serializers.IntegerField(source="items_cancelled")
    skipped = serializers.IntegerField(source="items_skipped")


class BatchSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    swarmId = serializers.CharField(source="swarm_id", allow_null=True)
    versionId = serializers.CharField(source="version_id", allow_null=True)
    templateId = serializers.SerializerMethodField()
    budgetMode = serializers.CharField(source="budget_mode")
    totalBudgetUsd = MoneyField(source="total_budget_usd")
    itemBudgetUsd = MoneyField(
        source="item_budget_usd",
        help_text="Each item's run budget: the total's share (split) or the cap (per_item).",
    )
    counts = BatchCountsSerializer(source="*", help_text="Its items by status.")
    progress = serializers.FloatField(help_text="The share of its items that ended, 0 to 1.")
    costUsd = serializers.SerializerMethodField()
    errorCode = serializers.CharField(source="error_code", allow_blank=True)
    errorMessage = serializers.CharField(source="error_message", allow_blank=True)
    blockedReason = serializers.CharField(
        source="blocked_reason", allow_blank=True,
        help_text="Why pending items are not starting now (the workspace's run quotas: they "
        "start once a slot frees), else empty.",
    )  # fmt: skip
    createdBy = serializers.CharField(source="created_by_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    cancelledAt = serializers.DateTimeField(source="cancelled_at", allow_null=True)
    completedAt = serializers.DateTimeField(
        source="completed_at", allow_null=True,
        help_text="When its last item ended (a cancelled batch: when its last run stopped).",
    )  # fmt: skip

    class Meta:
        model = Batch
        fields = [
            "id", "workspaceId", "swarmId", "versionId", "templateId", "status", "budgetMode",
            "totalBudgetUsd", "itemBudgetUsd", "concurrency", "counts", "progress", "costUsd",
            "errorCode", "errorMessage", "blockedReason", "createdBy", "createdAt", "startedAt",
            "cancelledAt", "completedAt",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(
        {"type": "string", "nullable": True,
         "description": "The template every item runs; null for a swarm's batch."}
    )  # fmt: skip
    def get_templateId(self, batch: Batch) -> str | None:
        return batch.template_id or None

    @extend_schema_field(
        {"type": "number", "minimum": 0,
         "description": "What it spent so far: its ended items' runs and its running ones'. "
         "USD as a JSON number, rounded down to 6 decimal places."}
    )  # fmt: skip
    def get_costUsd(self, batch: Batch) -> Decimal:
        running = getattr(batch, "running_cost", None)
        if running is None:
            running = batch_running_cost(batch_id=batch.pk) if batch.items_running else 0
        return MoneyField().to_representation(batch.shown_spent_usd + running)


class BatchItemSerializer(serializers.ModelSerializer):
    batchId = serializers.CharField(source="batch_id")
    customId = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ItemStatus.choices)
    runId = serializers.CharField(source="run_id", allow_null=True)
    costUsd = serializers.SerializerMethodField()
    output = serializers.SerializerMethodField()
    errorCode = serializers.CharField(source="error_code", allow_blank=True)
    errorMessage = serializers.CharField(source="error_message", allow_blank=True)
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)

    class Meta:
        model = BatchItem
        fields = [
            "id", "batchId", "index", "customId", "task", "status", "runId", "costUsd",
            "output", "errorCode", "errorMessage", "startedAt", "completedAt",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True})
    def get_customId(self, item: BatchItem) -> str | None:
        return item.custom_id or None

    @extend_schema_field(
        {"type": "number", "minimum": 0,
         "description": "What its run spent (so far, while running). USD as a JSON number, "
         "rounded down to 6 decimal places."}
    )  # fmt: skip
    def get_costUsd(self, item: BatchItem) -> Decimal:
        return MoneyField().to_representation(item_cost(item))

    @extend_schema_field(
        {"type": "string", "description": "Its run's output (markdown; partial for a failed "
         "or cancelled run); empty before it ran or once retention pruned it."}
    )  # fmt: skip
    def get_output(self, item: BatchItem) -> str:
        return item.run.output if item.run_id and item.run is not None else ""

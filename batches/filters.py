"""List field maps and shorthand filters for batches and their items."""

import django_filters

from accounts.filters import USER_LIST, WORKSPACE_LIST
from batches.models import Batch, BatchItem, BatchStatus, BudgetMode, ItemStatus
from sverm.api.listing import DATETIME, ENUM, INTEGER, FieldSpec, IsoDateTimeFilter, ListSpec
from swarms.filters import SWARM_LIST

BATCH_LIST = ListSpec(
    name="Batch",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("workspace_id"),
        "swarmId": FieldSpec("swarm_id", nullable=True),
        "versionId": FieldSpec("version_id", nullable=True),
        "templateId": FieldSpec("template_id"),
        "status": FieldSpec("status", ENUM, choices=tuple(BatchStatus.values)),
        "budgetMode": FieldSpec("budget_mode", ENUM, choices=tuple(BudgetMode.values)),
        "itemsTotal": FieldSpec("items_total", INTEGER),
        "createdBy": FieldSpec("created_by_id", nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
        "startedAt": FieldSpec("started_at", DATETIME, nullable=True),
        "completedAt": FieldSpec("completed_at", DATETIME, nullable=True),
    },
    relations={
        "swarm": ("swarm", SWARM_LIST),
        "creator": ("created_by", USER_LIST),
        "workspace": ("workspace", WORKSPACE_LIST),
    },
)

BATCH_ITEM_LIST = ListSpec(
    name="BatchItem",
    fields={
        "id": FieldSpec("id"),
        "index": FieldSpec("index", INTEGER),
        "customId": FieldSpec("custom_id"),
        "status": FieldSpec("status", ENUM, choices=tuple(ItemStatus.values)),
        "runId": FieldSpec("run_id", nullable=True),
        "startedAt": FieldSpec("started_at", DATETIME, nullable=True),
        "completedAt": FieldSpec("completed_at", DATETIME, nullable=True),
    },
    default_order=(("index", "asc"),),
)


class BatchFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        field_name="status", choices=BatchStatus.choices, help_text="One or more statuses."
    )
    swarm_id = django_filters.CharFilter(field_name="swarm_id", help_text="Batches of this swarm.")
    template_id = django_filters.CharFilter(
        field_name="template_id", help_text="Batches of this template."
    )
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Batch
        fields: list[str] = []


class BatchItemFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        field_name="status", choices=ItemStatus.choices, help_text="One or more statuses."
    )

    class Meta:
        model = BatchItem
        fields: list[str] = []

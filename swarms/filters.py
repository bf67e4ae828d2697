"""List field maps and shorthand filters for swarms and their versions."""

import django_filters

from accounts.filters import USER_LIST, WORKSPACE_LIST
from sverm.api.listing import DATETIME, ENUM, INTEGER, FieldSpec, IsoDateTimeFilter, ListSpec
from swarms.models import RetentionTier, Run, RunEventType, RunStatus, Swarm

VERSION_LIST = ListSpec(
    name="SwarmVersion",
    fields={
        "id": FieldSpec("id"),
        "swarmId": FieldSpec("swarm_id"),
        "number": FieldSpec("number", INTEGER),
        "instructions": FieldSpec("instructions", sortable=False),
        "createdBy": FieldSpec("created_by_id", nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
    relations={"creator": ("created_by", USER_LIST)},
    default_order=(("number", "desc"),),
)

SWARM_LIST = ListSpec(
    name="Swarm",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("workspace_id"),
        "name": FieldSpec("name"),
        "description": FieldSpec("description"),
        "defaultVersionId": FieldSpec("default_version_id", nullable=True),
        "createdBy": FieldSpec("created_by_id", nullable=True),
        "runtimeUserId": FieldSpec("runtime_user_id", nullable=True),
        "deletedAt": FieldSpec("deleted_at", DATETIME, nullable=True),
        "retentionTier": FieldSpec("retention_tier", ENUM, choices=tuple(RetentionTier.values)),
        "createdAt": FieldSpec("created_at", DATETIME),
        "updatedAt": FieldSpec("updated_at", DATETIME),
    },
    relations={
        "defaultVersion": ("default_version", VERSION_LIST),
        "creator": ("created_by", USER_LIST),
        "runtimeUser": ("runtime_user", USER_LIST),
        "workspace": ("workspace", WORKSPACE_LIST),
    },
)


class SwarmFilterSet(django_filters.FilterSet):
    """Seed 003's shorthand query parameters (`workspace_id` and `source` are scoping, applied
    by the viewset base)."""

    include_deleted = django_filters.ChoiceFilter(
        choices=[("false", "false"), ("true", "true"), ("only", "only")],
        method="filter_include_deleted",
        help_text="`false` (default): active rows only. `true`: active plus soft-deleted. "
        "`only`: soft-deleted only (trash view).",
    )
    name = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Case-insensitive substring match."
    )
    default_version_id = django_filters.CharFilter(field_name="default_version_id")
    created_by = django_filters.CharFilter(field_name="created_by_id")
    runtime_user_id = django_filters.CharFilter(field_name="runtime_user_id")
    retention_tier = django_filters.ChoiceFilter(
        field_name="retention_tier", choices=RetentionTier.choices
    )

    class Meta:
        model = Swarm
        fields: list[str] = []

    def filter_include_deleted(self, queryset, name, value):
        return queryset  # applied in filter_queryset, so that its absence means "false"

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        mode = self.form.cleaned_data.get("include_deleted") or "false"
        if mode == "false":
            return queryset.alive()
        if mode == "only":
            return queryset.deleted()
        return queryset


RUN_LIST = ListSpec(
    name="Run",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("workspace_id"),
        "swarmId": FieldSpec("swarm_id", nullable=True),
        "versionId": FieldSpec("version_id", nullable=True),
        "templateId": FieldSpec("template_id"),
        "status": FieldSpec("status", ENUM, choices=tuple(RunStatus.values)),
        "createdBy": FieldSpec("created_by_id", nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
        "startedAt": FieldSpec("started_at", DATETIME, nullable=True),
        "completedAt": FieldSpec("completed_at", DATETIME, nullable=True),
    },
    relations={"swarm": ("swarm", SWARM_LIST), "creator": ("created_by", USER_LIST)},
)

EVENT_LIST = ListSpec(
    name="RunEvent",
    fields={
        "seq": FieldSpec("seq", INTEGER),
        "type": FieldSpec("type", ENUM, choices=tuple(RunEventType.values)),
        "agentId": FieldSpec("agent_id"),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
    default_order=(("seq", "asc"),),
    id_field="seq",
)


class RunFilterSet(django_filters.FilterSet):
    swarm_id = django_filters.CharFilter(field_name="swarm_id", help_text="Runs of this swarm.")
    status = django_filters.MultipleChoiceFilter(
        field_name="status", choices=RunStatus.choices, help_text="One or more statuses."
    )
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields: list[str] = []

"""List field maps and shorthand filters for schedules and their firings."""

import django_filters

from accounts.filters import USER_LIST, WORKSPACE_LIST
from schedules.models import FiringOutcome, OverlapPolicy, Schedule, ScheduleFiring
from sverm.api.listing import BOOLEAN, DATETIME, ENUM, INTEGER, FieldSpec, ListSpec
from swarms.filters import RUN_LIST, SWARM_LIST

SCHEDULE_LIST = ListSpec(
    name="Schedule",
    fields={
        "id": FieldSpec("id"),
        "workspaceId": FieldSpec("workspace_id"),
        "name": FieldSpec("name"),
        "swarmId": FieldSpec("swarm_id", nullable=True),
        "versionId": FieldSpec("version_id", nullable=True),
        "templateId": FieldSpec("template_id"),
        "cron": FieldSpec("cron"),
        "timezone": FieldSpec("timezone"),
        "overlapPolicy": FieldSpec("overlap_policy", ENUM, choices=tuple(OverlapPolicy.values)),
        "paused": FieldSpec("paused", BOOLEAN),
        "nextRunAt": FieldSpec("next_run_at", DATETIME, nullable=True),
        "lastFiredAt": FieldSpec("last_fired_at", DATETIME, nullable=True),
        "runsMade": FieldSpec("runs_made", INTEGER),
        "maxRuns": FieldSpec("max_runs", INTEGER, nullable=True),
        "startsAt": FieldSpec("starts_at", DATETIME, nullable=True),
        "endsAt": FieldSpec("ends_at", DATETIME, nullable=True),
        "createdBy": FieldSpec("created_by_id", nullable=True),
        "createdAt": FieldSpec("created_at", DATETIME),
        "updatedAt": FieldSpec("updated_at", DATETIME),
    },
    relations={
        "swarm": ("swarm", SWARM_LIST),
        "workspace": ("workspace", WORKSPACE_LIST),
        "creator": ("created_by", USER_LIST),
    },
)

FIRING_LIST = ListSpec(
    name="ScheduleFiring",
    fields={
        "id": FieldSpec("id"),
        "slotAt": FieldSpec("slot_at", DATETIME),
        "outcome": FieldSpec("outcome", ENUM, choices=tuple(FiringOutcome.values)),
        "runId": FieldSpec("run_id", nullable=True),
        "missed": FieldSpec("missed", INTEGER),
        "createdAt": FieldSpec("created_at", DATETIME),
        "startedAt": FieldSpec("started_at", DATETIME, nullable=True),
    },
    relations={"run": ("run", RUN_LIST)},
    default_order=(("slotAt", "desc"),),
)

STATE_CHOICES = [("active", "active"), ("paused", "paused"), ("ended", "ended")]
TRUE_FALSE = [("true", "true"), ("false", "false")]


class ScheduleFilterSet(django_filters.FilterSet):
    """Shorthand query parameters (`workspace_id` is scoping, applied by the viewset base)."""

    name = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", help_text="Case-insensitive substring match."
    )
    swarm_id = django_filters.CharFilter(field_name="swarm_id", help_text="Schedules of a swarm.")
    template_id = django_filters.CharFilter(field_name="template_id")
    # A choice, not a BooleanFilter: that one ignores values it cannot read (`?paused=maybe`).
    paused = django_filters.ChoiceFilter(
        choices=TRUE_FALSE, method="filter_paused", help_text="`true` or `false`."
    )
    state = django_filters.ChoiceFilter(
        choices=STATE_CHOICES, method="filter_state",
        help_text="`active` (will fire), `paused`, or `ended` (end date or max runs reached).",
    )  # fmt: skip
    overlap_policy = django_filters.ChoiceFilter(
        field_name="overlap_policy", choices=OverlapPolicy.choices
    )

    class Meta:
        model = Schedule
        fields: list[str] = []

    def filter_paused(self, queryset, name, value):
        return queryset.filter(paused=value == "true")

    def filter_state(self, queryset, name, value):
        if value == "paused":
            return queryset.filter(paused=True)
        return queryset.filter(paused=False, next_run_at__isnull=value == "ended")


class ScheduleFiringFilterSet(django_filters.FilterSet):
    outcome = django_filters.MultipleChoiceFilter(
        field_name="outcome", choices=FiringOutcome.choices,
        help_text="One or more outcomes (`?outcome=started` lists the runs it made).",
    )  # fmt: skip

    class Meta:
        model = ScheduleFiring
        fields: list[str] = []

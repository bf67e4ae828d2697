"""Schedules and their firings on `/api` (camelCase, as `/api/swarms`)."""

from decimal import Decimal

from django.conf import settings
from rest_framework import serializers

from schedules.cron import CronError, cron_validate, zone_get
from schedules.models import FiringOutcome, OverlapPolicy, Schedule, ScheduleFiring
from sverm.api.listing import as_utc
from sverm.api.money import MoneyField
from sverm.api.serializers import InputSerializer
from swarms.serializers import HTTP_URL, MAX_BUDGET, MAX_TASK_LENGTH, MIN_BUDGET
from swarms.webhooks.ssrf import webhook_url_validator

MIN_CATCH_UP_SECONDS = 60  # above any tick's lateness: a slot a tick is late for still fires
MAX_CATCH_UP_SECONDS = 7 * 86400
MAX_RUNS = 1_000_000
MAX_MONTHLY_CAP = Decimal("1000000")
STATES = ("active", "paused", "ended")


class ScheduleSerializer(serializers.ModelSerializer):
    workspaceId = serializers.CharField(source="workspace_id")
    swarmId = serializers.CharField(source="swarm_id", allow_null=True)
    versionId = serializers.CharField(
        source="version_id", allow_null=True,
        help_text="The pinned version; null runs the swarm's default version at each firing.",
    )  # fmt: skip
    templateId = serializers.CharField(source="template_id", allow_blank=True)
    maxBudgetUsd = MoneyField(source="max_budget_usd", help_text="Each run's hard budget.")
    webhookUrl = serializers.CharField(source="webhook_url", allow_blank=True)
    cron = serializers.CharField()
    timezone = serializers.CharField(help_text="IANA time zone the cron expression is read in.")
    startsAt = serializers.DateTimeField(source="starts_at", allow_null=True)
    endsAt = serializers.DateTimeField(source="ends_at", allow_null=True)
    maxRuns = serializers.IntegerField(source="max_runs", allow_null=True)
    monthlyCapUsd = MoneyField(source="monthly_cap_usd", allow_null=True)
    overlapPolicy = serializers.ChoiceField(source="overlap_policy", choices=OverlapPolicy.choices)
    catchUpSeconds = serializers.IntegerField(source="catch_up_seconds")
    state = serializers.ChoiceField(
        choices=STATES, help_text="`active`, `paused`, or `ended` (end date or max runs reached)."
    )
    nextRunAt = serializers.DateTimeField(
        source="next_run_at", allow_null=True,
        help_text="The next slot it fires for (UTC); null while paused and once ended.",
    )  # fmt: skip
    runsMade = serializers.IntegerField(source="runs_made")
    lastFiredAt = serializers.DateTimeField(source="last_fired_at", allow_null=True)
    lastError = serializers.CharField(source="last_error", allow_blank=True)
    createdBy = serializers.CharField(source="created_by_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Schedule
        fields = [
            "id", "workspaceId", "name", "swarmId", "versionId", "templateId", "task",
            "maxBudgetUsd", "webhookUrl", "cron", "timezone", "startsAt", "endsAt", "maxRuns",
            "monthlyCapUsd", "overlapPolicy", "catchUpSeconds", "paused", "state", "nextRunAt",
            "runsMade", "lastFiredAt", "lastError", "createdBy", "createdAt", "updatedAt",
        ]  # fmt: skip
        read_only_fields = fields


class UTCDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time, kept in UTC (a naive one is read as UTC)."""

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        try:
            return as_utc(parsed)
        except (ValueError, OverflowError):
            raise serializers.ValidationError("Out of range.") from None


def _cron_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=100,
        help_text="5 fields, minute hour day-of-month month day-of-week (`30 2 * * *`: 02:30 "
        "every day), or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.",
        **kwargs,
    )


class _ScheduleFieldsMixin:
    """Validation shared by creation and change."""

    def validate_cron(self, value: str) -> str:
        try:
            return cron_validate(value, seconds=settings.SVERM_SCHEDULE_SECONDS_FIELD)
        except CronError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_timezone(self, value: str) -> str:
        try:
            zone_get(value)
        except CronError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate(self, attrs: dict) -> dict:
        starts, ends = attrs.get("startsAt"), attrs.get("endsAt")
        if starts is not None and ends is not None and ends <= starts:
            raise serializers.ValidationError({"endsAt": ["Must be after startsAt."]})
        return attrs


def _budget(**kwargs):
    return serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_BUDGET, **kwargs
    )


def _cap(**kwargs):
    return serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=MIN_BUDGET, max_value=MAX_MONTHLY_CAP,
        allow_null=True,
        help_text="USD: a firing whose run (at its full budget) could take this UTC month's "
        "spend of the schedule's runs past it is skipped (`skipped_cap`).",
        **kwargs,
    )  # fmt: skip


def _catch_up(**kwargs):
    return serializers.IntegerField(
        min_value=MIN_CATCH_UP_SECONDS, max_value=MAX_CATCH_UP_SECONDS,
        help_text="After downtime, missed slots fire once (coalesced) when the last of them is "
        "at most this old (seconds); older ones are skipped (`skipped_missed`).",
        **kwargs,
    )  # fmt: skip


class ScheduleCreateSerializer(_ScheduleFieldsMixin, InputSerializer):
    workspaceId = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=200)
    swarmId = serializers.CharField(
        max_length=32, required=False, help_text="The swarm to run (or give templateId)."
    )
    versionId = serializers.CharField(
        max_length=32, required=False,
        help_text="Pin one version of the swarm; omitted: its default version at each firing.",
    )  # fmt: skip
    templateId = serializers.CharField(
        max_length=100, required=False, help_text="A template to run (or give swarmId)."
    )
    task = serializers.CharField(max_length=MAX_TASK_LENGTH)
    maxBudgetUsd = _budget(required=False, help_text="Each run's hard budget (default 5.00).")
    webhookUrl = serializers.URLField(
        max_length=2000, required=False, validators=[HTTP_URL, webhook_url_validator],
        help_text="Each run's terminal status is sent here.",
    )  # fmt: skip
    cron = _cron_field()
    timezone = serializers.CharField(
        max_length=64, required=False, default="UTC",
        help_text="IANA time zone name, e.g. `Europe/Oslo` (default `UTC`).",
    )  # fmt: skip
    startsAt = UTCDateTimeField(required=False, allow_null=True)
    endsAt = UTCDateTimeField(required=False, allow_null=True)
    maxRuns = serializers.IntegerField(
        min_value=1, max_value=MAX_RUNS, required=False, allow_null=True,
        help_text="It ends once it has started this many runs.",
    )  # fmt: skip
    monthlyCapUsd = _cap(required=False)
    overlapPolicy = serializers.ChoiceField(
        choices=OverlapPolicy.choices, required=False, default=OverlapPolicy.SKIP,
        help_text="While a run it made is still active: `skip` the firing, `queue` it (one "
        "waits, started when that run ends) or `cancel_previous` (cancel it, then start).",
    )  # fmt: skip
    catchUpSeconds = _catch_up(required=False)


class ScheduleUpdateSerializer(_ScheduleFieldsMixin, InputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    versionId = serializers.CharField(
        max_length=32, required=False, allow_null=True,
        help_text="Pin a version of the swarm; null unpins (its default version at each firing).",
    )  # fmt: skip
    task = serializers.CharField(max_length=MAX_TASK_LENGTH, required=False)
    maxBudgetUsd = _budget(required=False)
    webhookUrl = serializers.URLField(
        max_length=2000, required=False, allow_blank=True,
        validators=[HTTP_URL, webhook_url_validator], help_text='"" removes it.',
    )  # fmt: skip
    cron = _cron_field(required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    startsAt = UTCDateTimeField(required=False, allow_null=True)
    endsAt = UTCDateTimeField(required=False, allow_null=True)
    maxRuns = serializers.IntegerField(
        min_value=1, max_value=MAX_RUNS, required=False, allow_null=True
    )
    monthlyCapUsd = _cap(required=False)
    overlapPolicy = serializers.ChoiceField(choices=OverlapPolicy.choices, required=False)
    catchUpSeconds = _catch_up(required=False)


# The update body's names -> the model's.
UPDATE_FIELDS = {
    "name": "name", "versionId": "version_id", "task": "task", "maxBudgetUsd": "max_budget_usd",
    "webhookUrl": "webhook_url", "cron": "cron", "timezone": "timezone", "startsAt": "starts_at",
    "endsAt": "ends_at", "maxRuns": "max_runs", "monthlyCapUsd": "monthly_cap_usd",
    "overlapPolicy": "overlap_policy", "catchUpSeconds": "catch_up_seconds",
}  # fmt: skip


class FiringRunSerializer(serializers.Serializer):
    """The run a firing started, in brief (`GET /api/runs/{id}` has the rest)."""

    id = serializers.CharField()
    status = serializers.CharField()
    currentCostUsd = MoneyField(source="current_cost_usd")
    createdAt = serializers.DateTimeField(source="created_at")
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)


class ScheduleFiringSerializer(serializers.ModelSerializer):
    scheduleId = serializers.CharField(source="schedule_id")
    slotAt = serializers.DateTimeField(source="slot_at", help_text="The cron slot (UTC).")
    outcome = serializers.ChoiceField(
        choices=FiringOutcome.choices,
        help_text="`started` (a run), `queued` (waits for the active run to end), "
        "`skipped_overlap`, `skipped_cap` (monthly cap), `skipped_missed` (downtime beyond "
        "the catch-up window), `skipped_paused`, or `failed` (the run was refused: see reason).",
    )
    reason = serializers.CharField(allow_blank=True)
    missed = serializers.IntegerField(
        help_text="Earlier slots missed during downtime that this firing stands for."
    )
    runId = serializers.CharField(source="run_id", allow_null=True)
    run = FiringRunSerializer(allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)

    class Meta:
        model = ScheduleFiring
        fields = [
            "id", "scheduleId", "slotAt", "outcome", "reason", "missed", "runId", "run",
            "createdAt", "startedAt",
        ]  # fmt: skip
        read_only_fields = fields

"""Schedules in the admin: what each runs and when it fires next, its last error, its latest
firings; pause and resume. Schedules are made and changed through the API (which validates the
cron expression and time zone and computes `next_run_at`)."""

from django.contrib import admin, messages
from django.forms.models import BaseInlineFormSet

from audit.admin import AuditedModelAdmin
from schedules import services
from schedules.models import Schedule, ScheduleFiring

INLINE_FIRINGS = 50


class LatestFiringsFormSet(BaseInlineFormSet):
    """The schedule's latest firings only: a schedule of every minute makes 1440 a day."""

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            firings = super().get_queryset()
            latest = firings.order_by("-slot_at").values_list("pk", flat=True)[:INLINE_FIRINGS]
            self._latest = firings.filter(pk__in=list(latest)).order_by("-slot_at")
        return self._latest


class ScheduleFiringInline(admin.TabularInline):
    model = ScheduleFiring
    formset = LatestFiringsFormSet
    fields = ["slot_at", "outcome", "run", "reason", "missed", "started_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = f"Firings (the latest {INLINE_FIRINGS})"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Schedule)
class ScheduleAdmin(AuditedModelAdmin):
    audit_target_type = "schedule"
    list_display = ["name", "workspace", "runs_what", "cron_in_zone", "next_run_at", "paused",
                    "runs_made", "last_error"]  # fmt: skip
    list_filter = ["paused", "overlap_policy", "timezone"]
    search_fields = ["id", "name", "workspace__name", "workspace__id", "swarm__name", "template_id"]
    list_select_related = ["workspace", "swarm"]
    readonly_fields = [
        "id", "workspace", "name", "swarm", "version", "template_id", "task", "max_budget_usd",
        "webhook_url", "cron", "timezone", "starts_at", "ends_at", "max_runs", "monthly_cap_usd",
        "overlap_policy", "catch_up_seconds", "paused", "next_run_at", "runs_made",
        "last_fired_at", "last_error", "created_by", "created_at", "updated_at",
    ]  # fmt: skip
    fields = readonly_fields
    inlines = [ScheduleFiringInline]
    actions = ["pause_schedules", "resume_schedules"]

    def has_add_permission(self, request):
        return False  # made through the API, which validates it and computes its next run

    @admin.display(description="Runs")
    def runs_what(self, schedule: Schedule) -> str:
        if schedule.swarm_id:
            pinned = f" ({schedule.version_id})" if schedule.version_id else ""
            return f"swarm {schedule.swarm.name}{pinned}"
        return f"template {schedule.template_id}"

    @admin.display(description="Cron", ordering="cron")
    def cron_in_zone(self, schedule: Schedule) -> str:
        return f"{schedule.cron} ({schedule.timezone})"

    @admin.action(description="Pause the selected schedules")
    def pause_schedules(self, request, queryset):
        for schedule in queryset:
            services.schedule_pause(schedule=schedule)
        self.message_user(request, f"{queryset.count()} paused.", messages.SUCCESS)

    @admin.action(description="Resume the selected schedules")
    def resume_schedules(self, request, queryset):
        for schedule in queryset:
            services.schedule_resume(schedule=schedule)
        self.message_user(request, f"{queryset.count()} resumed.", messages.SUCCESS)

    def delete_model(self, request, obj):
        services.schedule_delete(schedule=obj)

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            services.schedule_delete(schedule=schedule)


@admin.register(ScheduleFiring)
class ScheduleFiringAdmin(AuditedModelAdmin):
    audit_target_type = "schedule_firing"
    list_display = ["schedule", "slot_at", "outcome", "run", "reason", "started_at"]
    list_filter = ["outcome"]
    search_fields = ["id", "schedule__id", "schedule__name", "run__id"]
    list_select_related = ["schedule", "run"]
    date_hierarchy = "slot_at"
    readonly_fields = ["schedule", "slot_at", "outcome", "run", "reason", "missed", "created_at",
                       "started_at"]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

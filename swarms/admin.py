"""Admin for swarms: versions inline (read-only), soft delete, restore and purge as actions."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.urls import reverse
from django.utils.html import format_html

from audit.admin import AuditedModelAdmin
from sverm.api.errors import ApplicationError
from sverm.money import money
from swarms import services
from swarms.models import (
    Approval,
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    Swarm,
    SwarmVersion,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)
from swarms.services.approvals import approval_decide
from swarms.webhooks.delivery import webhook_endpoint_enable, webhook_redeliver
from swarms.webhooks.signing import webhook_secret_rotate


class SwarmVersionInline(admin.TabularInline):
    model = SwarmVersion
    fk_name = "swarm"
    extra = 0
    can_delete = False
    fields = ["number", "id", "model_names", "instructions", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeletedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("deleted", "Soft-deleted")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.alive()
        if self.value() == "deleted":
            return queryset.deleted()
        return queryset


class SwarmForm(forms.ModelForm):
    class Meta:
        model = Swarm
        fields = ["name", "description", "default_version", "runtime_user", "retention_tier"]

    def clean_runtime_user(self):
        user = self.cleaned_data.get("runtime_user")
        if (
            user is not None
            and not user.memberships.filter(workspace_id=self.instance.workspace_id).exists()
        ):
            raise forms.ValidationError("Not a member of the swarm's workspace.")
        return user


@admin.register(Swarm)
class SwarmAdmin(AuditedModelAdmin):
    audit_split_fields = {"default_version_id": "default_version_switch"}  # as the API
    form = SwarmForm
    list_display = ["name", "id", "workspace", "retention_tier", "state", "default_version",
                    "created_by", "created_at"]  # fmt: skip
    list_filter = [DeletedFilter, "retention_tier", "workspace", "created_at"]
    search_fields = ["name", "id", "workspace__name", "workspace__id"]
    list_select_related = ["workspace", "default_version", "created_by"]
    readonly_fields = ["id", "workspace", "created_by", "deleted_at", "created_at", "updated_at"]
    fields = ["id", "workspace", "name", "description", "default_version", "runtime_user",
              "retention_tier", "created_by", "deleted_at", "created_at", "updated_at"]  # fmt: skip
    autocomplete_fields = ["runtime_user"]
    inlines = [SwarmVersionInline]
    actions = ["soft_delete", "restore", "purge"]

    def has_add_permission(self, request):
        return False  # swarms are created through the API, which also makes version 1

    def has_delete_permission(self, request, obj=None):
        return False  # the soft-delete and purge actions replace Django's delete

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "default_version":
            swarm_id = unquote(request.resolver_match.kwargs.get("object_id") or "")
            kwargs["queryset"] = SwarmVersion.objects.filter(swarm_id=swarm_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="State")
    def state(self, swarm):
        return "deleted" if swarm.deleted_at else "active"

    def _apply(self, request, queryset, service, verb):
        done, refused = 0, []
        for swarm in queryset:
            try:
                service(swarm=swarm)
                done += 1
            except ApplicationError as exc:
                refused.append(exc.message)
        if done:
            self.message_user(request, f"{verb} {done} swarm(s).", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Soft-delete selected swarms")
    def soft_delete(self, request, queryset):
        self._apply(request, queryset, services.swarm_soft_delete, "Soft-deleted")

    @admin.action(description="Restore selected swarms")
    def restore(self, request, queryset):
        self._apply(request, queryset, services.swarm_restore, "Restored")

    @admin.action(description="Purge selected soft-deleted swarms (permanent)")
    def purge(self, request, queryset):
        self._apply(request, queryset, services.swarm_purge, "Purged")


@admin.register(SwarmVersion)
class SwarmVersionAdmin(AuditedModelAdmin):
    list_display = ["swarm", "number", "id", "created_by", "created_at"]
    search_fields = ["id", "swarm__id", "swarm__name"]
    list_select_related = ["swarm", "created_by"]
    readonly_fields = ["id", "swarm", "number", "definition", "instructions", "model_names",
                       "created_by", "created_at"]  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RunEventInline(admin.TabularInline):
    model = RunEvent
    extra = 0
    can_delete = False
    fields = ["seq", "type", "agent_id", "data", "created_at"]
    readonly_fields = fields
    ordering = ["seq"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ApprovalInline(admin.TabularInline):
    """The run's tool calls (and agent steps) that waited for an operator; decide on pending
    ones from the Approvals list or the live page."""

    model = Approval
    extra = 0
    can_delete = False
    fields = ["decide_link", "agent_id", "tool", "status", "arguments", "edited_arguments",
              "reason", "decided_by", "deadline_at"]  # fmt: skip
    readonly_fields = fields
    ordering = ["created_at"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Approval")
    def decide_link(self, approval: Approval):
        url = reverse("admin:swarms_approval_change", args=[approval.pk])
        return format_html('<a href="{}">{}</a>', url, approval.pk)


class RunStepInline(admin.TabularInline):
    """Each LLM call's checkpoint: which attempt made it, what it reserved and cost. Interrupted
    steps hold their reservation against the budget until an operator reconciles them with the
    provider's bill."""

    model = RunStep
    extra = 0
    can_delete = False
    verbose_name = "call checkpoint"
    fields = ["attempt", "agent_id", "model", "status", "reserved_usd", "cost_usd", "tokens_in",
              "tokens_out", "updated_at"]  # fmt: skip
    readonly_fields = fields
    ordering = ["id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(AuditedModelAdmin):
    list_display = ["id", "live_link", "workspace", "swarm_type", "status", "progress_percent",
                    "cost", "budget", "attempt", "simulated", "created_at"]  # fmt: skip
    list_filter = ["status", "simulated", "swarm_type", "created_at"]
    search_fields = ["id", "task", "workspace__name", "workspace__id", "swarm__id", "swarm__name"]
    list_select_related = ["workspace"]
    date_hierarchy = "created_at"
    inlines = [ApprovalInline, RunStepInline, RunEventInline]
    actions = ["cancel_runs"]
    readonly_fields = ["live_view", *(f.name for f in Run._meta.fields)]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # runs are changed by the engine and the cancel action only

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress", ordering="progress")
    def progress_percent(self, run):
        return f"{run.progress:.0%}"

    @admin.display(description="Cost (USD)", ordering="current_cost_usd")
    def cost(self, run):
        return f"{money(run.current_cost_usd)}"

    @admin.display(description="Budget (USD)", ordering="max_budget_usd")
    def budget(self, run):
        return f"{run.max_budget_usd:.2f}"

    @admin.display(description="Live view")
    def live_view(self, run):
        if run is None or run.pk is None:
            return "-"
        verb = "Replay" if run.is_terminal else "Watch"
        return format_html(
            '<a href="{}" class="run-live-link">{} this run live</a>',
            reverse("run-live", args=[run.pk]),
            verb,
        )

    @admin.display(description="Live")
    def live_link(self, run):
        return format_html(
            '<a href="{}" class="run-live-link">Live</a>', reverse("run-live", args=[run.pk])
        )

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset):
        cancelled, stopping, refused = 0, 0, []
        for run in queryset:
            try:
                if services.run_cancel(run=run).status == RunStatus.CANCELLED:
                    cancelled += 1
                else:  # asked to stop: its worker ends it within a poll interval
                    stopping += 1
            except ApplicationError as exc:
                refused.append(exc.message)
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} run(s).", messages.SUCCESS)
        if stopping:
            self.message_user(
                request,
                f"Asked {stopping} running run(s) to stop; they end cancelled within a second.",
                messages.SUCCESS,
            )
        for message in refused:
            self.message_user(request, message, messages.WARNING)


# ---------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------
@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedModelAdmin):
    list_display = ["message_id", "attempt", "run", "workspace", "event_type", "status_code",
                    "success", "latency_ms", "short_error", "manual", "created_at"]  # fmt: skip
    list_filter = ["success", "manual", "event_type", "status_code", "created_at"]
    search_fields = ["message_id", "run__id", "url", "workspace__id", "workspace__name"]
    list_select_related = ["workspace", "run"]
    date_hierarchy = "created_at"
    actions = ["redeliver"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Error")
    def short_error(self, delivery):
        return delivery.error[:80]

    @admin.action(description="Redeliver the selected deliveries' runs now")
    def redeliver(self, request, queryset):
        runs = {delivery.run_id: delivery.run for delivery in queryset.select_related("run")}
        for run in runs.values():
            try:
                webhook_redeliver(run=run)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Redelivery of {run.pk} queued.", messages.SUCCESS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedModelAdmin):
    list_display = ["url", "workspace", "disabled_at", "disabled_reason", "created_at"]
    list_filter = ["disabled_at"]
    search_fields = ["url", "workspace__id", "workspace__name"]
    readonly_fields = ["workspace", "url", "url_hash", "disabled_at", "disabled_reason",
                       "created_at"]  # fmt: skip
    actions = ["enable"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Re-enable the selected endpoints")
    def enable(self, request, queryset):
        disabled = list(queryset.filter(disabled_at__isnull=False))
        for endpoint in disabled:  # through the service, which records each in the audit trail
            webhook_endpoint_enable(workspace_id=endpoint.workspace_id, url=endpoint.url)
        self.message_user(request, f"Re-enabled {len(disabled)} endpoint(s).", messages.SUCCESS)


@admin.register(WebhookSecret)
class WebhookSecretAdmin(AuditedModelAdmin):
    """Secrets are never displayed here (stored encrypted); rotating shows the new one once."""

    list_display = ["workspace", "created_at", "rotated_at", "previous_expires_at"]
    search_fields = ["workspace__id", "workspace__name"]
    fields = ["workspace", "created_at", "rotated_at", "previous_expires_at"]
    readonly_fields = fields
    actions = ["rotate"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Rotate the secret (the old one signs for 24 h more)")
    def rotate(self, request, queryset):
        for row in queryset:
            secret = webhook_secret_rotate(workspace_id=row.workspace_id)
            self.message_user(
                request,
                f"New webhook secret of {row.workspace_id} (shown once): {secret}",
                messages.WARNING,
            )


@admin.register(Approval)
class ApprovalAdmin(AuditedModelAdmin):
    """Tool calls waiting for an operator: approve or deny them here (as in the API); the run
    resumes on any worker once none of its calls waits."""

    list_display = ["tool", "agent_id", "run_link", "status", "deadline_at", "created_at"]
    list_filter = ["status", "tool"]
    search_fields = ["id", "run__id", "tool", "agent_id"]
    list_select_related = ["run"]
    readonly_fields = [
        "id", "run", "key", "agent_id", "tool", "call_id", "arguments", "status",
        "edited_arguments", "reason", "decided_by", "decided_at", "deadline_at", "created_at",
    ]  # fmt: skip
    actions = ["approve_selected", "deny_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Run")
    def run_link(self, approval: Approval):
        url = reverse("admin:swarms_run_change", args=[approval.run_id])
        return format_html('<a href="{}">{}</a>', url, approval.run_id)

    def _decide(self, request, queryset, approved: bool) -> None:
        for approval in queryset:
            try:
                approval_decide(
                    approval=approval, approved=approved, decided_by=request.user,
                    reason="" if approved else "denied in the admin",
                )  # fmt: skip
            except ApplicationError as exc:
                self.message_user(request, f"{approval.pk}: {exc.message}", messages.WARNING)
            else:
                verb = "approved" if approved else "denied"
                self.message_user(request, f"{approval.tool} call {approval.pk} {verb}.")

    @admin.action(description="Approve the selected tool calls")
    def approve_selected(self, request, queryset):
        self._decide(request, queryset, approved=True)

    @admin.action(description="Deny the selected tool calls")
    def deny_selected(self, request, queryset):
        self._decide(request, queryset, approved=False)

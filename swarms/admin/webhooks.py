"""Webhooks in the admin: every delivery attempt (redeliver as an action), endpoints (re-enable)
and signing secrets (rotate; never shown but once)."""

from django.contrib import admin, messages

from audit.admin import AuditedModelAdmin
from swarms.admin.pages import run_link
from swarms.models import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)
from swarms.webhooks.delivery import webhook_endpoint_enable, webhook_redeliver
from swarms.webhooks.signing import webhook_secret_rotate


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedModelAdmin):
    list_display = ["message_id", "attempt", "run_short", "workspace", "event_type",
                    "status_code", "success", "latency_ms", "short_error", "manual",
                    "created_at"]  # fmt: skip
    list_filter = ["success", "manual", "event_type", "status_code", "created_at"]
    search_fields = ["message_id", "run__id", "url", "workspace__id", "workspace__name"]
    list_select_related = ["workspace"]
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

    @admin.display(description="Run", ordering="run")
    def run_short(self, delivery):
        return run_link(delivery.run_id)

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

"""Approvals in the admin: tool calls waiting for an operator, approved or denied as actions."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from audit.admin import AuditedModelAdmin
from sverm.api.errors import ApplicationError
from swarms.models import (
    Approval,
)
from swarms.services.approvals import approval_decide


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

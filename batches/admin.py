"""Batches in the admin: where each stands (counts, cost against its budget), its items inline
with links to their runs, and cancel as an action. Batches are made through the API."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from audit.admin import AuditedModelAdmin
from batches import services
from batches.models import Batch, BatchItem
from batches.selectors import batches_with_running_cost
from sverm.api.errors import ApplicationError
from sverm.money import money


class BatchItemInline(admin.TabularInline):
    model = BatchItem
    extra = 0
    can_delete = False
    fields = ["index", "custom_id", "short_task", "status", "run_link", "cost_usd", "error_code",
              "started_at", "completed_at"]  # fmt: skip
    readonly_fields = fields
    ordering = ["index"]

    def get_queryset(self, request):
        return super().get_queryset(request).only(
            "id", "batch_id", "index", "custom_id", "task", "status", "run_id", "cost_usd",
            "error_code", "started_at", "completed_at",
        )  # fmt: skip

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Task")
    def short_task(self, item: BatchItem) -> str:
        return item.task if len(item.task) <= 80 else item.task[:79] + "…"

    @admin.display(description="Run")
    def run_link(self, item: BatchItem):
        if not item.run_id:
            return "-"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:swarms_run_change", args=[item.run_id]),
            item.run_id,
        )  # fmt: skip


@admin.register(Batch)
class BatchAdmin(AuditedModelAdmin):
    audit_target_type = "batch"
    list_display = ["id", "workspace", "source", "status", "counts", "cost_and_budget",
                    "concurrency", "created_at", "completed_at"]  # fmt: skip
    list_filter = ["status", "budget_mode"]
    search_fields = ["id", "workspace__name", "workspace__id", "swarm__name", "template_id"]
    list_select_related = ["workspace", "swarm"]
    date_hierarchy = "created_at"
    inlines = [BatchItemInline]
    fields = ["id", "workspace", "swarm", "version", "template_id", "status", "budget_mode",
              "total_budget_usd", "item_budget_usd", "concurrency", "counts", "cost_and_budget",
              "error_code", "error_message", "blocked_reason", "created_by", "created_at",
              "started_at", "cancelled_at", "completed_at"]  # fmt: skip
    readonly_fields = fields
    actions = ["cancel_batches"]

    def get_queryset(self, request):
        return batches_with_running_cost(super().get_queryset(request))

    def has_add_permission(self, request):
        return False  # made through the API, where inputs and budgets are checked

    def has_delete_permission(self, request, obj=None):
        return False  # its runs are in the usage ledger; cancel instead

    @admin.display(description="Swarm / template")
    def source(self, batch: Batch) -> str:
        return str(batch.swarm) if batch.swarm_id else batch.template_id

    @admin.display(description="Items")
    def counts(self, batch: Batch) -> str:
        parts = [f"{batch.items_ended}/{batch.items_total} ended"]
        for name in ("running", "completed", "failed", "cancelled", "skipped"):
            count = getattr(batch, f"items_{name}")
            if count:
                parts.append(f"{count} {name}")
        return ", ".join(parts)

    @admin.display(description="Cost / budget (USD)")
    def cost_and_budget(self, batch: Batch) -> str:
        running = getattr(batch, "running_cost", None) or 0
        return f"{money(batch.shown_spent_usd + running)} / {money(batch.total_budget_usd)}"

    @admin.action(description="Cancel selected batches")
    def cancel_batches(self, request, queryset):
        cancelled, refused = 0, []
        for batch in queryset:
            try:
                services.batch_cancel(batch=batch)
                cancelled += 1
            except ApplicationError as exc:
                refused.append(exc.message)
        if cancelled:
            self.message_user(
                request,
                f"Cancelled {cancelled} batch(es): pending items skipped, running runs stopping.",
                messages.SUCCESS,
            )
        for message in refused:
            self.message_user(request, message, messages.WARNING)

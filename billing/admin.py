"""Admin for prices (editable), the ledger (read-only) and monthly rollups (read-only)."""

from django.contrib import admin

from billing.models import ModelPrice, MonthlyUsage, UsageRecord


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "provider", "input_per_million", "output_per_million", "updated_at"]
    list_editable = ["input_per_million", "output_per_million"]
    list_filter = ["provider"]
    search_fields = ["model", "provider"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "run_id", "agent_id", "model", "tokens_in",
                    "tokens_out", "cost_usd"]  # fmt: skip
    list_filter = ["model", "provider", "swarm_type", "created_at"]
    search_fields = ["run_id", "swarm_id", "workspace__name", "workspace__id", "agent_id"]
    list_select_related = ["workspace"]
    date_hierarchy = "created_at"


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdmin):
    list_display = ["month", "workspace", "swarm_type", "runs", "tokens_in", "tokens_out",
                    "cost_usd"]  # fmt: skip
    list_filter = ["month", "swarm_type"]
    search_fields = ["workspace__name", "workspace__id"]
    list_select_related = ["workspace"]

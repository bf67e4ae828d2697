"""Admin for prices (editable), the ledger (read-only), monthly rollups (read-only) and the
usage report of one workspace and month: a table per swarm type and a daily cost chart."""

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from accounts.models import Workspace
from audit.admin import AuditedModelAdmin
from billing.models import ModelPrice, MonthlyUsage, UsageRecord
from billing.periods import current_month, month_parse
from billing.selectors import DayCost, usage_daily_cost, usage_month

CHART_WIDTH, CHART_HEIGHT, CHART_GAP = 720, 160, 2


@admin.register(ModelPrice)
class ModelPriceAdmin(AuditedModelAdmin):
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


class UsageReportForm(forms.Form):
    workspace = forms.CharField(max_length=32, help_text="Workspace id (wsp_…).")
    month = forms.CharField(
        max_length=7,
        required=False,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
        help_text="YYYY-MM (UTC); the current month if empty.",
    )

    def clean_workspace(self) -> Workspace:
        workspace = Workspace.objects.filter(pk=self.cleaned_data["workspace"].strip()).first()
        if workspace is None:
            raise forms.ValidationError("No such workspace.")
        return workspace

    def clean_month(self):
        text = self.cleaned_data["month"].strip()
        if not text:
            return current_month()
        try:
            return month_parse(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@dataclass(frozen=True)
class Bar:
    day: int
    label: str
    x: float
    y: float
    width: float
    height: float


def daily_bars(days: list[DayCost]) -> tuple[list[Bar], Decimal]:
    """SVG geometry of one bar per day, scaled to the month's costliest day."""
    peak = max((day.cost_usd for day in days), default=Decimal(0))
    slot = CHART_WIDTH / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        height = float(day.cost_usd / peak) * CHART_HEIGHT if peak else 0.0
        bars.append(
            Bar(
                day=day.day.day,
                label=f"{day.day.isoformat()}: ${day.cost_usd}",
                x=round(index * slot + CHART_GAP / 2, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(slot - CHART_GAP, 2),
                height=round(height, 2),
            )
        )
    return bars, peak


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdmin):
    list_display = ["month", "workspace", "swarm_type", "runs", "tokens_in", "tokens_out",
                    "cost_usd", "report_link"]  # fmt: skip
    list_filter = ["month", "swarm_type"]
    search_fields = ["workspace__name", "workspace__id"]
    list_select_related = ["workspace"]

    def get_urls(self):
        report = path(
            "report/",
            self.admin_site.admin_view(self.report_view),
            name="billing_monthlyusage_report",
        )
        return [report, *super().get_urls()]

    @admin.display(description="Report")
    def report_link(self, row: MonthlyUsage):
        query = urlencode({"workspace": row.workspace_id, "month": f"{row.month:%Y-%m}"})
        url = reverse("admin:billing_monthlyusage_report")
        return format_html('<a href="{}?{}">Report</a>', url, query)

    def report_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = UsageReportForm(request.GET or None, initial={"month": f"{current_month():%Y-%m}"})
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage report",
            "opts": self.model._meta,
            "form": form,
            "chart_width": CHART_WIDTH,
            "chart_height": CHART_HEIGHT,
        }
        if form.is_valid():
            workspace, month = form.cleaned_data["workspace"], form.cleaned_data["month"]
            days = usage_daily_cost(workspace_id=workspace.pk, month=month)
            bars, peak = daily_bars(days)
            context.update(
                title=f"Usage of {workspace.name}, {month:%B %Y}",
                workspace=workspace,
                month=month,
                usage=usage_month(workspace_id=workspace.pk, month=month),
                bars=bars,
                peak=peak,
                ledger_total=sum((day.cost_usd for day in days), Decimal(0)),
            )
        return TemplateResponse(request, "admin/billing/monthlyusage/report.html", context)

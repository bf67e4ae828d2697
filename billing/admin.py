"""Admin for prices (editable), the ledger (read-only), monthly rollups (read-only) and the
usage report of one workspace and month: a table per swarm type, API key, user or model, a
daily cost chart, and the table as CSV."""

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from accounts.models import Workspace
from audit.admin import AuditedModelAdmin, ViewOnlyAdminMixin
from billing.exports import CSV_MEDIA_TYPE, TOTAL_ROW, csv_text, usage_csv
from billing.models import ModelPrice, MonthlyUsage, UsageRecord
from billing.periods import current_month, month_parse, month_span
from billing.selectors import (
    LABELS,
    RUN_GROUPINGS,
    DayCost,
    MonthUsage,
    UsageBreakdown,
    usage_breakdown,
    usage_daily_cost,
    usage_month,
)
from billing.serializers import UsageGroupSerializer, UsageSerializer

CHART_WIDTH, CHART_HEIGHT, CHART_GAP = 720, 160, 2


@admin.register(ModelPrice)
class ModelPriceAdmin(AuditedModelAdmin):
    list_display = ["model", "provider", "input_per_million", "output_per_million", "updated_at"]
    list_editable = ["input_per_million", "output_per_million"]
    list_filter = ["provider"]
    search_fields = ["model", "provider"]


@admin.register(UsageRecord)
class UsageRecordAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "workspace", "run_id", "agent_id", "model", "tokens_in",
                    "tokens_out", "cost_usd", "user_id", "api_key_id"]  # fmt: skip
    list_filter = ["model", "provider", "swarm_type", "created_at"]
    search_fields = ["run_id", "swarm_id", "workspace__name", "workspace__id", "agent_id",
                     "user_id", "api_key_id"]  # fmt: skip
    list_select_related = ["workspace"]
    date_hierarchy = "created_at"


# What the report's table can be grouped by: the rollup's swarm types, or the ledger's keys,
# users or models (as `/api/usage` groups them).
REPORT_GROUPINGS = [("swarm_type", "Swarm type"), ("api_key", "API key"), ("user", "User"),
                    ("model", "Model")]  # fmt: skip
_GROUP_NOUNS = {"swarm_type": "swarm type", "api_key": "API key", "user": "user",
                "model": "model"}  # fmt: skip


class UsageReportForm(forms.Form):
    workspace = forms.ModelChoiceField(
        queryset=Workspace.objects.all(),
        error_messages={"invalid_choice": "No such workspace."},
        help_text="Type to search workspaces by name (or id).",
    )
    month = forms.CharField(
        max_length=7,
        required=False,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
        help_text="YYYY-MM (UTC); the current month if empty.",
    )
    group_by = forms.ChoiceField(
        choices=REPORT_GROUPINGS, required=False, label="Group by",
        help_text="API key and user: who started the runs.",
    )  # fmt: skip

    def __init__(self, *args, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        # Django's autocomplete (WorkspaceAdmin's search: name, id, member emails), as a
        # foreign key to a workspace gets in the admin: no list of every workspace.
        field = self.fields["workspace"]
        field.widget = AutocompleteSelect(MonthlyUsage._meta.get_field("workspace"), admin_site)
        field.widget.choices = field.choices

    def clean_group_by(self) -> str:
        return self.cleaned_data["group_by"] or "swarm_type"

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
class MonthlyUsageAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
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
        """The report page; with `format=csv`, its table as a CSV attachment."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = UsageReportForm(
            request.GET or None, initial={"month": f"{current_month():%Y-%m}"},
            admin_site=self.admin_site,
        )  # fmt: skip
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
            group_by = form.cleaned_data["group_by"]
            usage = usage_month(workspace_id=workspace.pk, month=month)
            breakdown = None
            if group_by != "swarm_type":
                start, end = month_span(month)
                breakdown = usage_breakdown(
                    records=UsageRecord.objects.in_workspace(workspace.pk), start=start,
                    end=end, group_by=group_by,
                )  # fmt: skip
            query = {"workspace": workspace.pk, "month": f"{month:%Y-%m}", "group_by": group_by}
            if request.GET.get("format") == "csv":
                return _report_csv(workspace, month, group_by, usage, breakdown)
            days = usage_daily_cost(workspace_id=workspace.pk, month=month)
            bars, peak = daily_bars(days)
            context.update(
                title=f"Usage of {workspace.name}, {month:%B %Y}",
                workspace=workspace,
                month=month,
                group_by=group_by,
                group_label=dict(REPORT_GROUPINGS)[group_by],
                group_noun=_GROUP_NOUNS[group_by],
                usage=usage,
                grouped=_grouped_table(breakdown) if breakdown is not None else None,
                csv_url=f"{reverse('admin:billing_monthlyusage_report')}?"
                f"{urlencode({**query, 'format': 'csv'})}",
                bars=bars,
                peak=peak,
                ledger_total=sum((day.cost_usd for day in days), Decimal(0)),
            )
        return TemplateResponse(request, "admin/billing/monthlyusage/report.html", context)


@dataclass(frozen=True)
class ReportRow:
    key: str | None
    link: str | None
    labels: list[str | None]
    runs: int | None
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


_CHANGE_PAGES = {"api_key": "admin:accounts_apikey_change", "user": "admin:accounts_user_change"}


def _change_link(group_by: str, key: str | None) -> str | None:
    """The admin page of the row's key or user, when there is one."""
    if key is None or group_by not in _CHANGE_PAGES:
        return None
    try:
        return reverse(_CHANGE_PAGES[group_by], args=[quote(key)])
    except NoReverseMatch:
        return None


def _grouped_table(breakdown: UsageBreakdown) -> dict:
    """The report's table of a ledger breakdown: headers and rows as the template shows them."""
    labels = LABELS.get(breakdown.group_by, ())
    rows = [
        ReportRow(
            key=group.key, link=_change_link(breakdown.group_by, group.key),
            labels=[group.labels.get(label) for label in labels], runs=group.runs,
            calls=group.calls, tokens_in=group.tokens_in, tokens_out=group.tokens_out,
            cost_usd=group.cost_usd,
        )
        for group in breakdown.data
    ]  # fmt: skip
    return {
        "labels": [label.capitalize() for label in labels],
        "has_runs": breakdown.group_by in RUN_GROUPINGS,
        "rows": rows,
        "totals": breakdown.totals,
    }


def _report_csv(
    workspace: Workspace, month, group_by: str, usage: MonthUsage, breakdown
) -> HttpResponse:
    """The report's table as CSV: by swarm type from the rollup (its runs started in the month),
    otherwise exactly `/api/usage`'s CSV of the month grouped so."""
    if breakdown is not None:
        text = usage_csv(UsageSerializer(breakdown).data, UsageGroupSerializer.columns(group_by))
    else:
        header = ["row", "key", "runs", "costUsd", "tokensIn", "tokensOut"]
        lines = [["group", t.swarm_type, t.count, t.total_usd, t.tokens_in, t.tokens_out]
                 for t in usage.types]  # fmt: skip
        tokens_in = sum(t.tokens_in for t in usage.types)
        tokens_out = sum(t.tokens_out for t in usage.types)
        lines.append([TOTAL_ROW, None, usage.total_swarms, usage.total_usd, tokens_in,
                      tokens_out])  # fmt: skip
        text = csv_text(header, lines)
    response = HttpResponse(text, content_type=f"{CSV_MEDIA_TYPE}; charset=utf-8")
    filename = f"usage_{workspace.pk}_{month:%Y-%m}_by-{group_by}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

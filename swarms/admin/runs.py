"""Runs in the admin: a list that finds the ones needing attention (stuck), a run page laid out
for reading with Cancel and Retry buttons, and each run's timeline of events."""

import json
import operator
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from functools import reduce

import yaml
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from audit.admin import AuditedModelAdmin, ViewOnlyAdminMixin
from billing.models import UsageRecord
from sverm.admin_format import (
    EMPTY,
    duration_text,
    exact_time,
    filtered_changelist,
    time_ago,
    usage_report_url,
    usd_cell,
    usd_text,
)
from sverm.api.errors import ApplicationError
from swarms import services
from swarms.admin.pages import (
    ADMIN_CSS,
    clipped,
    run_admin_url,
    run_link,
    short_run_id,
)
from swarms.engine.events import AGENT_COMPLETED, AGENT_STARTED
from swarms.models import (
    TERMINAL_STATUSES,
    Approval,
    Run,
    RunEvent,
    RunStatus,
    RunStep,
)
from swarms.selectors import run_cost_report
from swarms.services.lifecycle import runs_silent_filter
from swarms.services.runs import RETRYABLE_STATUSES
from swarms.views_live import planned_agents

EVENTS_PER_PAGE = 50
FOLD_AT = 88  # the definition's long lines are folded about here
# The paused statuses' labels in the list's narrow column (the whole label is the title).
SHORT_STATUS = {
    RunStatus.AWAITING_APPROVAL: "Needs approval",
    RunStatus.AWAITING_BUDGET: "Needs budget",
}
DELIVERIES_SHOWN = 10
EVENT_SUMMARY_CHARS = 140


def event_summary(event: RunEvent) -> str:
    """An event's data on one line: what it says first (its summary, error, output...), else
    its JSON. Pages clip it and show the whole on hover."""
    data = event.data or {}
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    for key in ("summary", "error_message", "output", "arguments", "target"):
        if data.get(key):
            text = f"{key}: {data[key]}"
            break
    return text


class ReadableDumper(yaml.SafeDumper):
    """YAML for reading: multi-line text as a block (`|`), long lines folded (`>`), so that
    instructions read as the prose they are rather than one quoted line."""


def _readable_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else ">" if len(text) > FOLD_AT else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


ReadableDumper.add_representer(str, _readable_str)


def definition_yaml(definition) -> str:
    """A definition as the YAML one would write (keys in their order), for the run page."""
    return yaml.dump(definition, Dumper=ReadableDumper, sort_keys=False, allow_unicode=True,
                     width=FOLD_AT + 8)  # fmt: skip


class StuckFilter(admin.SimpleListFilter):
    """Runs that may need an operator: a running run whose worker has been silent longer than
    the reaper waits (SVERM_STALE_AFTER_SECONDS: the reaper resumes or fails it), an unfinished
    run already resumed after a lost worker (attempt > 1, pauses for approvals not counted),
    and runs paused for an approval or a bigger budget."""

    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [
            ("any", "Any of these"),
            ("silent", f"Worker silent > {settings.SVERM_STALE_AFTER_SECONDS:g}s"),
            ("resumed", "Resumed (attempt > 1)"),
            ("approval", "Awaiting approval"),
            ("budget", "Awaiting budget"),
        ]

    def queryset(self, request, queryset):
        conditions = {
            "silent": runs_silent_filter(),
            "resumed": Q(attempt__gt=F("pauses") + 1) & ~Q(status__in=TERMINAL_STATUSES),
            "approval": Q(status=RunStatus.AWAITING_APPROVAL),
            "budget": Q(status=RunStatus.AWAITING_BUDGET),
        }
        if self.value() == "any":
            return queryset.filter(reduce(operator.or_, conditions.values()))
        if self.value() in conditions:
            return queryset.filter(conditions[self.value()])
        return queryset


class TemplateFilter(admin.AllValuesFieldListFilter):
    """`swarm_type`: the template a run was started from, or `custom`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "template"


class ApprovalInline(admin.TabularInline):
    """The run's tool calls (and agent steps) that waited for an operator; decide on pending
    ones from the Approvals list or the live page."""

    model = Approval
    extra = 0
    can_delete = False
    fields = ["decide_link", "agent_id", "tool", "status", "arguments", "edited_arguments",
              "reason", "decided_by", "deadline"]  # fmt: skip
    readonly_fields = fields
    ordering = ["created_at"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Approval")
    def decide_link(self, approval: Approval):
        url = reverse("admin:swarms_approval_change", args=[approval.pk])
        return format_html('<a href="{}">{}</a>', url, approval.pk)

    @admin.display(description="Deadline")
    def deadline(self, approval: Approval):
        return exact_time(approval.deadline_at)


class RunStepInline(admin.TabularInline):
    """Each LLM call's checkpoint: which attempt made it, what it reserved and cost. Interrupted
    steps hold their reservation against the budget until an operator reconciles them with the
    provider's bill."""

    model = RunStep
    extra = 0
    can_delete = False
    verbose_name = "call checkpoint"
    fields = ["attempt", "agent_id", "model", "status", "reserved", "cost", "tokens_in",
              "tokens_out", "updated"]  # fmt: skip
    readonly_fields = fields
    ordering = ["id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Reserved (USD)")
    def reserved(self, step: RunStep):
        return usd_cell(step.reserved_usd)

    @admin.display(description="Cost (USD)")
    def cost(self, step: RunStep):
        return usd_cell(step.cost_usd)

    @admin.display(description="Updated")
    def updated(self, step: RunStep):
        return exact_time(step.updated_at)


@admin.register(Run)
class RunAdmin(ViewOnlyAdminMixin, AuditedModelAdmin):
    """Runs as operators read and steer them: a compact list that fits a 1366 px screen, with
    the filters that find runs needing attention (stuck), and a run page laid out for reading
    (summary, links, cost report, agents, definition as YAML, the timeline paged) with Cancel
    and Retry buttons that call the run services. View only otherwise: runs are changed by the
    engine, and by operators through the buttons."""

    list_display = ["short_id", "task_short", "origin", "status_badge", "error", "cost",
                    "budget", "attempt", "heartbeat", "creator", "duration",
                    "live_link"]  # fmt: skip
    list_display_links = ["short_id"]
    list_filter = ["status", StuckFilter, ("workspace", admin.RelatedOnlyFieldListFilter),
                   ("swarm_type", TemplateFilter), "simulated", "created_at"]  # fmt: skip
    search_fields = ["id", "task", "workspace__name", "workspace__id", "swarm__id", "swarm__name",
                     "error_code"]  # fmt: skip
    list_select_related = ["swarm", "created_by", "api_key"]
    list_per_page = 50
    date_hierarchy = "created_at"
    inlines = [ApprovalInline, RunStepInline]
    actions = ["cancel_runs"]
    change_form_template = "admin/swarms/run/change_form.html"
    fieldsets = [
        (None, {"fields": ["id", "status_badge", "error_text", "task_text", "origin_link",
                           "workspace_link", "creator", "retry_links", "simulated",
                           "webhook_url"]}),
        ("Links", {"fields": ["links"]}),
        ("Cost and progress", {"fields": ["cost_exact", "budget_exact", "estimated",
                                          "budget_needed", "progress_percent", "agents_count",
                                          "attempt", "pauses"]}),
        ("Times", {"fields": ["created_exact", "started_exact", "completed_exact",
                              "heartbeat_exact", "cancel_requested_exact", "pause_deadline_exact",
                              "duration"]}),
        ("Output", {"fields": ["output_text"]}),
    ]  # fmt: skip
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    class Media:
        css = ADMIN_CSS

    def has_steer_permission(self, request) -> bool:
        """Cancel and retry: the `change_run` permission (superusers have it), although the
        run's fields are never edited in a form."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    # --- the list ----------------------------------------------------------------------------
    @admin.display(description="Run", ordering="created_at")
    def short_id(self, run: Run):
        return format_html('<span class="run-id" title="{} created {}">{}</span>', run.pk,
                           exact_time(run.created_at), short_run_id(run.pk))  # fmt: skip

    @admin.display(description="Task")
    def task_short(self, run: Run):
        return format_html('<span class="run-task" title="{}">{}</span>', clipped(run.task, 2000),
                           clipped(run.task, 60))  # fmt: skip

    @admin.display(description="Swarm / template", ordering="swarm_type")
    def origin(self, run: Run):
        if run.swarm_id:
            url = reverse("admin:swarms_swarm_change", args=[quote(run.swarm_id)])
            return format_html('<a class="run-origin" href="{}" title="swarm {} ({})">{}</a>', url,
                               run.swarm.name, run.swarm_id, run.swarm.name)  # fmt: skip
        label = run.template_id or "inline"
        return format_html('<span class="run-origin" title="{}">{}</span>', run.swarm_type, label)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run: Run):
        label = run.get_status_display()
        return format_html('<span class="status-badge status-{}" title="{}">{}</span>',
                           run.status, label, SHORT_STATUS.get(run.status, label))  # fmt: skip

    @admin.display(description="Error", ordering="error_code")
    def error(self, run: Run):
        if not run.error_code:
            return EMPTY
        return format_html('<span class="run-error" title="{}">{}</span>',
                           clipped(run.error_message, 2000), run.error_code)  # fmt: skip

    @admin.display(description="Cost", ordering="current_cost_usd")
    def cost(self, run: Run):
        return usd_cell(run.current_cost_usd)

    @admin.display(description="Budget", ordering="max_budget_usd")
    def budget(self, run: Run):
        return usd_cell(run.max_budget_usd)

    @admin.display(description="Heartbeat", ordering="heartbeat_at")
    def heartbeat(self, run: Run):
        stale = timedelta(seconds=settings.SVERM_STALE_AFTER_SECONDS)
        silent = (
            run.status == RunStatus.RUNNING
            and run.heartbeat_at is not None
            and timezone.now() - run.heartbeat_at > stale
        )
        return time_ago(run.heartbeat_at, css="run-silent" if silent else "")

    @admin.display(description="Created by")
    def creator(self, run: Run):
        if run.api_key_id:
            key = run.api_key
            text = f"key: {key.name} ({key.prefix}…)"
        elif run.created_by_id:
            text = run.created_by.email
        else:
            return EMPTY
        return format_html('<span class="run-creator" title="{}">{}</span>', text, text)

    @admin.display(description="Duration")
    def duration(self, run: Run):
        if run.started_at is None:
            return EMPTY
        if run.completed_at is not None:
            return duration_text(run.completed_at - run.started_at)
        return format_html('<span class="run-ongoing" title="so far">{}</span>',
                           duration_text(timezone.now() - run.started_at))  # fmt: skip

    @admin.display(description="Live")
    def live_link(self, run: Run):
        return format_html(
            '<a href="{}" class="run-live-link">Live</a>', reverse("run-live", args=[run.pk])
        )

    def changelist_view(self, request, extra_context=None):
        # The columns need the width; the app sidebar would squeeze them off a 1366 px screen.
        extra_context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    # --- the run page ------------------------------------------------------------------------
    @admin.display(description="Task")
    def task_text(self, run: Run):
        return format_html('<div class="run-text">{}</div>', run.task)

    @admin.display(description="Error")
    def error_text(self, run: Run):
        if not run.error_code:
            return EMPTY
        return format_html('<code>{}</code> <div class="run-text">{}</div>', run.error_code,
                           run.error_message)  # fmt: skip

    @admin.display(description="Swarm / template")
    def origin_link(self, run: Run):
        if run.swarm_id:
            swarm = reverse("admin:swarms_swarm_change", args=[quote(run.swarm_id)])
            text = format_html('<a href="{}">{}</a> <code>{}</code>', swarm, run.swarm.name,
                               run.swarm_id)  # fmt: skip
            if run.version_id:
                version = reverse("admin:swarms_swarmversion_change", args=[quote(run.version_id)])
                text = format_html('{}, <a href="{}">version {}</a>', text, version,
                                   run.version.number)  # fmt: skip
            return text
        if run.template_id:
            return format_html("template <code>{}</code>", run.template_id)
        return "inline definition"

    @admin.display(description="Workspace")
    def workspace_link(self, run: Run):
        url = reverse("admin:accounts_workspace_change", args=[quote(run.workspace_id)])
        return format_html('<a href="{}">{}</a> <code>{}</code>', url, run.workspace.name,
                           run.workspace_id)  # fmt: skip

    @admin.display(description="Retries")
    def retry_links(self, run: Run):
        parts = []
        if run.retry_of_id:
            parts.append(format_html("retry of {}", run_link(run.retry_of_id)))
        retries = list(run.retries.values_list("pk", flat=True))
        if retries:
            links = format_html_join(", ", "{}", ((run_link(pk),) for pk in retries))
            parts.append(format_html("retried as {}", links))
        return format_html_join("; ", "{}", ((part,) for part in parts)) if parts else EMPTY

    @admin.display(description="Pages")
    def links(self, run: Run):
        items = [
            (reverse("run-live", args=[run.pk]),
             f"{'Replay' if run.is_terminal else 'Watch'} this run live"),
            (filtered_changelist("admin:swarms_runevent_changelist", run__id__exact=run.pk),
             "Its events (filter by type)"),
            (filtered_changelist("admin:swarms_webhookdelivery_changelist", run__id__exact=run.pk),
             "Webhook deliveries"),
            (filtered_changelist("admin:swarms_approval_changelist", run__id__exact=run.pk),
             "Approvals"),
            (usage_report_url(run.workspace_id, run.created_at),
             f"Usage report of {run.workspace.name}, {timezone.localtime(run.created_at):%B %Y}"),
        ]  # fmt: skip
        return format_html(
            '<ul class="run-links">{}</ul>',
            format_html_join("", '<li><a href="{}" class="run-live-link">{}</a></li>', items[:1])
            + format_html_join("", '<li><a href="{}">{}</a></li>', items[1:]),
        )

    @admin.display(description="Cost")
    def cost_exact(self, run: Run):
        return usd_cell(run.current_cost_usd)

    @admin.display(description="Budget")
    def budget_exact(self, run: Run):
        return usd_cell(run.max_budget_usd)

    @admin.display(description="Estimated cost")
    def estimated(self, run: Run):
        return usd_cell(run.estimated_cost_usd)

    @admin.display(description="Budget needed to resume")
    def budget_needed(self, run: Run):
        return usd_cell(run.budget_needed_usd)

    @admin.display(description="Progress")
    def progress_percent(self, run: Run):
        return f"{run.progress:.0%}"

    @admin.display(description="Agents active / total")
    def agents_count(self, run: Run):
        return f"{run.agents_active} / {run.agents_total}"

    @admin.display(description="Created")
    def created_exact(self, run: Run):
        return exact_time(run.created_at)

    @admin.display(description="Started")
    def started_exact(self, run: Run):
        return exact_time(run.started_at)

    @admin.display(description="Ended")
    def completed_exact(self, run: Run):
        return exact_time(run.completed_at)

    @admin.display(description="Last heartbeat")
    def heartbeat_exact(self, run: Run):
        if run.heartbeat_at is None:
            return EMPTY
        return format_html("{} ({})", exact_time(run.heartbeat_at), time_ago(run.heartbeat_at))

    @admin.display(description="Cancel requested")
    def cancel_requested_exact(self, run: Run):
        return exact_time(run.cancel_requested_at)

    @admin.display(description="Budget pause deadline")
    def pause_deadline_exact(self, run: Run):
        return exact_time(run.pause_deadline_at)

    @admin.display(description="Output")
    def output_text(self, run: Run):
        if not run.output:
            return EMPTY
        return format_html('<pre class="run-output">{}</pre>', run.output)

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):  # fmt: skip
        if obj is not None:  # the run the change view already read
            context = {**self.run_page_context(request, obj), **context}
        return super().render_change_form(request, context, add, change, form_url, obj)

    def run_page_context(self, request, run: Run) -> dict:
        """What the run page shows under its fields: the cost report, the agents, a page of
        the timeline, the latest webhook deliveries, and which buttons apply."""
        report = run_cost_report(run=run)
        calls = Counter(
            {
                (row["agent_id"], row["model"]): row["calls"]
                for row in UsageRecord.objects.filter(run_id=run.pk)
                .values("agent_id", "model")
                .annotate(calls=Count("id"))
            }
        )
        cost_rows = [
            {"agent": a, "calls": a.tool_calls or calls[(a.agent_id, a.model)]}
            for a in report.agents
        ]
        states = dict(
            RunEvent.objects.filter(run_id=run.pk, type__in=[AGENT_STARTED, AGENT_COMPLETED])
            .order_by("seq")
            .values_list("agent_id", "type")
        )
        spent: dict[str, Decimal] = {}
        for agent in report.agents:
            spent[agent.agent_id] = spent.get(agent.agent_id, Decimal(0)) + agent.cost_usd
        agents = [
            {**agent, "state": {AGENT_STARTED: "working", AGENT_COMPLETED: "done"}.get(
                states.get(agent["id"], ""), "waiting"), "cost": usd_text(spent.get(agent["id"]))}
            for agent in planned_agents(run)
        ]  # fmt: skip
        events = Paginator(RunEvent.objects.filter(run_id=run.pk).order_by("seq"), EVENTS_PER_PAGE)
        page = events.get_page(request.GET.get("events_page"))
        deliveries = list(run.webhook_deliveries.order_by("-created_at")[:DELIVERIES_SHOWN])
        steer = self.has_steer_permission(request)
        return {
            "definition_yaml": definition_yaml(run.definition),
            "cost_report": report,
            "cost_rows": cost_rows,
            "cost_total": usd_text(report.total_usd),
            "total_calls": sum(row["calls"] for row in cost_rows),
            "run_agents": agents,
            "events_page": page,
            "event_rows": [
                {"event": e, "at": exact_time(e.created_at), "summary": event_summary(e)}
                for e in page.object_list
            ],
            "deliveries": [
                {"delivery": d, "at": exact_time(d.created_at), "error": clipped(d.error, 120)}
                for d in deliveries
            ],
            "deliveries_url": (
                filtered_changelist(
                    "admin:swarms_webhookdelivery_changelist", run__id__exact=run.pk
                )
            ),
            "events_url": filtered_changelist(
                "admin:swarms_runevent_changelist", run__id__exact=run.pk
            ),
            "can_cancel": steer and not run.is_terminal,
            "can_retry": steer and run.status in RETRYABLE_STATUSES,
            "cancel_url": reverse("admin:swarms_run_cancel", args=[quote(run.pk)]),
            "retry_url": reverse("admin:swarms_run_retry", args=[quote(run.pk)]),
            "live_url": reverse("run-live", args=[run.pk]),
        }

    # --- Cancel and Retry --------------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view),
                 name="{}_{}_cancel".format(*info)),
            path("<path:object_id>/retry/", self.admin_site.admin_view(self.retry_view),
                 name="{}_{}_retry".format(*info)),
            *super().get_urls(),
        ]  # fmt: skip

    def _steered_run(self, request, object_id: str) -> Run:
        if not self.has_steer_permission(request):
            raise PermissionDenied
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404(f"No run {object_id}.")
        return run

    def _back(self, request, run: Run):
        """To `next` (the live page posts it) when it is this site's, else to the run page."""
        target = request.POST.get("next", "")
        safe = url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        return redirect(target if target and safe else run_admin_url(run.pk))

    def cancel_view(self, request, object_id: str):
        """The Cancel button: `run_cancel`, and a message saying what it did."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self._steered_run(request, object_id)
        if run.status == RunStatus.CANCELLED:
            self.message_user(request, f"Run {run.pk} is already cancelled; nothing changed.",
                              messages.WARNING)  # fmt: skip
            return self._back(request, run)
        try:
            run = services.run_cancel(run=run)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            if run.status == RunStatus.CANCELLED:
                self.message_user(request, f"Cancelled run {run.pk}.", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"Asked run {run.pk} to stop: its worker aborts the calls in flight and it "
                    "ends cancelled within a second.",
                    messages.SUCCESS,
                )
        return self._back(request, run)

    def retry_view(self, request, object_id: str):
        """The Retry button: `run_retry` starts the run again as a new run (linked to this
        one); the operator is taken to it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self._steered_run(request, object_id)
        try:
            retry = services.run_retry(run=run, created_by=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return self._back(request, run)
        self.message_user(
            request,
            format_html("Retrying run {} as run {}: same definition, task and budget.",
                        run_link(run.pk), retry.pk),
            messages.SUCCESS,
        )  # fmt: skip
        return redirect(run_admin_url(retry.pk))

    @admin.action(description="Cancel selected runs", permissions=["steer"])
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


@admin.register(RunEvent)
class RunEventAdmin(ViewOnlyAdminMixin, AuditedModelAdmin):
    """A run's timeline, 50 events a page (the run page links here filtered to the run)."""

    list_display = ["seq", "run_short", "type", "agent_id", "summary", "at"]
    list_display_links = ["seq"]
    list_filter = ["type"]
    search_fields = ["=run__id", "agent_id"]
    list_per_page = EVENTS_PER_PAGE
    show_full_result_count = False
    fields = ["run_short", "seq", "type", "agent_id", "at", "data_pretty"]
    readonly_fields = fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description="Run", ordering="run")
    def run_short(self, event: RunEvent):
        return run_link(event.run_id)

    @admin.display(description="Data")
    def summary(self, event: RunEvent):
        text = event_summary(event)
        return format_html('<span class="run-task" title="{}">{}</span>', clipped(text, 2000),
                           clipped(text, EVENT_SUMMARY_CHARS))  # fmt: skip

    @admin.display(description="At", ordering="created_at")
    def at(self, event: RunEvent):
        return exact_time(event.created_at)

    @admin.display(description="Data")
    def data_pretty(self, event: RunEvent):
        text = json.dumps(event.data, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        return format_html('<pre class="run-yaml">{}</pre>', text)

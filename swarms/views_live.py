"""The live run page for signed-in staff: a Django template and plain JS that follows the run's
WebSocket stream (`/api/runs/{id}/stream`, authenticated by the session cookie) and shows its
status, progress, cost against budget, one card per agent and a log of events."""

from decimal import Decimal, InvalidOperation

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from sverm.api.errors import ApplicationError
from sverm.money import money_exact, money_json, usd
from swarms.engine import Definition
from swarms.models import Approval, ApprovalStatus, Run
from swarms.serializers import MAX_BUDGET
from swarms.services.approvals import approval_decide, run_budget_raise


def stream_path(run: Run) -> str:
    """The same-origin path of the run's stream; the page adds the scheme, host and `after`."""
    return f"/api/runs/{run.pk}/stream"


def planned_agents(run: Run) -> list[dict[str, str]]:
    """The run's agents as its definition names them (replicas expanded), so their cards show
    before their first event. A definition that no longer parses shows no cards up front."""
    try:
        agents = Definition.from_dict(run.definition).expanded_agents()
    except (KeyError, TypeError, ValueError, AttributeError):
        return []
    return [{"id": a.id, "role": a.role, "model": a.model} for a in agents]


@require_safe
@staff_member_required
def run_live(request, run_id: str):
    run = get_object_or_404(Run.objects.select_related("workspace"), pk=run_id)
    config = {
        "runId": run.pk,
        "streamPath": stream_path(run),
        "status": run.status,
        "progress": run.progress,
        "costUsd": money_json(run.current_cost_usd),  # as the stream's messages carry it
        "budgetUsd": money_exact(run.max_budget_usd),
        "agentsActive": run.agents_active,
        "agentsTotal": run.agents_total,
        "agents": planned_agents(run),
    }
    pending = list(
        Approval.objects.filter(run_id=run.pk, status=ApprovalStatus.PENDING).order_by("created_at")
    )
    context = {
        **admin.site.each_context(request),
        "pending_approvals": pending,
        # The page needs the full width; the admin's app sidebar would squeeze the agent grid.
        "is_nav_sidebar_enabled": False,
        "title": f"Run {run.pk}",
        "run": run,
        "config": config,
        "stream_path": config["streamPath"],
        "admin_url": reverse("admin:swarms_run_change", args=[quote(run.pk)]),
        "progress_percent": round(run.progress * 100),
        "budget_text": usd(run.max_budget_usd),
    }
    return render(request, "swarms/run_live.html", context)


@require_POST
@staff_member_required
def run_approval_decide(request, run_id: str, approval_id: str):
    """The live page's Approve and Deny buttons: the API's decision, then back to the page."""
    approval = get_object_or_404(Approval, pk=approval_id, run_id=run_id)
    approved = request.POST.get("decision") == "approve"
    try:
        approval_decide(
            approval=approval, approved=approved, decided_by=request.user,
            reason="" if approved else request.POST.get("reason", "").strip()[:2000],
        )  # fmt: skip
    except ApplicationError as exc:
        messages.warning(request, exc.message)
    else:
        messages.success(request, f"{approval.tool}: {'approved' if approved else 'denied'}.")
    return redirect("run-live", run_id=run_id)


@require_POST
@staff_member_required
def run_budget_raise_view(request, run_id: str):
    """The live page's form raising a paused-for-budget run's budget."""
    run = get_object_or_404(Run, pk=run_id)
    try:
        budget = Decimal(request.POST.get("max_budget_usd", "").strip().lstrip("$"))
        if not budget.is_finite() or budget > MAX_BUDGET:
            raise InvalidOperation
    except InvalidOperation:
        messages.warning(request, f"Not an amount of USD up to {MAX_BUDGET}.")
    else:
        try:
            run_budget_raise(run=run, max_budget_usd=budget, raised_by=request.user)
        except ApplicationError as exc:
            messages.warning(request, exc.message)
        else:
            messages.success(request, f"Budget raised to {usd(budget)}; the run resumes.")
    return redirect("run-live", run_id=run_id)

"""The live run page for signed-in staff: a Django template and plain JS that follows the run's
WebSocket stream (`/api/runs/{id}/stream`, authenticated by the session cookie) and shows its
status, progress, cost against budget, one card per agent and a log of events."""

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from sverm.money import money_exact, money_json, usd
from swarms.engine import Definition
from swarms.models import Run


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
    context = {
        **admin.site.each_context(request),
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

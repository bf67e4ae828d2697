"""Baseline routes served by the same process as sverm's own (bench only, never deployed).

- `/bench/bare/runs/<id>` and `/bench/bare-async/runs/<id>`: a plain Django view (sync, then
  async) returning the row that `GET /v1/swarms/{id}` returns, as JSON: no DRF, no auth.
- `/bench/hop/sync` and `/bench/hop/async`: a constant JSON body from a sync and an async view,
  so the difference is what running a sync view in a thread costs under ASGI.
- `/bench/offset/swarms`: `/api/swarms` with DRF's LimitOffsetPagination instead of keyset.
- `/bench/no-total/swarms`: `/api/swarms` without the `total` count, to measure its share.
- `/bench/offset-no-count/swarms`: the offset list without its count, to compare the pages alone.
"""

import sys

from django.http import Http404, JsonResponse
from django.urls import include, path
from rest_framework.pagination import LimitOffsetPagination

from sverm.api.pagination import KeysetPagination
from swarms.models import Run
from swarms.views import SwarmViewSet

RUN_FIELDS = (
    "id", "status", "progress", "current_cost_usd", "agents_active", "agents_total",
    "simulated", "created_at",
)  # fmt: skip


def _row(run_id: str) -> dict:
    row = Run.objects.filter(pk=run_id).values(*RUN_FIELDS).first()
    if row is None:
        raise Http404
    return row


def bare_run(request, run_id: str):
    return JsonResponse(_row(run_id))


async def bare_run_async(request, run_id: str):
    row = await Run.objects.filter(pk=run_id).values(*RUN_FIELDS).afirst()
    if row is None:
        raise Http404
    return JsonResponse(row)


def hop_sync(request):
    return JsonResponse({"ok": True})


async def hop_async(request):
    return JsonResponse({"ok": True})


class OffsetSwarmViewSet(SwarmViewSet):
    pagination_class = LimitOffsetPagination


class UncountedOffsetPagination(LimitOffsetPagination):
    """LimitOffsetPagination without its COUNT (the page query alone, as far as DRF goes)."""

    def get_count(self, queryset) -> int:
        return sys.maxsize


class UncountedOffsetSwarmViewSet(SwarmViewSet):
    pagination_class = UncountedOffsetPagination


class UncountedKeysetPagination(KeysetPagination):
    """Keyset pages without `total`: the same queries but the COUNT."""

    def paginate_queryset(self, queryset, request, view=None):
        queryset.count = lambda: -1  # this queryset object only; its clones still count
        return super().paginate_queryset(queryset, request, view)


class UncountedSwarmViewSet(SwarmViewSet):
    pagination_class = UncountedKeysetPagination


urlpatterns = [
    path("bench/bare/runs/<str:run_id>", bare_run),
    path("bench/bare-async/runs/<str:run_id>", bare_run_async),
    path("bench/hop/sync", hop_sync),
    path("bench/hop/async", hop_async),
    path("bench/offset/swarms", OffsetSwarmViewSet.as_view({"get": "list"})),
    path("bench/no-total/swarms", UncountedSwarmViewSet.as_view({"get": "list"})),
    path("bench/offset-no-count/swarms", UncountedOffsetSwarmViewSet.as_view({"get": "list"})),
    path("", include("sverm.urls")),
]

"""`GET /v1/usage` (seed 002: one month of the call's workspace, from the rollup) and
`GET /api/usage` (any range, grouped, from the ledger, for dashboards)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts.viewsets import WorkspaceScopedViewSet
from billing.models import MonthlyUsage, UsageRecord
from billing.periods import day_start
from billing.selectors import usage_breakdown, usage_month
from billing.serializers import (
    UsageQuerySerializer,
    UsageSerializer,
    V1UsageQuerySerializer,
    V1UsageSerializer,
)
from sverm.api.serializers import query_values


@extend_schema(tags=["v1"])
class V1UsageViewSet(WorkspaceScopedViewSet):
    queryset = MonthlyUsage.objects.all()
    serializer_class = V1UsageSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        summary="Usage of the workspace in a month",
        description="Runs started, tokens and USD spent in one UTC month by the workspace the "
        "call acts in (the API key's; for a JWT the `Sverm-Workspace` header's), in total and "
        "per swarm type. Seed 002's shape, plus `month`: the month reported, the current UTC "
        "month unless `?month=YYYY-MM` names another (still under `current_month`). Read from "
        "the monthly rollup, so it costs the same whatever the ledger's size.",
        parameters=[V1UsageQuerySerializer],
        responses={200: V1UsageSerializer},
    )
    def list(self, request):
        query = V1UsageQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        workspace_id = self.v1_workspace_id()
        self.require_role(workspace_id)
        usage = usage_month(workspace_id=workspace_id, month=query.validated_data["month"])
        return Response(V1UsageSerializer(usage).data)


@extend_schema(tags=["usage"])
class UsageViewSet(WorkspaceScopedViewSet):
    queryset = UsageRecord.objects.all()
    serializer_class = UsageSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        summary="Usage over a date range, grouped (viewer)",
        description="Cost, tokens and LLM calls from the usage ledger between two UTC days "
        "(`from` included, `to` excluded; the current UTC month by default; at most 366 "
        "days), one row per day, model, swarm or template, with totals. Days are ordered "
        "oldest first, other groupings by cost, highest first; only groups with usage are "
        "listed. Rows' `costUsd` are rounded down to 6 decimals so that they add up to the "
        "total's exactly. Two aggregate queries, whatever the ledger's size.",
        parameters=[UsageQuerySerializer],
        responses={200: UsageSerializer},
    )
    def list(self, request):
        query = UsageQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        params = query.validated_data
        breakdown = usage_breakdown(
            records=self.get_queryset(),
            start=day_start(params["from"]),
            end=day_start(params["to"]),
            group_by=params["group_by"],
        )
        return Response(UsageSerializer(breakdown).data)

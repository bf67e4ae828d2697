"""`GET /v1/usage` (seed 002: one month of the call's workspace, from the rollup) and
`GET /api/usage` (any range, grouped, from the ledger, for dashboards; JSON or CSV)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from accounts.viewsets import WorkspaceScopedViewSet
from billing.exports import CSV_MEDIA_TYPE, UsageCSVRenderer, usage_csv_filename
from billing.models import MonthlyUsage, UsageRecord
from billing.periods import day_start
from billing.selectors import usage_breakdown, usage_month
from billing.serializers import (
    UsageGroupSerializer,
    UsageQuerySerializer,
    UsageSerializer,
    V1UsageQuerySerializer,
    V1UsageSerializer,
)
from sverm.api.errors import InvalidRequest
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


class UsageContentNegotiation(DefaultContentNegotiation):
    """DRF's, except that a `?format=` no renderer has is a 400 naming `format` (DRF answers
    404, as if the route did not exist)."""

    def filter_renderers(self, renderers, format):
        chosen = [renderer for renderer in renderers if renderer.format == format]
        if not chosen:
            formats = " or ".join(f"`{renderer.format}`" for renderer in renderers)
            raise InvalidRequest.for_field("format", f"Must be {formats}, not '{format[:20]}'.")
        return chosen


CSV_EXAMPLE = (
    "row,key,name,prefix,runs,costUsd,tokensIn,tokensOut,calls\r\n"
    "group,key_01k...,CI deploys,sk-sverm-3f9a1cQe,12,0.734210,81200,20100,96\r\n"
    "group,,,,3,0.020001,1500,400,9\r\n"
    "total,,,,15,0.754211,82700,20500,105\r\n"
)


class CSVOnlyNegotiation(DefaultContentNegotiation):
    """`/api/usage.csv` has one representation: CSV, whatever `Accept` or `?format=` say."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


USAGE_DESCRIPTION = (
    "Cost, tokens and LLM calls from the usage ledger between two UTC days (`from` included, "
    "`to` excluded; the current UTC month by default; at most 366 days), one row per day, "
    "model, swarm, template, API key or user, with totals. Days are ordered oldest first, "
    "other groupings by cost, highest first; only groups with usage are listed. Grouped by "
    "`api_key`, rows name the key (`name`, `prefix`); by `user`, the user (`email`, `name`); "
    "the row with a null key holds the runs started without one.\n\n"
    "Money: each run's cost in the range is rounded down to 6 decimals as runs show it, a "
    "row's `costUsd` is the sum of its runs' (by day or model, of the parts a run's cost is "
    "split into), and the total's is the sum of the rows', the same whatever the grouping. "
    "One aggregate query (and one for key or user names), whatever the ledger's size."
)


@extend_schema(tags=["usage"])
class UsageViewSet(WorkspaceScopedViewSet):
    queryset = UsageRecord.objects.all()
    serializer_class = UsageSerializer
    pagination_class = None
    filter_backends: list = []
    renderer_classes = [JSONRenderer, UsageCSVRenderer]
    content_negotiation_class = UsageContentNegotiation

    @extend_schema(
        summary="Usage over a date range, grouped (viewer)",
        description=USAGE_DESCRIPTION + "\n\n"
        "The same report as CSV is `GET /api/usage.csv`; this path also answers it to "
        "`Accept: text/csv` or `?format=csv` (`?format=json`: JSON; another format is a 400 "
        "naming `format`). Only JSON is declared here, so that clients generated from this "
        "schema keep a typed JSON body.",
        parameters=[UsageQuerySerializer, OpenApiParameter("format", exclude=True)],
        responses={(200, "application/json"): UsageSerializer},
    )
    def list(self, request):
        query = UsageQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        params = query.validated_data
        start, end = day_start(params["from"]), day_start(params["to"])
        group_by = params["group_by"]
        breakdown = usage_breakdown(
            records=self.get_queryset(), start=start, end=end, group_by=group_by
        )
        response = Response(UsageSerializer(breakdown).data)
        if request.accepted_renderer.format == UsageCSVRenderer.format:
            self.usage_columns = UsageGroupSerializer.columns(group_by)
            filename = usage_csv_filename(
                workspace_id=params.get("workspace_id") or None, start=start, end=end,
                group_by=group_by,
            )  # fmt: skip
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def get_renderer_context(self):
        columns = getattr(self, "usage_columns", None)  # the CSV's, set by `list`
        return {**super().get_renderer_context(), "usage_columns": columns}


@extend_schema(tags=["usage"])
class UsageCSVViewSet(UsageViewSet):
    """`/api/usage`'s report as CSV, its own operation: declaring `text/csv` beside JSON on
    `/api/usage` would turn its typed body into JSON-or-text in generated clients."""

    renderer_classes = [UsageCSVRenderer]
    content_negotiation_class = CSVOnlyNegotiation

    @extend_schema(
        summary="Usage over a date range, grouped, as CSV (viewer)",
        description=USAGE_DESCRIPTION + "\n\n"
        "CSV (RFC 4180, UTF-8, CRLF) sent as an attachment: the JSON's columns (and `runs` "
        "always) after a first column `row` (`group`, or `total` on the last line); money in "
        "fixed point with 6 decimals; null as an empty cell; a text cell a spreadsheet would "
        "run as a formula (`=`, `+`, `-`, `@`) starts with `'`. Errors are problem details "
        "(JSON), as everywhere.",
        parameters=[UsageQuerySerializer],
        responses={
            (200, CSV_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.STR,
                description="The report as CSV, with `Content-Disposition: attachment; "
                'filename="usage_<workspace or all>_<from>_<to>_by-<group_by>.csv"`.',
                examples=[OpenApiExample("Grouped by API key", value=CSV_EXAMPLE)],
            ),
        },
    )
    def list(self, request):
        return super().list(request)

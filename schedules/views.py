"""`/api/schedules`: swarms and templates run on a cron expression in a time zone; pause and
resume; `/api/schedules/{id}/firings`: every slot it fired for and what came of it (the runs it
made among them)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Workspace
from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from schedules import services
from schedules.filters import (
    FIRING_LIST,
    SCHEDULE_LIST,
    ScheduleFilterSet,
    ScheduleFiringFilterSet,
)
from schedules.models import Schedule, ScheduleFiring
from schedules.serializers import (
    UPDATE_FIELDS,
    ScheduleCreateSerializer,
    ScheduleFiringSerializer,
    ScheduleSerializer,
    ScheduleUpdateSerializer,
)
from sverm.api.errors import PROBLEM_CONTENT_TYPE
from sverm.api.idempotency import (
    IDEMPOTENCY_409,
    IDEMPOTENCY_422,
    IDEMPOTENCY_KEY_PARAMETER,
    idempotent,
)
from sverm.api.schema import WORKSPACE_ID_PARAM, ProblemSerializer
from sverm.api.serializers import SuccessSerializer


@extend_schema(tags=["schedules"])
class ScheduleViewSet(WorkspaceScopedViewSet):
    """Viewers read; operators create, change, pause, resume and delete (as for swarms)."""

    queryset = Schedule.objects.all()
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilterSet
    list_spec = SCHEDULE_LIST
    error_statuses = ["409"]

    @extend_schema(summary="List schedules", parameters=[WORKSPACE_ID_PARAM])
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Create a schedule of a swarm or a template",
        description=(
            "Runs `task` on the cron expression `cron` read in the IANA zone `timezone`: a "
            "swarm (`swarmId`; its default version at each firing, or `versionId` pinned) or a "
            "template (`templateId`). Daylight saving: a local time skipped in spring fires once "
            "at the first valid instant after the gap; a local time repeated in autumn fires "
            "once, at its first occurrence. `nextRunAt` says when it fires next."
        ),
        request=ScheduleCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: ScheduleSerializer,
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description=IDEMPOTENCY_409
            ),
            (422, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description=IDEMPOTENCY_422
            ),
        },
    )
    def create(self, request):
        data = ScheduleCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workspace_id = values["workspaceId"]
        self.require_role(workspace_id)

        def make() -> Response:
            swarm, version, template_id = services.schedule_target_resolve(
                caller=self.caller,
                workspace_id=workspace_id,
                swarm_id=values.get("swarmId"),
                version_id=values.get("versionId"),
                template_id=values.get("templateId"),
            )
            schedule = services.schedule_create(
                workspace=Workspace.objects.get(pk=workspace_id),
                name=values["name"],
                task=values["task"],
                cron=values["cron"],
                zone=values["timezone"],
                created_by=request.user if request.user.is_authenticated else None,
                swarm=swarm,
                version=version,
                template_id=template_id,
                max_budget_usd=values.get("maxBudgetUsd"),
                webhook_url=values.get("webhookUrl", ""),
                starts_at=values.get("startsAt"),
                ends_at=values.get("endsAt"),
                max_runs=values.get("maxRuns"),
                monthly_cap_usd=values.get("monthlyCapUsd"),
                overlap_policy=values["overlapPolicy"],
                catch_up_seconds=values.get("catchUpSeconds"),
            )
            return Response(self.get_serializer(schedule).data, status=status.HTTP_201_CREATED)

        return idempotent(request, workspace_id=workspace_id, produce=make)

    @extend_schema(summary="Get a schedule, with when it fires next")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Change a schedule (`nextRunAt` is computed again)",
        request=ScheduleUpdateSerializer,
        responses={200: ScheduleSerializer},
    )
    def partial_update(self, request, pk=None):
        schedule = self.get_object()
        data = ScheduleUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = {UPDATE_FIELDS[key]: value for key, value in data.validated_data.items()}
        schedule = services.schedule_update(schedule=schedule, data=changes)
        return Response(self.get_serializer(schedule).data)

    @extend_schema(
        summary="Delete a schedule and its firings (the runs it made stay)",
        responses={200: SuccessSerializer},
    )
    def destroy(self, request, pk=None):
        services.schedule_delete(schedule=self.get_object())
        return Response({"success": True})

    @extend_schema(
        summary="Pause a schedule (it fires nothing until resumed; a queued firing is dropped)",
        request=None,
        responses={200: ScheduleSerializer},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        schedule = services.schedule_pause(schedule=self.get_object())
        return Response(self.get_serializer(schedule).data)

    @extend_schema(
        summary="Resume a paused schedule from its next slot (slots missed while paused are "
        "not caught up)",
        request=None,
        responses={200: ScheduleSerializer},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        schedule = services.schedule_resume(schedule=self.get_object())
        return Response(self.get_serializer(schedule).data)


@extend_schema(tags=["schedules"])
class ScheduleFiringViewSet(WorkspaceScopedViewSet):
    """`/api/schedules/{schedule_id}/firings`: newest slot first."""

    queryset = ScheduleFiring.objects.select_related("run")
    serializer_class = ScheduleFiringSerializer
    filterset_class = ScheduleFiringFilterSet
    list_spec = FIRING_LIST

    def safely_get_queryset(self, queryset):
        return queryset.filter(schedule_id=self.kwargs.get("schedule_id"))

    @extend_schema(
        summary="A schedule's firings: each slot's outcome and the run it started",
        description=(
            "One row per slot the schedule fired for: `started` with its `run`, or why no run "
            "started (`queued`, `skipped_overlap`, `skipped_cap`, `skipped_missed`, "
            "`skipped_paused`, `failed`). `?outcome=started` lists the runs it made."
        ),
    )
    def list(self, request, schedule_id=None):
        self.get_scoped(Schedule.objects.all(), schedule_id, Role.VIEWER)
        return self.list_response()

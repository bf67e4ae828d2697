"""`/api/swarms` (seed 003) with versions and runs; `/api/runs` with results and events."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Workspace
from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.errors import PROBLEM_CONTENT_TYPE
from sverm.api.idempotency import (
    IDEMPOTENCY_409,
    IDEMPOTENCY_422,
    IDEMPOTENCY_KEY_PARAMETER,
    idempotent,
)
from sverm.api.pagination import SeqPagination
from sverm.api.schema import WORKSPACE_ID_PARAM, ProblemSerializer
from sverm.api.serializers import SuccessSerializer, query_values
from swarms import selectors, services
from swarms.filters import (
    EVENT_LIST,
    RUN_LIST,
    SWARM_LIST,
    VERSION_LIST,
    RunFilterSet,
    SwarmFilterSet,
)
from swarms.models import Run, RunEvent, Swarm, SwarmVersion
from swarms.serializers import (
    RunBudgetSerializer,
    RunCreateSerializer,
    RunEventSerializer,
    RunResultSerializer,
    RunSerializer,
    RunWaitQuerySerializer,
    SwarmCreateSerializer,
    SwarmSerializer,
    SwarmUpdateSerializer,
    SwarmVersionCreateSerializer,
    SwarmVersionSerializer,
)
from swarms.services.approvals import run_budget_raise

LIST_PARAMETERS = [
    OpenApiParameter(
        "workspace_id",
        str,
        description="Filter to swarms in this workspace. When omitted, returns swarms across "
        "every workspace the caller is a member of (admins see all).",
    ),
    OpenApiParameter(
        "source",
        str,
        enum=["workspace", "integration"],
        description="Narrow by source. `workspace` = the workspace's own rows; `integration` = "
        "only rows made visible by installed integrations; omit = union.",
    ),
]


@extend_schema(tags=["swarms"])
class SwarmViewSet(WorkspaceScopedViewSet):
    queryset = Swarm.objects.all()
    serializer_class = SwarmSerializer
    filterset_class = SwarmFilterSet
    list_spec = SWARM_LIST
    # Starting a run needs only read access to the swarm (integrations share swarms to run);
    # the operator role is checked in the workspace the run is made in.
    action_roles = {"purge": Role.ADMIN, "runs": Role.VIEWER}
    error_statuses = ["409", "422"]

    @extend_schema(summary="List swarms", parameters=LIST_PARAMETERS)
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Create swarm (and its version 1)",
        request=SwarmCreateSerializer,
        responses={201: SwarmSerializer},
    )
    def create(self, request):
        data = SwarmCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        self.require_role(values["workspaceId"])
        swarm = services.swarm_create(
            workspace=Workspace.objects.get(pk=values["workspaceId"]),
            name=values["name"],
            description=values.get("description", ""),
            instructions=values.get("instructions", ""),
            models=values.get("models"),
            created_by=request.user,
            **({"retention_tier": values["retentionTier"]} if "retentionTier" in values else {}),
        )
        return Response(self.get_serializer(swarm).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get a swarm by ID (soft-deleted ones too)")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Update swarm", request=SwarmUpdateSerializer, responses={200: SwarmSerializer}
    )
    def partial_update(self, request, pk=None):
        swarm = self.get_object()
        data = SwarmUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        renames = {
            "runtimeUserId": "runtime_user_id",
            "defaultVersionId": "default_version_id",
            "retentionTier": "retention_tier",
        }
        changes = {renames.get(key, key): value for key, value in data.validated_data.items()}
        swarm = services.swarm_update(swarm=swarm, data=changes)
        return Response(self.get_serializer(swarm).data)

    @extend_schema(summary="Soft-delete a swarm", responses={200: SuccessSerializer})
    def destroy(self, request, pk=None):
        services.swarm_soft_delete(swarm=self.get_object())
        return Response({"success": True})

    @extend_schema(
        summary="Permanently delete a soft-deleted swarm (admin)",
        request=None,
        responses={200: SuccessSerializer},
    )
    @action(detail=True, methods=["delete"])
    def purge(self, request, pk=None):
        services.swarm_purge(swarm=self.get_object())
        return Response({"success": True})

    @extend_schema(
        summary="Start a run of the swarm's default (or a given) version",
        request=RunCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: RunSerializer,
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description=IDEMPOTENCY_409
            ),
            (422, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description=IDEMPOTENCY_422
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def runs(self, request, pk=None):
        swarm = self.get_object()
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workspace_id = selectors.run_workspace_for_swarm(
            caller=self.caller, swarm=swarm, workspace_id=values.get("workspaceId")
        )

        def start() -> Response:
            run = services.run_create_for_swarm(
                swarm=swarm,
                workspace_id=workspace_id,
                version_id=values.get("versionId"),
                task=values["task"],
                max_budget_usd=values.get("maxBudgetUsd"),
                webhook_url=values.get("webhookUrl", ""),
                created_by=request.user,
                pause_on_budget=values["pauseOnBudget"],
                api_key_id=self.caller.api_key_id,
            )
            return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

        return idempotent(request, workspace_id=workspace_id, produce=start)

    @extend_schema(
        summary="Restore a soft-deleted swarm", request=None, responses={200: SwarmSerializer}
    )
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        swarm = services.swarm_restore(swarm=self.get_object())
        return Response(self.get_serializer(swarm).data)


@extend_schema(tags=["swarms"])
class SwarmVersionViewSet(WorkspaceScopedViewSet):
    queryset = SwarmVersion.objects.all()
    serializer_class = SwarmVersionSerializer
    list_spec = VERSION_LIST
    lookup_url_kwarg = "version_id"
    error_statuses = ["409"]

    def swarm(self, role: str | None = None) -> Swarm:
        return self.get_scoped(Swarm.objects.all(), self.kwargs["swarm_id"], role)

    def safely_get_queryset(self, queryset):
        return queryset.filter(swarm_id=self.kwargs.get("swarm_id"))

    @extend_schema(summary="List a swarm's versions (newest first)")
    def list(self, request, swarm_id=None):
        self.swarm(Role.VIEWER)  # 404 for an invisible swarm, not an empty list
        return self.list_response()

    @extend_schema(
        summary="Create a version (omitted fields carry over from the default version)",
        request=SwarmVersionCreateSerializer,
        responses={201: SwarmVersionSerializer},
    )
    def create(self, request, swarm_id=None):
        swarm = self.swarm()
        data = SwarmVersionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        version = services.swarm_version_create(
            swarm=swarm,
            created_by=request.user,
            instructions=values.get("instructions"),
            models=values.get("models"),
            set_default=values["setDefault"],
        )
        return Response(self.get_serializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get one version of a swarm")
    def retrieve(self, request, swarm_id=None, version_id=None):
        return Response(self.get_serializer(self.get_object()).data)


@extend_schema(tags=["runs"])
class RunViewSet(WorkspaceScopedViewSet):
    queryset = Run.objects.all()
    serializer_class = RunSerializer
    filterset_class = RunFilterSet
    list_spec = RUN_LIST
    error_statuses = ["409"]

    @extend_schema(summary="List runs", parameters=[WORKSPACE_ID_PARAM])
    def list(self, request):
        return self.list_response()

    @extend_schema(summary="Get a run: status, progress, cost")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Raise a run's budget: queued, or paused for budget (it then resumes)",
        request=RunBudgetSerializer,
        responses={200: RunSerializer},
    )
    def partial_update(self, request, pk=None):
        run = self.get_object()
        data = RunBudgetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_budget_raise(
            run=run,
            max_budget_usd=data.validated_data["maxBudgetUsd"],
            raised_by=request.user if request.user.is_authenticated else None,
        )
        return Response(self.get_serializer(run).data)

    @extend_schema(
        summary="Cancel a run (stops scheduling, aborts calls in flight, keeps partial output)",
        description=(
            "Answers at once. A queued run is `cancelled` in the answer; a running one is still "
            "`running` there and ends `cancelled` within a poll interval (under a second), keeping "
            "its partial output and cost: follow its stream or status."
        ),
        request=None,
        responses={200: RunSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.run_cancel(run=self.get_object())
        return Response(self.get_serializer(run).data)

    @extend_schema(
        summary="Wait for a run to finish (or to pause for an operator)",
        description=(
            "Answers once the run is `completed`, `failed` or `cancelled`, or waits for an "
            "operator (`awaiting_approval`, `awaiting_budget`), or when `timeout` seconds have "
            "passed, whichever comes first, with the same body as `GET /api/runs/{id}`: its "
            "`status` says which. The server looks at the run at least twice a second. For scripts "
            "that do not stream: call again while the status is `queued` or `running`. A "
            "server process lets a bounded number of requests wait at once "
            "(`SVERM_WAIT_MAX_WAITERS`); past it the answer is 503 with Retry-After."
        ),
        parameters=[RunWaitQuerySerializer],
        responses={200: RunSerializer},
    )
    @action(detail=True, methods=["get"])
    def wait(self, request, pk=None):
        query = RunWaitQuerySerializer(data=query_values(request))
        query.is_valid(raise_exception=True)
        timeout = float(query.validated_data["timeout"])
        run = selectors.run_wait(run=self.get_object(), timeout=timeout)
        return Response(self.get_serializer(run).data)

    @extend_schema(summary="A run's output, per-agent cost report and agent log",
                   responses={200: RunResultSerializer})  # fmt: skip
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        return Response(RunResultSerializer(selectors.run_result(run=self.get_object())).data)


@extend_schema(tags=["runs"])
class RunEventViewSet(WorkspaceScopedViewSet):
    queryset = RunEvent.objects.all()
    serializer_class = RunEventSerializer
    list_spec = EVENT_LIST
    pagination_class = SeqPagination

    def safely_get_queryset(self, queryset):
        return queryset.filter(run_id=self.kwargs.get("run_id"))

    @extend_schema(summary="A run's stored events, in order (`after=<seq>` resumes)")
    def list(self, request, run_id=None):
        self.get_scoped(Run.objects.all(), run_id, Role.VIEWER)
        return self.list_response()

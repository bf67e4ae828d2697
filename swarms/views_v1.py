"""The `/v1` run API of seed 002: a "swarm" here is a run of a template or an inline definition,
in the one workspace the call acts in (the API key's, or `Sverm-Workspace` for a JWT)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.idempotency import (
    IDEMPOTENCY_409,
    IDEMPOTENCY_422,
    IDEMPOTENCY_KEY_PARAMETER,
    idempotent,
)
from sverm.api.pagination import OffsetPagination
from sverm.api.schema import V1ErrorSerializer
from swarms import selectors, services
from swarms.models import Run
from swarms.serializers import (
    V1RunCancelledSerializer,
    V1RunCreatedSerializer,
    V1RunCreateSerializer,
    V1RunResultSerializer,
    V1RunStatusSerializer,
)


@extend_schema(tags=["v1"])
class V1SwarmViewSet(WorkspaceScopedViewSet):
    queryset = Run.objects.all()
    serializer_class = V1RunStatusSerializer
    pagination_class = OffsetPagination
    action_roles = {"destroy": Role.OPERATOR}
    error_statuses = ["422"]

    def safely_get_queryset(self, queryset):
        return queryset.filter(workspace_id=self.v1_workspace_id()).order_by("-created_at", "-id")

    @extend_schema(summary="List the workspace's swarm runs, newest first")
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Start a swarm run from a template id or inline YAML",
        request=V1RunCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: V1RunCreatedSerializer,
            409: OpenApiResponse(V1ErrorSerializer, description=IDEMPOTENCY_409),
            422: OpenApiResponse(V1ErrorSerializer, description=IDEMPOTENCY_422),
        },
    )
    def create(self, request):
        data = V1RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workspace_id = self.v1_workspace_id()
        self.require_role(workspace_id)

        def start() -> Response:
            run = services.run_create_from_source(
                caller=self.caller,
                workspace_id=workspace_id,
                source=values["template"],
                task=values["task"],
                max_budget_usd=values.get("max_budget_usd"),
                webhook_url=values.get("webhook_url", ""),
                created_by=request.user,
                pause_on_budget=values["pause_on_budget"],
            )
            return Response(V1RunCreatedSerializer(run).data, status=status.HTTP_201_CREATED)

        return idempotent(request, workspace_id=workspace_id, produce=start)

    @extend_schema(summary="A swarm run's status, progress and cost so far")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="A swarm run's output, cost report and agent log",
        responses={200: V1RunResultSerializer},
    )
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        return Response(V1RunResultSerializer(selectors.run_result(run=self.get_object())).data)

    @extend_schema(
        summary="Cancel a swarm run (keeps partial output and the cost so far)",
        description=(
            "Answers at once: `cancelled` for a run that had not started; a running one answers "
            "`running` and ends `cancelled` within a poll interval (under a second)."
        ),
        responses={
            200: V1RunCancelledSerializer,
            409: OpenApiResponse(
                V1ErrorSerializer, description="`conflict`: the run has already finished."
            ),
        },
    )
    def destroy(self, request, pk=None):
        run = services.run_cancel(run=self.get_object())
        return Response(V1RunCancelledSerializer(run).data)

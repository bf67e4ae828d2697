"""`/api/runs/{run_id}/approvals`: the tool calls of a run that waited for an operator, and the
decision on one (`POST /api/runs/{run_id}/approvals/{id}`: approve, approve with edited
arguments, or deny with a reason; operator)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.errors import PROBLEM_CONTENT_TYPE
from sverm.api.listing import DATETIME, ENUM, FieldSpec, ListSpec
from sverm.api.schema import ProblemSerializer
from swarms.models import Approval, ApprovalStatus, Run
from swarms.serializers import ApprovalDecisionSerializer, ApprovalSerializer
from swarms.services.approvals import approval_decide

APPROVAL_LIST = ListSpec(
    name="Approval",
    fields={
        "id": FieldSpec("id"),
        "agentId": FieldSpec("agent_id"),
        "tool": FieldSpec("tool"),
        "status": FieldSpec("status", ENUM, choices=tuple(ApprovalStatus.values)),
        "deadlineAt": FieldSpec("deadline_at", DATETIME),
        "createdAt": FieldSpec("created_at", DATETIME),
    },
)


@extend_schema(tags=["runs"])
class RunApprovalViewSet(WorkspaceScopedViewSet):
    queryset = Approval.objects.all()
    serializer_class = ApprovalSerializer
    list_spec = APPROVAL_LIST
    action_roles = {"decide": Role.OPERATOR}
    error_statuses = ["409"]

    def safely_get_queryset(self, queryset):
        return queryset.filter(run_id=self.kwargs.get("run_id"))

    @extend_schema(summary="The run's tool calls that waited (or wait) for an operator")
    def list(self, request, run_id=None):
        self.get_scoped(Run.objects.all(), run_id, Role.VIEWER)  # 404, not an empty list
        return self.list_response()

    @extend_schema(summary="One tool call waiting (or that waited) for an operator")
    def retrieve(self, request, run_id=None, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Approve (optionally with edited arguments) or deny a waiting tool call; the "
        "run resumes on any worker once none waits (operator)",
        request=ApprovalDecisionSerializer,
        responses={
            200: ApprovalSerializer,
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer, description="Decided already, or the run waits no more."
            ),
        },
    )
    def decide(self, request, run_id=None, pk=None):
        approval = self.get_object()
        data = ApprovalDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        decided = approval_decide(
            approval=approval,
            approved=fields["decision"] == "approve",
            arguments=fields.get("arguments"),
            reason=fields["reason"],
            decided_by=request.user if request.user.is_authenticated else None,
        )
        return Response(self.get_serializer(decided).data)

"""`/api/audit-events`: the audit trail of the workspaces you administer (platform staff: all),
read only. It lives in accounts, which owns tenancy and roles, because the audit app imports
no other app."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from audit.filters import AUDIT_EVENT_LIST, AuditEventFilterSet
from audit.models import AuditEvent
from audit.serializers import AuditEventSerializer
from sverm.api.schema import WORKSPACE_ID_PARAM


@extend_schema(tags=["audit"])
class AuditEventViewSet(WorkspaceScopedViewSet):
    """Who changed what, when, from where: one event per state-changing action, append-only,
    kept for the workspace plan's `audit_retention_days`."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet
    list_spec = AUDIT_EVENT_LIST
    action_roles = {"list": Role.ADMIN, "retrieve": Role.ADMIN}

    @extend_schema(
        summary="List audit events of the workspaces you administer (newest first)",
        parameters=[WORKSPACE_ID_PARAM],
    )
    def list(self, request):
        return self.list_response()

    @extend_schema(summary="Get one audit event (admin of its workspace)")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

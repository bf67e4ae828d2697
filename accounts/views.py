"""`/api/auth`, `/api/workspaces`, `/api/workspaces/{id}/members`, `/api/api-keys`."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.filters import API_KEY_LIST, INTEGRATION_LIST, MEMBER_LIST, WORKSPACE_LIST
from accounts.models import ApiKey, Integration, Membership, Workspace
from accounts.roles import Role
from accounts.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeyRotateSerializer,
    ApiKeySerializer,
    IntegrationCreateSerializer,
    IntegrationSerializer,
    LoginInputSerializer,
    LoginOutputSerializer,
    MemberAddSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    RefreshInputSerializer,
    RefreshOutputSerializer,
    WorkspaceCreateSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.errors import PROBLEM_CONTENT_TYPE, Forbidden
from sverm.api.schema import WORKSPACE_ID_PARAM, ProblemSerializer
from sverm.api.serializers import SuccessSerializer
from sverm.api.throttling import AuthRateThrottle


class LoginView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthRateThrottle]
    error_statuses = ["401", "429"]

    @extend_schema(
        tags=["auth"],
        request=LoginInputSerializer,
        responses={200: LoginOutputSerializer},
        summary="Exchange email and password for a JWT",
    )
    def post(self, request):
        data = LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = services.auth_login(**data.validated_data)
        return Response(LoginOutputSerializer(tokens).data)


class RefreshView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthRateThrottle]
    error_statuses = ["401", "429"]

    @extend_schema(
        tags=["auth"],
        request=RefreshInputSerializer,
        responses={200: RefreshOutputSerializer},
        summary="Exchange a refresh token for a new access token",
    )
    def post(self, request):
        data = RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(RefreshOutputSerializer(services.auth_refresh(**data.validated_data)).data)


@extend_schema(tags=["workspaces"])
class WorkspaceViewSet(WorkspaceScopedViewSet):
    queryset = Workspace.objects.all()
    serializer_class = WorkspaceSerializer
    list_spec = WORKSPACE_LIST
    action_roles = {"partial_update": Role.ADMIN}

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "caller": self.caller}

    @extend_schema(summary="List the workspaces you are a member of")
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Create a workspace (you become its admin)",
        request=WorkspaceCreateSerializer,
        responses={201: WorkspaceSerializer},
    )
    def create(self, request):
        if self.caller.api_key_id:
            raise Forbidden("API keys act within one workspace; log in to create workspaces.")
        data = WorkspaceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.workspace_plan_check(
            plan=data.validated_data["plan"], by_staff=self.caller.is_staff
        )
        workspace = services.workspace_create(owner=request.user, **data.validated_data)
        request._sverm_caller = None  # the caller now holds a new role
        return Response(self.get_serializer(workspace).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get a workspace")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Rename a workspace (admin) or change its plan (platform staff)",
        request=WorkspaceUpdateSerializer,
        responses={200: WorkspaceSerializer},
    )
    def partial_update(self, request, pk=None):
        workspace = self.get_object()
        data = WorkspaceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "plan" in data.validated_data:
            services.workspace_plan_check(
                plan=data.validated_data["plan"],
                current=workspace.plan,
                by_staff=self.caller.is_staff,
            )
        workspace = services.workspace_update(workspace=workspace, data=data.validated_data)
        return Response(self.get_serializer(workspace).data)


@extend_schema(tags=["workspaces"])
class MemberViewSet(WorkspaceScopedViewSet):
    queryset = Membership.objects.select_related("user")
    serializer_class = MemberSerializer
    list_spec = MEMBER_LIST
    workspace_url_kwarg = "workspace_id"
    lookup_field = "user_id"
    action_roles = {"create": Role.ADMIN, "partial_update": Role.ADMIN, "destroy": Role.ADMIN}
    error_statuses = ["409"]

    @extend_schema(summary="List a workspace's members")
    def list(self, request, workspace_id=None):
        return self.list_response()

    @extend_schema(
        summary="Add an existing user to the workspace by email (admin)",
        request=MemberAddSerializer,
        responses={201: MemberSerializer},
    )
    def create(self, request, workspace_id=None):
        data = MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = Workspace.objects.get(pk=workspace_id)
        membership = services.membership_add(workspace=workspace, **data.validated_data)
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get one member")
    def retrieve(self, request, workspace_id=None, user_id=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Change a member's role (admin)",
        request=MemberUpdateSerializer,
        responses={200: MemberSerializer},
    )
    def partial_update(self, request, workspace_id=None, user_id=None):
        membership = self.get_object()
        data = MemberUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_update_role(membership=membership, **data.validated_data)
        return Response(self.get_serializer(membership).data)

    @extend_schema(summary="Remove a member (admin)", responses={200: SuccessSerializer})
    def destroy(self, request, workspace_id=None, user_id=None):
        services.membership_remove(membership=self.get_object())
        return Response({"success": True})


# A response carrying a new secret must not linger in any cache between here and the caller.
NO_STORE = {"Cache-Control": "no-store"}


@extend_schema(tags=["api-keys"])
class ApiKeyViewSet(WorkspaceScopedViewSet):
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    list_spec = API_KEY_LIST
    action_roles = {
        "list": Role.ADMIN,
        "retrieve": Role.ADMIN,
        "create": Role.ADMIN,
        "destroy": Role.ADMIN,
        "rotate": Role.ADMIN,
    }

    def safely_get_queryset(self, queryset):
        return selectors.api_keys_for_listing(queryset)

    @extend_schema(
        summary="List API keys of the workspaces you administer", parameters=[WORKSPACE_ID_PARAM]
    )
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Create an API key; the secret is in `key`, shown only here (admin)",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
    )
    def create(self, request):
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace_id = data.validated_data["workspaceId"]
        self.require_role(workspace_id)
        api_key, raw_key = services.api_key_create(
            workspace=Workspace.objects.get(pk=workspace_id),
            name=data.validated_data["name"],
            role=data.validated_data["role"],
            created_by=request.user,
            expires_at=data.validated_data.get("expiresAt"),
        )
        body = ApiKeyCreatedSerializer(api_key, context={"raw_key": raw_key}).data
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)

    @extend_schema(summary="Get an API key (never its secret)")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(summary="Revoke an API key (admin)", responses={200: SuccessSerializer})
    def destroy(self, request, pk=None):
        services.api_key_revoke(api_key=self.get_object())
        return Response({"success": True})

    @extend_schema(
        summary="Rotate an API key: a new key, the old one valid until the overlap ends (admin)",
        description=(
            "Makes a new key with the old key's name, role and workspace (`replaces` names the "
            "old one) and answers it with its secret in `key`, shown only here. The old key "
            "keeps working until `overlapUntil`, or for `overlapSeconds` (default 86400, a "
            "day; 0 ends it at once), never past an expiry it already had: its `expiresAt` "
            "becomes the end of the overlap, and its `replacedBy` the new key. A key that is "
            "revoked, expired or already rotated cannot be rotated (409; the body's "
            "`replacedBy` names the key it was rotated to). A retry after a lost answer is "
            "that 409: rotate the new key, with `overlapSeconds: 0`, to get a secret again."
        ),
        request=ApiKeyRotateSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer,
                description="The key is revoked or expired, or was already rotated.",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        old = self.get_object()
        data = ApiKeyRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new, raw_key = services.api_key_rotate(
            api_key=old,
            overlap_until=data.overlap_until(),
            created_by=request.user,
            expires_at=data.validated_data.get("expiresAt"),
        )
        body = ApiKeyCreatedSerializer(new, context={"raw_key": raw_key}).data
        return Response(body, status=status.HTTP_201_CREATED, headers=NO_STORE)


@extend_schema(tags=["workspaces"])
class IntegrationViewSet(WorkspaceScopedViewSet):
    """Integrations installed in a workspace: each makes a publisher workspace's swarms
    readable (and runnable) from it."""

    queryset = Integration.objects.all()
    serializer_class = IntegrationSerializer
    list_spec = INTEGRATION_LIST
    workspace_url_kwarg = "workspace_id"
    action_roles = {"create": Role.ADMIN, "destroy": Role.ADMIN}
    error_statuses = ["409"]

    @extend_schema(summary="List the integrations installed in a workspace")
    def list(self, request, workspace_id=None):
        return self.list_response()

    @extend_schema(
        summary="Install an integration (admin of both workspaces)",
        request=IntegrationCreateSerializer,
        responses={201: IntegrationSerializer},
    )
    def create(self, request, workspace_id=None):
        data = IntegrationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        publisher_id = data.validated_data["publisherWorkspaceId"]
        self.require_role(publisher_id, Role.ADMIN)
        integration = services.integration_install(
            installer=Workspace.objects.get(pk=workspace_id),
            publisher=Workspace.objects.get(pk=publisher_id),
            installed_by=request.user,
        )
        return Response(self.get_serializer(integration).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get an installed integration")
    def retrieve(self, request, workspace_id=None, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(summary="Remove an integration (admin)", responses={200: SuccessSerializer})
    def destroy(self, request, workspace_id=None, pk=None):
        services.integration_remove(integration=self.get_object())
        return Response({"success": True})

"""`/api/templates` (management, seed 003 conventions) and `/v1/templates` (run API, seed 002)."""

from django.db.models import F, Q
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from accounts.models import Workspace
from accounts.roles import Role
from accounts.viewsets import WorkspaceScopedViewSet
from sverm.api.errors import NotFound
from sverm.api.serializers import SuccessSerializer
from templates_app import services
from templates_app.filters import TEMPLATE_LIST
from templates_app.models import SwarmTemplate
from templates_app.serializers import (
    TemplateCreateSerializer,
    TemplateSerializer,
    TemplateUpdateSerializer,
    V1TemplateListSerializer,
    V1TemplateSerializer,
)

YAML_MEDIA_TYPE = "application/yaml"


@extend_schema(tags=["templates"])
class TemplateViewSet(WorkspaceScopedViewSet):
    queryset = SwarmTemplate.objects.all()
    serializer_class = TemplateSerializer
    list_spec = TEMPLATE_LIST
    action_roles = {"create": Role.ADMIN, "partial_update": Role.ADMIN, "destroy": Role.ADMIN}
    error_statuses = ["409"]

    @extend_schema(
        summary="List templates (built-ins included)",
        parameters=[
            OpenApiParameter(
                "workspace_id",
                str,
                description="Only this workspace's templates, plus the built-ins. When omitted, "
                "the templates of every workspace the caller is a member of, plus the built-ins. "
                'Built-ins have `workspaceId: null`; `filter={"workspaceId": {"isNull": false}}` '
                "leaves them out.",
            )
        ],
    )
    def list(self, request):
        return self.list_response()

    @extend_schema(
        summary="Create a workspace template (admin)",
        request=TemplateCreateSerializer,
        responses={201: TemplateSerializer},
    )
    def create(self, request):
        data = TemplateCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        self.require_role(values["workspaceId"])
        template = services.template_create(
            workspace=Workspace.objects.get(pk=values["workspaceId"]),
            template_id=values["id"],
            name=values.get("name"),
            description=values.get("description"),
            created_by=request.user,
            **data.source_kwargs(),
        )
        return Response(self.get_serializer(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Get a template")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        summary="Update a workspace template (admin; built-ins are read-only)",
        request=TemplateUpdateSerializer,
        responses={200: TemplateSerializer},
    )
    def partial_update(self, request, pk=None):
        template = self.get_object()
        data = TemplateUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in ("name", "description")}
        template = services.template_update(
            template=template, data={**changes, **data.source_kwargs()}
        )
        return Response(self.get_serializer(template).data)

    @extend_schema(
        summary="Delete a workspace template (admin; built-ins are read-only)",
        responses={200: SuccessSerializer},
    )
    def destroy(self, request, pk=None):
        services.template_delete(template=self.get_object())
        return Response({"success": True})


# ---------------------------------------------------------------------------------------------
# /v1 (seed 002)
# ---------------------------------------------------------------------------------------------
class YAMLTextRenderer(BaseRenderer):
    """Serves text that already is YAML, as it is."""

    media_type = YAML_MEDIA_TYPE
    format = "yaml"
    charset = None  # application/yaml is UTF-8 and defines no charset parameter (RFC 9512)

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode("utf-8")


class FirstRendererNegotiation(BaseContentNegotiation):
    """The resource has one representation: serve it whatever `Accept` asks for."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class V1TemplateScope(WorkspaceScopedViewSet):
    """Built-ins plus the templates of the workspace the `/v1` call acts in."""

    queryset = SwarmTemplate.objects.all()
    pagination_class = None
    filter_backends: list = []

    def safely_get_queryset(self, queryset):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return queryset.none()
        workspace = Q(workspace_id=self.v1_workspace_id())
        return queryset.filter(workspace | Q(workspace__isnull=True)).order_by(
            F("workspace_id").asc(nulls_first=True), "id"
        )


@extend_schema(tags=["v1"])
class V1TemplateListViewSet(V1TemplateScope):
    serializer_class = V1TemplateSerializer

    @extend_schema(
        summary="List templates",
        description="The built-in templates and those of the call's workspace (the API key's; "
        "for a JWT the `Sverm-Workspace` header's), not paginated.",
        responses={200: V1TemplateListSerializer},
    )
    def list(self, request):
        templates = self.filter_queryset(self.get_queryset())
        return Response({"templates": self.get_serializer(templates, many=True).data})


TEMPLATE_YAML_SCHEMA = {
    "type": "object",
    "required": ["topology", "agents"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "topology": {
            "type": "string",
            "enum": ["hierarchical", "sequential", "parallel", "debate"],
        },
        "instructions": {"type": "string"},
        "limits": {
            "type": "object",
            "properties": {
                "max_parallel": {"type": "integer"},
                "max_steps": {"type": "integer"},
                "rounds": {"type": "integer"},
                "max_tool_calls": {
                    "type": "integer",
                    "description": "Tool calls per agent turn (0-20, default 4).",
                },
            },
        },
        "agents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "role", "model"],
                "properties": {
                    "id": {"type": "string"},
                    "role": {"type": "string"},
                    "model": {"type": "string"},
                    "instructions": {"type": "string"},
                    "max_tokens": {"type": "integer"},
                    "replicas": {"type": "integer"},
                    "tools": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "The tools the agent may call (e.g. http_fetch).",
                    },
                },
            },
        },
    },
}


@extend_schema(tags=["v1"])
class V1TemplateYAMLViewSet(V1TemplateScope):
    renderer_classes = [YAMLTextRenderer]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        summary="Get a template's YAML definition",
        description="The full YAML definition of the template, as `application/yaml`.",
        responses={
            # The schema of the YAML document itself (what a YAML parser reads from the body).
            (200, YAML_MEDIA_TYPE): OpenApiResponse(
                TEMPLATE_YAML_SCHEMA, description="The template's YAML source."
            )
        },
    )
    def retrieve(self, request, pk=None):
        try:
            template = self.get_object()
        except Http404:
            raise NotFound(f"Template {pk} not found.") from None
        return Response(template.yaml)

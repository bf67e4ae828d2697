"""The workspace-scoped viewset base: every view on a workspace-owned model derives from it.

Scoping and role checks happen here and only here. Subclasses may not override `get_queryset` or
`get_object`; they narrow with `safely_get_queryset` and declare roles per action.
"""

from typing import ClassVar

from django.db.models import Model, QuerySet
from rest_framework.permissions import SAFE_METHODS
from rest_framework.viewsets import GenericViewSet

from accounts.auditing import audit_actor_name
from accounts.roles import Role
from accounts.tenancy import SOURCES, Caller, caller_for, workspace_id_of
from sverm.api.errors import Forbidden, InvalidRequest, NotFound


class WorkspaceScopedViewSet(GenericViewSet):
    # Minimum role per action; unlisted actions need viewer for safe methods, operator otherwise.
    action_roles: ClassVar[dict[str, str]] = {}
    # Nested routes (`/workspaces/{workspace_id}/...`): the URL kwarg naming the workspace.
    workspace_url_kwarg: ClassVar[str | None] = None
    # Lists accept `?workspace_id=` to narrow to one workspace.
    workspace_query_param: ClassVar[str] = "workspace_id"
    # Prefixed ids and slugs: anything up to the next slash (the router's default forbids dots).
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "get_object"):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}; scope with safely_get_queryset instead."
                )

    @property
    def caller(self) -> Caller:
        return caller_for(self.request)

    def required_role(self) -> str:
        if self.action in self.action_roles:
            return self.action_roles[self.action]
        return Role.VIEWER if self.request.method in SAFE_METHODS else Role.OPERATOR

    def require_role(self, workspace_id: str, role: str | None = None) -> str:
        """404 when the caller is no member of the workspace, 403 when their role is too low."""
        return self.caller.require_role(workspace_id, role or self.required_role())

    def path_workspace_id(self) -> str | None:
        if self.workspace_url_kwarg is None:
            return None
        return self.kwargs[self.workspace_url_kwarg]

    def safely_get_queryset(self, queryset):
        """The one hook for narrowing or annotating; scoping is applied after it."""
        return queryset

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        audit_actor_name(request)
        workspace_id = self.path_workspace_id()
        if workspace_id is not None:
            self.require_role(workspace_id)

    def _source(self) -> str | None:
        source = self.request.query_params.get("source")
        if source is None:
            return None
        if source not in SOURCES:
            raise InvalidRequest(f"`source` must be one of {', '.join(SOURCES)}, or omitted.")
        return source

    def scope(self, queryset: QuerySet) -> QuerySet:
        """`queryset` narrowed to what the caller may see for this action."""
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        path_workspace = self.path_workspace_id()
        if path_workspace is not None:
            return queryset.in_workspace(path_workspace)
        if self.action == "list":
            workspace_id = self.request.query_params.get(self.workspace_query_param)
            if workspace_id is not None:
                if not workspace_id:
                    raise InvalidRequest(f"`{self.workspace_query_param}` must not be empty.")
                self.require_role(workspace_id)
                return queryset.visible_in([workspace_id], self._source())
            return queryset.visible_in(
                self.caller.workspace_ids(self.required_role()), self._source()
            )
        # Members see that the row exists; check_access then applies the action's role (403).
        return queryset.for_caller(self.caller, Role.VIEWER)

    def get_queryset(self):
        return self.scope(self.safely_get_queryset(self.queryset.all()))

    def check_access(self, obj: Model, role: str | None = None) -> Model:
        """The action's role in the object's workspace; rows seen through an integration are
        read-only."""
        role = role or self.required_role()
        workspace_id = workspace_id_of(obj)
        if workspace_id is None and getattr(obj, "shared_when_unowned", False):
            if role == Role.VIEWER:
                return obj
            raise Forbidden("Built-in resources are read-only.")
        if self.caller.role_in(workspace_id) is None and getattr(obj, "integration_visible", False):
            if role == Role.VIEWER:
                return obj
            raise Forbidden("This resource is shared with you through an integration: read-only.")
        self.require_role(workspace_id, role)
        return obj

    def get_object(self):
        return self.check_access(super().get_object())

    def get_scoped(self, queryset: QuerySet, pk: str, role: str | None = None) -> Model:
        """Another model's row by id (e.g. a nested route's parent), scoped and role-checked."""
        obj = queryset.for_caller(self.caller, Role.VIEWER).filter(pk=pk).first()
        if obj is None:
            raise NotFound()
        return self.check_access(obj, role)

    def v1_workspace_id(self) -> str:
        """The workspace this `/v1` call acts in (see Caller.v1_workspace)."""
        return self.caller.v1_workspace(self.request.headers.get("Sverm-Workspace"))

    def list_response(self):
        """The filtered, ordered, paginated list for this view."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

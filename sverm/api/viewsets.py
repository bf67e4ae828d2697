"""The workspace-scoped viewset base: every view on a workspace-owned model derives from it.

Scoping and role checks happen here and only here. Subclasses may not override `get_queryset` or
`get_object`; they narrow with `safely_get_queryset` and declare roles per action.
"""

from typing import ClassVar

from rest_framework.permissions import SAFE_METHODS
from rest_framework.viewsets import GenericViewSet

from accounts.roles import Role
from sverm.api.errors import InvalidRequest
from sverm.api.scoping import Caller, caller_for, workspace_id_of


class WorkspaceScopedViewSet(GenericViewSet):
    # Minimum role per action; unlisted actions need viewer for safe methods, operator otherwise.
    action_roles: ClassVar[dict[str, str]] = {}
    # Nested routes (`/workspaces/{workspace_id}/...`): the URL kwarg naming the workspace.
    workspace_url_kwarg: ClassVar[str | None] = None
    # Lists accept `?workspace_id=` to narrow to one workspace.
    workspace_query_param: ClassVar[str] = "workspace_id"

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
        workspace_id = self.path_workspace_id()
        if workspace_id is not None:
            self.require_role(workspace_id)

    def get_queryset(self):
        queryset = self.safely_get_queryset(self.queryset.all())
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
                return queryset.in_workspace(workspace_id)
            return queryset.for_caller(self.caller, self.required_role())
        # Members see that the row exists; get_object then checks the action's role (403).
        return queryset.for_caller(self.caller, Role.VIEWER)

    def get_object(self):
        obj = super().get_object()
        self.require_role(workspace_id_of(obj))
        return obj

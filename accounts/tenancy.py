"""Tenancy in one place: who the caller is, which workspaces they hold which role in, and the
queryset filter every workspace-owned model uses (`for_caller`).

A resource in a workspace the caller is not a member of is 404 (its existence is not leaked);
a member whose role is too low gets 403.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import models
from django.db.models import Q

from accounts.roles import Role
from sverm.api.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request or WebSocket."""

    user_id: str | None
    api_key_id: str | None = None
    is_staff: bool = False
    roles: Mapping[str, str] = field(default_factory=dict)

    def role_in(self, workspace_id: str) -> str | None:
        if self.is_staff:
            return Role.ADMIN
        return self.roles.get(workspace_id)

    def workspace_ids(self, min_role: str = Role.VIEWER) -> list[str] | None:
        """Workspaces where the caller holds at least `min_role`; None means every workspace."""
        if self.is_staff:
            return None
        return [ws for ws, role in self.roles.items() if Role.allows(role, min_role)]

    def v1_workspace(self, requested: str | None) -> str:
        """The one workspace a `/v1` call acts in: the API key's; for a JWT the `Sverm-Workspace`
        header's (404 if not a member), else the user's only or oldest membership."""
        if self.api_key_id is not None:
            (workspace_id,) = self.roles
            if requested and requested != workspace_id:
                raise NotFound(f"Workspace {requested} not found.")
            return workspace_id
        if requested:
            self.require_role(requested, Role.VIEWER)
            return requested
        if not self.roles:
            raise NotFound("You are not a member of any workspace; create one first.")
        return next(iter(self.roles))

    def require_role(self, workspace_id: str, role: str) -> str:
        held = self.role_in(workspace_id)
        if held is None:
            raise NotFound(f"Workspace {workspace_id} not found.")
        if not Role.allows(held, role):
            raise Forbidden(
                f"This needs the {role} role in workspace {workspace_id}; you have {held}."
            )
        return held


ANONYMOUS = Caller(user_id=None)


def caller_build(*, user, credential=None) -> Caller:
    """The Caller of an authenticated principal, for HTTP (`caller_for`) and WebSockets
    (accounts/ws_auth.py) alike: an API key's workspace and role, else the user's memberships
    (every workspace, as admin, for platform staff); ANONYMOUS without an active user.

    `credential` is what authenticated the user (accounts/authentication.py): an ApiKey acts
    with the key's role in its workspace; a JWT access token, or None for a session, with the
    user's own roles."""
    # Imported here: accounts.models imports this module (ScopedQuerySet).
    from accounts.models import ApiKey
    from accounts.selectors import user_workspace_roles

    if isinstance(credential, ApiKey):
        return Caller(
            user_id=credential.created_by_id,
            api_key_id=credential.pk,
            roles={credential.workspace_id: credential.role},
        )
    if user is None or not user.is_authenticated or not user.is_active:
        return ANONYMOUS
    return Caller(
        user_id=user.pk, is_staff=user.is_staff, roles=user_workspace_roles(user_id=user.pk)
    )


def caller_for(request) -> Caller:
    """The DRF request's Caller, built once from what its authentication found."""
    cached = getattr(request, "_sverm_caller", None)
    if cached is None:
        cached = caller_build(
            user=getattr(request, "user", None), credential=getattr(request, "auth", None)
        )
        request._sverm_caller = cached
    return cached


SOURCES = ("workspace", "integration")


class ScopedQuerySet(models.QuerySet):
    """QuerySet of a workspace-owned model; the model names its path to the workspace id in
    `workspace_lookup` ("id" for Workspace itself, "workspace" for a direct foreign key), and sets
    `integration_visible = True` when installed integrations make its rows readable elsewhere."""

    def for_caller(self, caller: Caller, min_role: str = Role.VIEWER):
        """Rows the caller may see holding at least `min_role` (readable integrations included)."""
        return self.visible_in(caller.workspace_ids(min_role))

    def in_workspace(self, workspace_id: str):
        return self.filter(**{self.model.workspace_lookup: workspace_id})

    def visible_in(self, workspace_ids: list[str] | None, source: str | None = None):
        """Rows seen from `workspace_ids` (None: every workspace). `source` narrows to the
        workspaces' own rows ("workspace") or to rows their installed integrations make visible
        ("integration"); omitted is the union."""
        lookup = self.model.workspace_lookup
        own = Q() if workspace_ids is None else Q(**{f"{lookup}__in": workspace_ids})
        if getattr(self.model, "shared_when_unowned", False):
            # Rows of no workspace (built-ins) are readable by everyone, as if their own.
            own |= Q(**{f"{lookup}__isnull": True})
        if not getattr(self.model, "integration_visible", False):
            return self.none() if source == "integration" else self.filter(own)
        from accounts.models import Integration

        if source == "workspace":
            return self.filter(own)
        installed = Integration.objects.all()
        if workspace_ids is not None:
            installed = installed.filter(installer_id__in=workspace_ids)
        if workspace_ids is None:
            integrated = Q(**{f"{lookup}__in": installed.values("publisher_id")})
            return self.filter(integrated) if source == "integration" else self
        # The publishers are read first (one small indexed query): `workspace IN (own and
        # publishers)` lets the database walk an index in page order, where `own OR workspace IN
        # (subquery)` made it scan and sort the whole table for every page.
        publishers = sorted(set(installed.values_list("publisher_id", flat=True)))
        if source == "integration":
            foreign = [p for p in publishers if p not in workspace_ids]
            return self.filter(**{f"{lookup}__in": foreign})
        visible = Q(**{f"{lookup}__in": sorted({*workspace_ids, *publishers})})
        if getattr(self.model, "shared_when_unowned", False):
            visible |= Q(**{f"{lookup}__isnull": True})
        return self.filter(visible)


def workspace_id_of(obj: models.Model) -> str:
    """Follow the model's `workspace_lookup` from an instance to its workspace id (a foreign
    key's `<name>_id`, or a plain id column such as the audit trail's `workspace_id`)."""
    *path, last = type(obj).workspace_lookup.split("__")
    for name in path:
        obj = getattr(obj, name)
    return obj.pk if last in ("id", "pk") else getattr(obj, obj._meta.get_field(last).attname)

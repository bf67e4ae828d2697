"""Reads for templates: the templates a caller may use."""

from django.db.models import F, QuerySet

from accounts.roles import Role
from accounts.tenancy import Caller
from sverm.api.errors import NotFound
from templates_app.models import SwarmTemplate


def templates_visible(*, caller: Caller, workspace_id: str | None = None) -> QuerySet:
    """Built-ins plus the templates of the caller's workspaces, or, given `workspace_id`, of that
    workspace only (just the built-ins when the caller is no member of it). Built-ins first."""
    templates = SwarmTemplate.objects.all()
    if workspace_id is None:
        templates = templates.for_caller(caller, Role.VIEWER)
    else:
        member = caller.role_in(workspace_id) is not None
        templates = templates.visible_in([workspace_id] if member else [])
    return templates.order_by(F("workspace_id").asc(nulls_first=True), "id")


def template_get(
    *, caller: Caller, template_id: str, workspace_id: str | None = None
) -> SwarmTemplate:
    """A template the caller may read (see `templates_visible`); NotFound otherwise."""
    template = (
        templates_visible(caller=caller, workspace_id=workspace_id).filter(pk=template_id).first()
    )
    if template is None:
        raise NotFound(f"Template {template_id} not found.")
    return template

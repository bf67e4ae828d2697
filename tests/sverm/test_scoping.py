"""Tenancy is one mechanism: every view over a workspace-owned model uses the scoped base."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.viewsets import WorkspaceScopedViewSet


def iter_views(patterns=None, prefix=""):
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from iter_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            if view is not None:
                yield prefix + str(pattern.pattern), view


def is_workspace_owned(model) -> bool:
    return hasattr(model, "workspace_lookup") and hasattr(model.objects, "for_caller")


def test_every_view_on_a_workspace_owned_model_is_scoped():
    checked = 0
    for route, view in iter_views():
        queryset = getattr(view, "queryset", None)
        if queryset is None or not is_workspace_owned(queryset.model):
            continue
        checked += 1
        assert issubclass(view, WorkspaceScopedViewSet), f"{route}: {view.__name__} is not scoped"
    assert checked >= 3  # workspaces, members, api keys at least


def test_every_api_view_requires_authentication_or_is_declared_public():
    public = {"LoginView", "RefreshView", "RouteNotFoundView", "HealthzView", "ReadyzView"}
    for route, view in iter_views():
        if not route.startswith(("api/", "v1/", "^(?:api|v1)")):
            continue
        permissions = {p.__name__ for p in getattr(view, "permission_classes", [])}
        if view.__name__ in public:
            assert "AllowAny" in permissions, route
        else:
            assert "AllowAny" not in permissions, f"{route}: {view.__name__} is public"


@pytest.mark.parametrize("method", ["get_queryset", "get_object"])
def test_subclasses_may_not_bypass_scoping(method):
    with pytest.raises(TypeError, match="safely_get_queryset"):
        type("Sneaky", (WorkspaceScopedViewSet,), {method: lambda self: None})

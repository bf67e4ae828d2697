"""Routes of `/api/auth`, `/api/workspaces`, `/api/workspaces/{id}/members`, `/api/api-keys`
and `/api/audit-events` (the audit app imports no other app, so its view is served here)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import views, views_audit

router = SimpleRouter(trailing_slash=False)
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("audit-events", views_audit.AuditEventViewSet, basename="audit-event")

members = views.MemberViewSet.as_view({"get": "list", "post": "create"})
member = views.MemberViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)

integrations = views.IntegrationViewSet.as_view({"get": "list", "post": "create"})
integration = views.IntegrationViewSet.as_view({"get": "retrieve", "delete": "destroy"})

urlpatterns = [
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("workspaces/<str:workspace_id>/members", members, name="workspace-members"),
    path("workspaces/<str:workspace_id>/members/<str:user_id>", member, name="workspace-member"),
    path("workspaces/<str:workspace_id>/integrations", integrations, name="integrations"),
    path("workspaces/<str:workspace_id>/integrations/<str:pk>", integration, name="integration"),
    *router.urls,
]

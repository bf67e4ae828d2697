"""Routes of `/api/swarms` (with versions and runs), `/api/runs` (with events and webhook
deliveries) and the workspace webhook settings."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from swarms import views, views_approvals, views_webhooks

router = SimpleRouter(trailing_slash=False)
router.register("swarms", views.SwarmViewSet, basename="swarm")
router.register("runs", views.RunViewSet, basename="run")

versions = views.SwarmVersionViewSet.as_view({"get": "list", "post": "create"})
version = views.SwarmVersionViewSet.as_view({"get": "retrieve"})

events = views.RunEventViewSet.as_view({"get": "list"})
approvals = views_approvals.RunApprovalViewSet.as_view({"get": "list"})
approval = views_approvals.RunApprovalViewSet.as_view({"get": "retrieve", "post": "decide"})

deliveries = views_webhooks.RunWebhookDeliveryViewSet.as_view({"get": "list", "post": "create"})
webhook_secret = views_webhooks.WebhookSecretViewSet.as_view({"get": "retrieve", "post": "create"})
webhook_endpoints = views_webhooks.WebhookEndpointViewSet.as_view({"get": "list"})
webhook_endpoint_enable = views_webhooks.WebhookEndpointViewSet.as_view({"post": "enable"})

urlpatterns = [
    path("runs/<str:run_id>/events", events, name="run-events"),
    path("runs/<str:run_id>/approvals", approvals, name="run-approvals"),
    path("runs/<str:run_id>/approvals/<str:pk>", approval, name="run-approval"),
    path("runs/<str:run_id>/webhook-deliveries", deliveries, name="run-webhook-deliveries"),
    path("workspaces/<str:workspace_id>/webhook-secret", webhook_secret, name="webhook-secret"),
    path(
        "workspaces/<str:workspace_id>/webhook-endpoints",
        webhook_endpoints,
        name="webhook-endpoints",
    ),
    path(
        "workspaces/<str:workspace_id>/webhook-endpoints/<int:endpoint_id>/enable",
        webhook_endpoint_enable,
        name="webhook-endpoint-enable",
    ),
    path("swarms/<str:swarm_id>/versions", versions, name="swarm-versions"),
    path("swarms/<str:swarm_id>/versions/<str:version_id>", version, name="swarm-version"),
    *router.urls,
]

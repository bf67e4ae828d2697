"""Routes of `/api/swarms` (with versions and runs) and `/api/runs` (with events)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from swarms import views

router = SimpleRouter(trailing_slash=False)
router.register("swarms", views.SwarmViewSet, basename="swarm")
router.register("runs", views.RunViewSet, basename="run")

versions = views.SwarmVersionViewSet.as_view({"get": "list", "post": "create"})
version = views.SwarmVersionViewSet.as_view({"get": "retrieve"})

events = views.RunEventViewSet.as_view({"get": "list"})

urlpatterns = [
    path("runs/<str:run_id>/events", events, name="run-events"),
    path("swarms/<str:swarm_id>/versions", versions, name="swarm-versions"),
    path("swarms/<str:swarm_id>/versions/<str:version_id>", version, name="swarm-version"),
    *router.urls,
]

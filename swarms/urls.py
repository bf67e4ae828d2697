"""Routes of `/api/swarms` and `/api/swarms/{id}/versions`."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from swarms import views

router = SimpleRouter(trailing_slash=False)
router.register("swarms", views.SwarmViewSet, basename="swarm")

versions = views.SwarmVersionViewSet.as_view({"get": "list", "post": "create"})
version = views.SwarmVersionViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("swarms/<str:swarm_id>/versions", versions, name="swarm-versions"),
    path("swarms/<str:swarm_id>/versions/<str:version_id>", version, name="swarm-version"),
    *router.urls,
]

"""Routes of the `/v1` run API (seed 002): `/v1/swarms`."""

from rest_framework.routers import SimpleRouter

from swarms import views_v1

router = SimpleRouter(trailing_slash=False)
router.register("swarms", views_v1.V1SwarmViewSet, basename="v1-swarm")

urlpatterns = router.urls

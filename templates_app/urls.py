"""Routes of `/api/templates`."""

from rest_framework.routers import SimpleRouter

from templates_app import views

router = SimpleRouter(trailing_slash=False)
router.register("templates", views.TemplateViewSet, basename="template")

urlpatterns = router.urls

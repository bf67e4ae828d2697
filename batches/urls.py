"""Routes of `/api/batches` (with its items, cancel and results)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from batches import views

router = SimpleRouter(trailing_slash=False)
router.register("batches", views.BatchViewSet, basename="batch")

items = views.BatchItemViewSet.as_view({"get": "list"})

urlpatterns = [
    path("batches/<str:batch_id>/items", items, name="batch-items"),
    *router.urls,
]

"""Routes of `/v1/usage` (seed 002); sverm/urls.py mounts them under `v1/`."""

from django.urls import path

from billing import views

urlpatterns = [
    path("usage", views.V1UsageViewSet.as_view({"get": "list"}), name="v1-usage"),
]

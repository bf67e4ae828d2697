"""Routes of `/api/usage`; sverm/urls.py mounts them under `api/`."""

from django.urls import path

from billing import views

urlpatterns = [
    path("usage", views.UsageViewSet.as_view({"get": "list"}), name="usage"),
    path("usage.csv", views.UsageCSVViewSet.as_view({"get": "list"}), name="usage-csv"),
]

"""Top-level routes: admin, docs, health, metrics, `/api` and `/v1`, and the API catch-all."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from sverm.api.views import RouteNotFoundView
from sverm.asyncapi import AsyncAPIView, AsyncAPIYAMLView
from sverm.health import HealthzView, ReadyzView
from sverm.metrics.views import MetricsView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("asyncapi.json", AsyncAPIView.as_view(), name="asyncapi"),
    path("asyncapi.yaml", AsyncAPIYAMLView.as_view(), name="asyncapi-yaml"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("runs/", include("swarms.urls_live")),
    path("healthz", HealthzView.as_view(), name="healthz"),
    path("readyz", ReadyzView.as_view(), name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/", include("accounts.urls")),
    path("api/", include("swarms.urls")),
    path("api/", include("templates_app.urls")),
    path("api/", include("billing.urls")),
    path("api/", include("tools.urls")),
    path("api/", include("audit.urls")),
    path("api/", include("schedules.urls")),
    path("api/", include("batches.urls")),
    path("v1/", include("swarms.urls_v1")),
    path("v1/", include("billing.urls_v1")),
    path("v1/", include("templates_app.urls_v1")),
    re_path(r"^(?:api|v1)(?:/.*)?$", RouteNotFoundView.as_view(), name="api-not-found"),
]

handler400 = "sverm.api.errors.handler400"
handler403 = "sverm.api.errors.handler403"
handler404 = "sverm.api.errors.handler404"
handler500 = "sverm.api.errors.handler500"

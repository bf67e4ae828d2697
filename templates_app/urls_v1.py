"""Routes of `/v1/templates` (seed 002)."""

from django.urls import path

from templates_app import views

urlpatterns = [
    path(
        "templates",
        views.V1TemplateListViewSet.as_view({"get": "list"}),
        name="v1-templates",
    ),
    path(
        "templates/<str:pk>",
        views.V1TemplateYAMLViewSet.as_view({"get": "retrieve"}),
        name="v1-template",
    ),
]

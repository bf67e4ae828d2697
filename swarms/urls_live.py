"""Routes of the live run page for signed-in staff."""

from django.urls import path

from swarms import views_live

urlpatterns = [
    path("<str:run_id>/live", views_live.run_live, name="run-live"),
]

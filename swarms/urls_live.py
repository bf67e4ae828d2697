"""Routes of the live run page for signed-in staff."""

from django.urls import path

from swarms import views_live

urlpatterns = [
    path("<str:run_id>/live", views_live.run_live, name="run-live"),
    path(
        "<str:run_id>/approvals/<str:approval_id>/decide",
        views_live.run_approval_decide,
        name="run-approval-decide",
    ),
    path("<str:run_id>/budget", views_live.run_budget_raise_view, name="run-budget-raise"),
]

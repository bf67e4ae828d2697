"""Routes of `/api/schedules` (with pause, resume) and `/api/schedules/{id}/firings`."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from schedules import views

router = SimpleRouter(trailing_slash=False)
router.register("schedules", views.ScheduleViewSet, basename="schedule")

firings = views.ScheduleFiringViewSet.as_view({"get": "list"})

urlpatterns = [
    path("schedules/<str:schedule_id>/firings", firings, name="schedule-firings"),
    *router.urls,
]

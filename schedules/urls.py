"""Routes of the schedules app."""

urlpatterns: list = []

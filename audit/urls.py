"""Routes of the audit app."""

urlpatterns: list = []

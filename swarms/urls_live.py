"""Routes of the live run page for signed-in staff."""

urlpatterns: list = []

"""Routes of the batches app."""

urlpatterns: list = []

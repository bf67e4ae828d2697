"""Routes of the audit app: none. `/api/audit-events` is routed by accounts (accounts/urls.py),
whose tenancy scopes it: this app is a leaf that imports no other app."""

urlpatterns: list = []

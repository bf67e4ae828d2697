"""Plumbing every sverm API shares, free of any app: errors, ids, listing and pagination, schema,
rate-limit windows, idempotency and the WebSocket Origin check (tenancy and auth: accounts/)."""

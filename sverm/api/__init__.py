"""Plumbing every sverm API shares: errors, ids, auth, scoping, pagination, schema."""

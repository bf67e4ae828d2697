"""Tools agents may call: the built-in `http_fetch`, and each workspace's allowlist."""

"""`make bench`: sverm measured against baselines taken in the same run (see bench/README.md)."""

"""Admin for swarms (versions inline, soft delete, restore and purge), runs (a list that finds
the ones needing attention, a run page laid out for reading, Cancel and Retry), their
timelines, approvals and webhooks: one module each, registered on import."""

from swarms.admin import approvals, runs, swarms, webhooks  # noqa: F401 (they register)

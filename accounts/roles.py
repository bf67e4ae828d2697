"""Workspace roles, ordered viewer < operator < admin; free of models to avoid import cycles."""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"

    @classmethod
    def allows(cls, held: str | None, required: str) -> bool:
        """Whether a caller holding `held` may do what needs `required`."""
        return held is not None and _RANK[held] >= _RANK[required]


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

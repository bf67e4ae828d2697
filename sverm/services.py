"""Service helpers shared by every app."""

from typing import Any

from django.db import models


def model_update(*, instance: models.Model, data: dict[str, Any]) -> tuple[models.Model, bool]:
    """Set the given fields and save only those that changed (plus auto_now fields)."""
    changed = [name for name, value in data.items() if getattr(instance, name) != value]
    if not changed:
        return instance, False
    for name in changed:
        setattr(instance, name, data[name])
    auto_now = [f.name for f in instance._meta.concrete_fields if getattr(f, "auto_now", False)]
    instance.full_clean(exclude=[f.name for f in instance._meta.fields if f.name not in changed])
    instance.save(update_fields=changed + auto_now)
    return instance, True

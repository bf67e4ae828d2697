"""Prefixed, time-sortable, opaque ids: one generator and the one list of prefixes."""

from django.db import models
from ulid import ULID

PREFIXES = {
    "user": "usr",
    "workspace": "wsp",
    "membership": "mem",
    "api_key": "key",
    "integration": "int",
    "swarm": "swm",
    "swarm_version": "swv",
    "run": "run",
    "mcp_server": "mcp",
    "approval": "apr",
    "batch": "bat",
    "batch_item": "bti",
    "audit_event": "aud",
    "schedule": "sch",
    "schedule_firing": "fir",
}

ID_MAX_LENGTH = 32


def new_id(prefix: str) -> str:
    """`<prefix>_<ulid>`: lower-case Crockford base32, sortable by creation time."""
    if prefix not in PREFIXES.values():
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{str(ULID()).lower()}"


def has_prefix(value: str, prefix: str) -> bool:
    return (
        isinstance(value, str) and value.startswith(prefix + "_") and len(value) == len(prefix) + 27
    )


class PrefixedIdField(models.CharField):
    """Primary key that fills itself with `new_id(prefix)`."""

    def __init__(self, *args, prefix: str, **kwargs):
        if prefix not in PREFIXES.values():
            raise ValueError(f"unknown id prefix {prefix!r}")
        self.prefix = prefix
        kwargs.setdefault("max_length", ID_MAX_LENGTH)
        kwargs.setdefault("primary_key", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        for key, default in (
            ("max_length", ID_MAX_LENGTH),
            ("primary_key", True),
            ("editable", False),
        ):
            if kwargs.get(key) == default:
                kwargs.pop(key)
        return name, path, args, kwargs

    def get_default(self):
        return new_id(self.prefix)

    def has_default(self):
        return True

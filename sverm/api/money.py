"""Money on the wire, in one place: every amount is USD as a JSON number rounded down to 6
decimal places (`sverm.money.money_json`), as seed 002 shows it (`"cost_usd": 0.012`), on every
surface: `/v1` and `/api` bodies, WebSocket stream messages, webhook payloads, and stored
events as the API renders them. An event's data stores its `*_usd` values as exact strings;
only what is sent is rounded, here.
"""

from collections.abc import Mapping
from decimal import ROUND_DOWN
from typing import Any

from rest_framework import serializers

from sverm.money import money_json

MONEY_DESCRIPTION = "USD as a JSON number, rounded down to 6 decimal places."
# The keys of an event's data that hold money.
MONEY_KEY_SUFFIX = "_usd"


def money_fields_rendered(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """An event's data as sent: each `*_usd` value as `money_json` (the rest as stored)."""
    if not isinstance(data, Mapping) or not any(key.endswith(MONEY_KEY_SUFFIX) for key in data):
        return data
    return {
        key: money_json(value)
        if key.endswith(MONEY_KEY_SUFFIX) and value is not None and not isinstance(value, bool)
        else value
        for key, value in data.items()
    }


class MoneyField(serializers.DecimalField):
    """An amount in a response body: `money_json`'s number, described so in the schema."""

    def __init__(self, **kwargs):
        help_text = kwargs.pop("help_text", "")
        super().__init__(
            max_digits=20,
            decimal_places=6,
            rounding=ROUND_DOWN,
            coerce_to_string=False,
            help_text=f"{help_text} {MONEY_DESCRIPTION}".strip(),
            **kwargs,
        )

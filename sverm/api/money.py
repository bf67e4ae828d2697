"""Money on the wire, in one place: every amount is USD as a JSON number rounded down to 6
decimal places, as seed 002 shows it (`"cost_usd": 0.012`), on every surface: `/v1` and `/api`
bodies, WebSocket stream messages, webhook payloads, and stored events as the API renders them.

Rounded down, so that shown amounts add up (`money_shares`) and never pass a budget. The
database, the ledger and the engine keep exact Decimals (an event's data stores its `*_usd`
values as exact strings); only what is sent is rounded, here.
"""

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from rest_framework import serializers

MONEY_PLACES = Decimal("0.000001")
MONEY_DESCRIPTION = "USD as a JSON number, rounded down to 6 decimal places."
# The keys of an event's data that hold money.
MONEY_KEY_SUFFIX = "_usd"


def money(amount: Decimal | int | str) -> Decimal:
    """Rounded down to 6 decimals: shown amounts add up and never pass the budget."""
    return Decimal(amount).quantize(MONEY_PLACES, rounding=ROUND_DOWN)


def money_shares(exact: Sequence[Decimal]) -> tuple[Decimal, list[Decimal]]:
    """The total of `exact` as shown, and each amount as shown so that they add up to it
    exactly (largest remainders get the leftover micro-dollars)."""
    total = money(sum(exact, Decimal(0)))
    shown = [money(amount) for amount in exact]
    leftover = int((total - sum(shown, Decimal(0))) / MONEY_PLACES)
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - shown[i], reverse=True)
    for index in by_remainder[:leftover]:
        shown[index] += MONEY_PLACES
    return total, shown


def money_json(amount: Decimal | int | str) -> float:
    """An amount as JSON carries it: the float DRF renders a Decimal as, whose shortest form is
    the 6-decimal amount (exact below a billion dollars)."""
    return float(money(Decimal(str(amount))))


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

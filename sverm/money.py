"""Money's one vocabulary, for every app: an amount as shown (USD rounded down to 6 decimal
places), shares of a total that add up to it, the JSON number an amount is sent as, and dollars
for messages.

Rounded down, so that shown amounts add up (`money_shares`) and never pass a budget. The
database, the ledger and the engine keep exact Decimals; only what is shown is rounded, here.
How a response body or an event describes an amount is the API's (sverm/api/money.py). The
engine keeps its own exact-text formatter for event payloads (`swarms.engine.types.money`):
it imports nothing from the project.
"""

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

MONEY_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")


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


def money_exact(amount: Decimal) -> str:
    """Every significant digit of an exact amount, as fixed-point text without trailing zeros
    (`0.015`, `5`; `str()` would give `1E-7` for tiny ones)."""
    return format(amount.normalize(), "f")


def usd(amount: Decimal) -> str:
    """Dollars for messages: cents ($5.00), or every digit when a cent would misstate the
    amount ($0.015)."""
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"${cents}" if cents == amount else f"${money_exact(amount)}"

"""Money's one vocabulary, for every app: an amount as shown (USD rounded down to 6 decimal
places), shares of a total that add up to it, totals of runs as the sum of the runs' shown
costs, the JSON number an amount is sent as, and dollars for messages.

Rounded down, so that shown amounts add up (`money_shares`) and never pass a budget. The
database, the ledger and the engine keep exact Decimals; only what is shown is rounded, here.
How a response body or an event describes an amount is the API's (sverm/api/money.py). The
engine keeps its own exact-text formatter for event payloads (`swarms.engine.types.money`):
it imports nothing from the project.

The rule every money figure follows (README, "Runs, models and money"):
1. A run's cost is shown as its exact cost rounded down to 6 places (`money`), wherever it
   appears; its parts (agents) are shown so that they add up to it (`money_shares`).
2. A figure that totals runs is the sum of the runs' shown costs (`money_by_run`,
   `money_added`), never the rounded sum of their exact costs: a month's swarm type in
   `/v1/usage` equals what a client adds up from the runs, and the month the sum of its types.
   A run only partly in a period (a month, a report's range) counts with its part in it.
3. Where rows cut across runs (a report by day or model), each run's shown cost is split over
   its rows as in 1, and a row is the sum of its pieces: rows add up to the total, and a
   report's total is the same whatever it is grouped by.
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
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


def money_added(before: Decimal, after: Decimal) -> Decimal:
    """How much a run's shown cost moves when its exact cost goes from `before` to `after`:
    what a total of shown run costs (rule 2) grows by, kept incrementally (billing's rollup)."""
    return money(after) - money(before)


def money_by_run(
    pieces: Iterable[tuple[Hashable, Hashable, Decimal]],
) -> tuple[Decimal, dict[Hashable, Decimal]]:
    """Rules 2 and 3 for `(run, row, exact)` pieces (a run's exact cost in a row): the total,
    the sum of the runs' shown costs, and each row's share of it, the sum of the pieces its
    runs' shown costs are split into (largest remainders first). A run in one row puts its
    shown cost there whole."""
    by_run: dict[Hashable, dict[Hashable, Decimal]] = defaultdict(dict)
    for run, row, exact in pieces:
        parts = by_run[run]
        parts[row] = parts.get(row, Decimal(0)) + exact
    total = Decimal(0)
    rows: dict[Hashable, Decimal] = defaultdict(Decimal)
    for parts in by_run.values():
        shown_total, shown = money_shares(list(parts.values()))
        total += shown_total
        for row, amount in zip(parts, shown, strict=True):
            rows[row] += amount
    return total, dict(rows)


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

"""The hard USD limit of a run: reserve a call's worst case before it starts, settle the real cost.

Reserving the worst case (prompt upper bound x input price + max_tokens x output price) before a
call, and refusing the call when that could pass the limit, is what makes "a run never costs more
than its budget" true by construction rather than by hoping the last call is cheap.
"""

import itertools
from dataclasses import dataclass
from decimal import Decimal

from swarms.engine.types import Price, money

_MILLION = Decimal(1_000_000)


def cost_usd(tokens_in: int, tokens_out: int, price: Price) -> Decimal:
    """Exact cost of a call: (tokens_in x input + tokens_out x output) / 1,000,000."""
    total = tokens_in * price.input_per_million + tokens_out * price.output_per_million
    return Decimal(total) / _MILLION


class BudgetExhausted(Exception):
    """A reservation would take spent + reserved past the limit."""

    def __init__(self, *, limit: Decimal, spent: Decimal, reserved: Decimal, amount: Decimal):
        self.limit, self.spent, self.reserved, self.amount = limit, spent, reserved, amount
        super().__init__(
            f"a call costing up to ${money(amount)} could take the run past its budget of "
            f"${money(limit)} (spent ${money(spent)}, reserved ${money(reserved)})"
        )


@dataclass(frozen=True)
class Reservation:
    id: int
    amount: Decimal


class Budget:
    """Spent, reserved and held money of one run.

    Held money belongs to calls that were interrupted in flight (a cancel, a lost worker): the
    provider may have charged them, so their reservation keeps counting against the limit until
    someone reconciles it. Used from the run's event loop only (no awaits inside, so no
    interleaving), hence no lock.
    """

    def __init__(self, limit: Decimal, *, held: Decimal = Decimal(0)) -> None:
        # A negative limit is not an error here: it simply refuses every reservation.
        self.limit = limit
        self._spent = Decimal(0)
        self._held = held
        self._open: dict[int, Decimal] = {}
        self._ids = itertools.count(1)

    @property
    def spent(self) -> Decimal:
        return self._spent

    @property
    def held(self) -> Decimal:
        """Reservations of interrupted calls, still counted against the limit."""
        return self._held

    @property
    def reserved(self) -> Decimal:
        """Money held by reservations not yet settled or released."""
        return sum(self._open.values(), Decimal(0))

    @property
    def remaining(self) -> Decimal:
        return self.limit - self._spent - self._held - self.reserved

    def reserve(self, amount: Decimal) -> Reservation:
        if amount < 0:
            raise ValueError("reservation amount must not be negative")
        if self._spent + self._held + self.reserved + amount > self.limit:
            raise BudgetExhausted(
                limit=self.limit,
                spent=self._spent + self._held,
                reserved=self.reserved,
                amount=amount,
            )
        reservation = Reservation(id=next(self._ids), amount=amount)
        self._open[reservation.id] = amount
        return reservation

    def settle(self, reservation: Reservation, actual_cost: Decimal) -> Decimal:
        """Replace the reservation with what the call really cost; returns what is charged.

        That is the provider's figure, even above the reservation (a provider reporting more
        output tokens than the max_tokens it was sent), as far as the limit has room for it;
        never past the limit: the rest is the provider's error, not the run's spend.
        """
        self._close(reservation)
        charged = min(actual_cost, max(Decimal(0), self.remaining))
        self._spent += charged
        return charged

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call failed (the provider refused it): nothing is spent."""
        self._close(reservation)

    def interrupt(self, reservation: Reservation) -> None:
        """A call aborted in flight: what it reserved stays held until reconciled."""
        self._close(reservation)
        self._held += reservation.amount

    def charge(self, amount: Decimal) -> None:
        """Money already spent outside this budget's reservations (a checkpointed call that a
        resumed run replays instead of paying for it again)."""
        if amount < 0:
            raise ValueError("a charge must not be negative")
        self._spent += amount

    def _close(self, reservation: Reservation) -> None:
        if self._open.pop(reservation.id, None) is None:
            raise ValueError(f"reservation {reservation.id} is not open")

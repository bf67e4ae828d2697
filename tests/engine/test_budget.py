"""Cost arithmetic and the reserve/settle budget."""

from decimal import Decimal

import pytest

from swarms.engine.budget import Budget, BudgetExhausted, cost_usd
from swarms.engine.types import Price

PRICE = Price(input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"))


def test_cost_is_exact_decimal():
    assert cost_usd(1000, 500, PRICE) == Decimal("0.00045")
    assert cost_usd(1, 0, PRICE) == Decimal("0.00000015")
    assert cost_usd(0, 0, PRICE) == 0
    assert isinstance(cost_usd(3, 7, PRICE), Decimal)
    third = Price(Decimal("0.333333"), Decimal("1.234567"))
    assert cost_usd(3_000_000, 1_000_000, third) == Decimal("0.999999") + Decimal("1.234567")


def test_reserve_settle_and_release():
    budget = Budget(Decimal("1.00"))
    first = budget.reserve(Decimal("0.40"))
    second = budget.reserve(Decimal("0.50"))
    assert budget.reserved == Decimal("0.90")
    assert budget.spent == 0
    budget.settle(first, Decimal("0.10"))  # calls usually cost less than their worst case
    assert budget.spent == Decimal("0.10")
    assert budget.reserved == Decimal("0.50")
    budget.release(second)  # an aborted call costs nothing
    assert budget.reserved == 0
    assert budget.remaining == Decimal("0.90")


def test_reservation_that_could_pass_the_limit_is_refused():
    budget = Budget(Decimal("1.00"))
    budget.settle(budget.reserve(Decimal("0.60")), Decimal("0.60"))
    held = budget.reserve(Decimal("0.30"))
    with pytest.raises(BudgetExhausted) as refused:
        budget.reserve(Decimal("0.11"))
    assert "$1.00" in str(refused.value)
    assert refused.value.amount == Decimal("0.11")
    budget.reserve(Decimal("0.10"))  # exactly up to the limit is fine
    budget.release(held)


def test_settling_above_the_reservation_records_the_real_cost():
    budget = Budget(Decimal("1.00"))
    reservation = budget.reserve(Decimal("0.10"))
    budget.settle(reservation, Decimal("0.25"))
    assert budget.spent == Decimal("0.25")


def test_a_reservation_closes_once():
    budget = Budget(Decimal("1"))
    reservation = budget.reserve(Decimal("0.1"))
    budget.settle(reservation, Decimal("0.1"))
    with pytest.raises(ValueError, match="not open"):
        budget.settle(reservation, Decimal("0.1"))
    with pytest.raises(ValueError, match="not open"):
        budget.release(reservation)


def test_zero_and_negative_limits_refuse_everything_but_free_calls():
    assert Budget(Decimal(0)).reserve(Decimal(0)).amount == 0
    with pytest.raises(BudgetExhausted):
        Budget(Decimal(0)).reserve(Decimal("0.000001"))
    with pytest.raises(BudgetExhausted):
        Budget(Decimal(-1)).reserve(Decimal(0))

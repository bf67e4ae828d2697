"""The budget arithmetic: a split total's shares never add up to more than the total (and waste
less than a micro-dollar per item), and the per-item admission rule never lets what a batch can
spend pass its total, whatever its runs cost."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from batches.models import Batch, BudgetMode
from batches.services import _fits_budget, batch_split_budget
from sverm.money import MONEY_PLACES

totals = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal("1000000"), places=6, allow_nan=False
)
counts = st.integers(min_value=1, max_value=1000)


@given(total=totals, items=counts)
def test_split_shares_never_exceed_the_total_and_are_the_largest_that_fit(total, items):
    share = batch_split_budget(total_usd=total, items=items)
    assert share == share.quantize(MONEY_PLACES)  # a whole number of micro-dollars
    assert share >= 0
    assert share * items <= total
    # One micro-dollar more per item would pass the total: nothing is left on the table.
    assert (share + MONEY_PLACES) * items > total


def test_split_rounds_down_to_the_micro_dollar():
    assert batch_split_budget(total_usd=Decimal("1"), items=3) == Decimal("0.333333")
    assert batch_split_budget(total_usd=Decimal("0.000005"), items=10) == Decimal("0")
    assert batch_split_budget(total_usd=Decimal("10"), items=4) == Decimal("2.5")


@given(
    total=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=6),
    cap_share=st.integers(min_value=1, max_value=100),
    fractions=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=60),
    concurrency=st.integers(min_value=1, max_value=10),
)
def test_per_item_admission_keeps_spent_plus_reserved_within_the_total(
    total, cap_share, fractions, concurrency
):
    """Items start in order while `_fits_budget` says so (up to the concurrency), and end
    oldest first, each costing a fraction of its cap: at every step what was spent plus the
    caps of the running items stays within the total."""
    cap = max((total * cap_share / 100).quantize(MONEY_PLACES), MONEY_PLACES)
    batch = Batch(
        budget_mode=BudgetMode.PER_ITEM, total_budget_usd=total, item_budget_usd=cap,
        spent_usd=Decimal(0), items_running=0,
    )  # fmt: skip
    pending = list(fractions)
    running: list[int] = []
    while pending or running:
        while pending and len(running) < concurrency and _fits_budget(batch):
            running.append(pending.pop(0))
            batch.items_running += 1
            assert batch.spent_usd + cap * batch.items_running <= total
        if not running:
            break  # nothing left fits: the rest are skipped
        fraction = running.pop(0)
        batch.items_running -= 1
        batch.spent_usd += (cap * fraction / 100).quantize(Decimal("0.0000000001"))
        assert batch.spent_usd <= total
    assert batch.spent_usd <= total

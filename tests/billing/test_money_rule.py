"""The one rounding rule (sverm/money.py) that every usage figure follows: a run shows its exact
cost rounded down to 6 places; totals of runs are sums of what the runs show; rows that cut
across runs split each run's shown cost so that rows add up to the total."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sverm.money import money, money_added, money_by_run

AMOUNTS = st.decimals(min_value=0, max_value=Decimal("0.01"), places=10)
PIECES = st.lists(
    st.tuples(st.sampled_from(["run_a", "run_b", "run_c", "run_d"]),
              st.sampled_from(["2026-01-01", "2026-01-02", "gpt-4o-mini"]), AMOUNTS),
    max_size=30,
)  # fmt: skip


@given(PIECES)
def test_rows_add_up_to_the_sum_of_the_runs_shown_costs(pieces):
    total, rows = money_by_run(pieces)
    runs: dict[str, Decimal] = {}
    for run, _row, exact in pieces:
        runs[run] = runs.get(run, Decimal(0)) + exact
    assert total == sum((money(cost) for cost in runs.values()), Decimal(0))
    assert sum(rows.values(), Decimal(0)) == total
    assert set(rows) == {row for _run, row, _exact in pieces}
    for row, shown in rows.items():  # never more than the row's exact cost, never negative
        exact = sum((e for _run, r, e in pieces if r == row), Decimal(0))
        assert 0 <= shown <= exact + Decimal("0.000001") * len(runs)
        assert shown == money(shown)


def test_a_run_in_one_row_puts_its_shown_cost_there_whole():
    total, rows = money_by_run([("run_a", "research", Decimal("0.0000019")),
                                ("run_b", "research", Decimal("0.0000019")),
                                ("run_c", "custom", Decimal("0.0034567891"))])  # fmt: skip
    assert rows == {"research": Decimal("0.000002"), "custom": Decimal("0.003456")}
    assert total == Decimal("0.003458")  # not 0.0034605891 rounded down (0.003460)


@given(st.lists(AMOUNTS, max_size=20))
def test_a_running_total_of_what_runs_show_moves_by_money_added(calls):
    shown = Decimal(0)
    exact = Decimal(0)
    for cost in calls:
        shown += money_added(exact, exact + cost)
        exact += cost
    assert shown == money(exact)

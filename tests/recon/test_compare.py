"""Comparing both sides: tolerances, mapping and multiplier, as of the same moment."""

from decimal import Decimal

import pytest

from app.recon.compare import Terms, allowance, difference_of, excess_of
from app.recon.queries import PERCENT_PLACES, difference_percent

D = Decimal


def terms(abs_tolerance=None, rel=None, multiplier="1") -> Terms:
    return Terms(
        asset_id=1,
        left_account="main",
        left_asset="XBT",
        right_account="main@binance",
        right_asset="BTC",
        multiplier=D(multiplier),
        abs_tolerance=None if abs_tolerance is None else D(abs_tolerance),
        rel_tolerance_percent=None if rel is None else D(rel),
        left_max_age_seconds=600,
        right_max_age_seconds=600,
    )


@pytest.mark.parametrize(
    ("left", "right", "beyond"),
    [("5", "5.01", False), ("5", "5.0100000001", True), ("5", "4.99", False), ("5", "4.98", True)],
)
def test_absolute_tolerance_allows_that_much_either_way(left, right, beyond):
    assert (excess_of(terms(abs_tolerance="0.01"), D(left), D(right)) > 0) is beyond


@pytest.mark.parametrize(
    ("left", "right", "beyond"),
    [("1000", "1001", False), ("1000", "1001.0001", True), ("-1000", "-999", False)],
)
def test_relative_tolerance_is_a_percent_of_the_left_amount(left, right, beyond):
    assert (excess_of(terms(rel="0.1"), D(left), D(right)) > 0) is beyond


def test_with_both_a_break_is_beyond_both_the_larger_allowance_wins():
    both = terms(abs_tolerance="0.5", rel="1")
    # Small position: the absolute floor allows 0.5 where 1 % would allow 0.02.
    assert excess_of(both, D("2"), D("2.4")) <= 0
    assert excess_of(both, D("2"), D("2.6")) > 0
    # Large position: 1 % allows 10 where the absolute one allows 0.5.
    assert excess_of(both, D("1000"), D("1009")) <= 0
    assert excess_of(both, D("1000"), D("1011")) > 0
    assert allowance(D("1000"), D("0.5"), D("1")) == D("10")


def test_without_tolerance_any_difference_is_a_break():
    assert excess_of(terms(), D("5"), D("5")) == 0
    assert excess_of(terms(), D("5"), D("5.00000000000000000001")) > 0


def test_tolerances_hold_exactly_past_28_significant_digits():
    # 1.0000000000000000000000000015 is inside 1.00000000000000000000000000151, though
    # rounded to 28 digits it would be 1.000000000000000000000000002, outside.
    wide = terms(abs_tolerance="1.00000000000000000000000000151")
    assert excess_of(wide, D("0"), D("1.0000000000000000000000000015")) < 0
    # 1 % of |-100.00000000000000000000000000049| is 1.0000000000000000000000000000049,
    # short of the difference 1.00000000000000000000000000049; both equal once rounded.
    assert excess_of(terms(rel="1"), D("-100.00000000000000000000000000049"), D("-99")) > 0


def test_multiplier_scales_the_right_side_exactly():
    contracts = terms(multiplier="0.0001")
    assert difference_of(contracts, D("1.2345"), D("12345")) == 0
    assert difference_of(contracts, D("1.2345"), D("12346")) == D("0.0001")


def test_decimals_are_exact_far_beyond_float():
    exact = terms()
    left = D("123456789.123456789123456789")
    right = D("123456789.123456789123456790")
    assert difference_of(exact, left, right) == D("1E-18")
    assert isinstance(difference_of(exact, left, right), Decimal)


def test_a_difference_in_percent_of_a_tiny_amount_is_exact_however_large():
    # 1E+30 against 1E-30: 1E+62 % written out, past the default context's 28 digits.
    percent = difference_percent(Decimal("1E+30"), Decimal("-1E-30"))

    assert percent == Decimal("1E+62")
    assert percent.as_tuple().exponent == PERCENT_PLACES.as_tuple().exponent

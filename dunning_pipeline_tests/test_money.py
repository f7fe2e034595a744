"""Exact money: every conversion and format written out by hand."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from dunning_pipeline.money import (
    MoneyError,
    currency_decimals,
    format_amount,
    format_column,
    series_to_units,
    to_decimal,
    to_units,
    units_to_text,
)


@pytest.mark.parametrize(("value", "units"), [
    (Decimal("1234.56"), 12_345_600), ("0.0001", 1), (0.1, 1_000), (7, 70_000),
    ("-12.34", -123_400), (Decimal("0"), 0), (1e15, 10**19), ("99999999999999.9999", 999_999_999_999_999_999),
])
def test_amounts_become_exact_units(value, units):
    assert to_units(value) == units


@pytest.mark.parametrize(("value", "message"), [
    (None, "^amount is missing$"), (False, "^amount is missing$"), ("0.00001", "more than 4 decimal places"),
    (float("nan"), "not finite"), (float("inf"), "not finite"), ("abc", "is not a number"),
    ("Infinity", "is not finite"), ([1], "is not a number"),
])
def test_what_cannot_be_exact_is_refused(value, message):
    with pytest.raises(MoneyError, match=message):
        to_units(value)


def test_a_column_names_its_bad_row():
    units = series_to_units(pd.Series(["1.5", 2], index=[10, 11], name="amount_residual"))
    pd.testing.assert_series_equal(units, pd.Series([15_000, 20_000], index=[10, 11], dtype="int64",
                                                    name="amount_residual"))
    with pytest.raises(MoneyError, match=r"row 11: amount '1.23456' has more than 4 decimal places"):
        series_to_units(pd.Series(["1.5", "1.23456"], index=[10, 11]))


def test_units_leave_as_exact_decimals_and_text():
    assert to_decimal(12_345_600) == Decimal("1234.56") and str(to_decimal(-1)) == "-0.0001"
    text = units_to_text(pd.Series([12_345_600, -123_400, 5, 0], index=[4, 5, 6, 7]))
    assert text.tolist() == ["1234.5600", "-12.3400", "0.0005", "0.0000"] and text.index.tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize(("units", "currency", "text"), [
    (12_345_678, "EUR", "1,234.57 EUR"), (12_345_000, "EUR", "1,234.50 EUR"),
    (-12_345_000, "EUR", "-1,234.50 EUR"), (49_920_140_000, "JPY", "4,992,014 JPY"),
    (5_000, "JPY", "1 JPY"), (12_345, "KWD", "1.235 KWD"), (12_345, "CLF", "1.2345 CLF"),
    (10_000, None, "1.00"), (10_000, "jpy", "1 jpy"),
])
def test_display_uses_the_currency_s_decimals_rounding_half_up(units, currency, text):
    assert format_amount(units, currency) == text


def test_display_without_code_and_columns_with_gaps():
    assert format_amount(12_345_000, "EUR", with_code=False) == "1,234.50"
    assert currency_decimals("usd") == 2 and currency_decimals(None) == 2 and currency_decimals("BHD") == 3
    assert format_column(pd.Series([10_000, None, 20_000], dtype="Int64"),
                         pd.Series(["EUR", "EUR", None])) == ["1.00 EUR", "", "2.00"]

"""Configuration errors name the variable; the as-of date is explicit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dunning_pipeline import money, settings
from dunning_pipeline.as_of import as_of_for_tick, resolve_as_of


def test_timezone_defaults_to_utc_and_rejects_unknown_names():
    assert settings.timezone_name({}) == "UTC"
    assert settings.timezone_name({"DUNNING_TIMEZONE": "Europe/Berlin"}) == "Europe/Berlin"
    with pytest.raises(settings.SettingsError, match="DUNNING_TIMEZONE='Mars/Olympus'"):
        settings.timezone_name({"DUNNING_TIMEZONE": "Mars/Olympus"})


def test_database_url_errors_name_the_variable_without_echoing_the_secret():
    with pytest.raises(settings.SettingsError) as exc:
        settings.check_database_url("mysql://user:hunter2@db/x")
    assert "DUNNING_DATABASE_URL" in str(exc.value) and "hunter2" not in str(exc.value)
    assert settings.check_database_url("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
    with pytest.raises(settings.SettingsError, match=r"\(got a value without a scheme\)$"):
        settings.check_database_url("postgresql//user:hunter2@db/x")


def test_http_urls_are_validated_and_normalised():
    assert settings.check_http_url("https://acme.odoo.com/", "ODOO_URL") == "https://acme.odoo.com"
    with pytest.raises(settings.SettingsError, match="ODOO_URL must be an http"):
        settings.check_http_url("acme.odoo.com", "ODOO_URL")
    with pytest.raises(settings.SettingsError, match="ZENDESK_URL must not carry credentials"):
        settings.check_http_url("https://me:pw@acme.zendesk.com", "ZENDESK_URL")
    with pytest.raises(settings.SettingsError, match="ODOO_API_KEY is not set"):
        settings.require("  ", "ODOO_API_KEY")


def test_as_of_comes_from_the_tag_or_the_runs_day_in_the_configured_zone():
    late_evening_utc = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert resolve_as_of(None, late_evening_utc, ZoneInfo("UTC")) == date(2026, 3, 1)
    assert resolve_as_of(None, late_evening_utc, ZoneInfo("Europe/Berlin")) == date(2026, 3, 2)
    assert resolve_as_of("2026-01-15", late_evening_utc, ZoneInfo("UTC")) == date(2026, 1, 15)
    with pytest.raises(settings.SettingsError, match="dunning/as_of='15.01.2026'"):
        resolve_as_of("15.01.2026", late_evening_utc, ZoneInfo("UTC"))
    tick = datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("America/New_York"))
    assert as_of_for_tick(tick, ZoneInfo("America/New_York")) == date(2026, 3, 2)


@pytest.mark.parametrize(
    "value, units",
    [(Decimal("36512.5"), 365_125_000), (36512.5, 365_125_000), ("0.01", 100), (0.1, 1_000),
     (-12.3456, -123_456), (1234567890123.45, 12_345_678_901_234_500)],
)
def test_money_units_are_exact(value, units):
    assert money.to_units(value) == units


def test_money_refuses_what_it_cannot_hold_exactly():
    with pytest.raises(money.MoneyError, match="more than 4 decimal places"):
        money.to_units("0.00001")
    with pytest.raises(money.MoneyError, match="not finite"):
        money.to_units(float("nan"))
    with pytest.raises(money.MoneyError, match="row 'INV/7': amount 'abc' is not a number"):
        money.series_to_units(pd.Series(["1", "abc"], index=["INV/6", "INV/7"]))


def test_money_formatting_uses_the_currency_decimals():
    assert money.format_amount(12_345_600, "EUR") == "1,234.56 EUR"
    assert money.format_amount(-1_234_500_000, "JPY") == "-123,450 JPY"
    assert money.format_amount(12_345, "KWD") == "1.235 KWD"
    assert money.units_to_text(pd.Series([12_345_600, -5, 0])).tolist() == ["1234.5600", "-0.0005", "0.0000"]


def test_markdown_preview_shows_dates_as_dates_and_missing_values_as_empty_cells():
    from dunning_pipeline.runtime import markdown_preview

    frame = pd.DataFrame({
        "invoice_number": pd.array(["INV/1", None], dtype="string"),
        "invoice_date_due": pd.to_datetime(["2026-03-02", None]).astype("datetime64[s]"),
        "write_date": pd.to_datetime(["2026-03-02 10:11:12", None]),
        "ticket_id": pd.array([7, None], dtype="Int64"),
    })
    lines = markdown_preview(frame).value.splitlines()
    assert [c.strip() for c in lines[2].split("|")[1:-1]] == ["INV/1", "2026-03-02", "2026-03-02 10:11:12", "7"]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == ["", "", "", ""]
    assert markdown_preview(frame.iloc[:0]).value == "_no rows_"


def test_the_kpi_history_horizon_is_a_number_of_months():
    assert settings.kpi_history_months({}) == 24
    assert settings.kpi_history_months({"DUNNING_KPI_HISTORY_MONTHS": " 6 "}) == 6
    assert settings.kpi_history_months({"DUNNING_KPI_HISTORY_MONTHS": "0"}) == 0
    for bad in ("-1", "two", "1.5", "121"):
        with pytest.raises(settings.SettingsError, match=r"^DUNNING_KPI_HISTORY_MONTHS must be a whole number"):
            settings.kpi_history_months({"DUNNING_KPI_HISTORY_MONTHS": bad})

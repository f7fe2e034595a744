"""Odoo records -> typed frames: many2one pairs, false -> null, exact money, dates, errors that
name the record and the field."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pytest

from dunning_pipeline import money
from dunning_pipeline.odoo import parse
from dunning_pipeline.odoo.client import OdooDataError
from dunning_pipeline.warehouse import schema

EXTRACTED = datetime(2026, 3, 2, 23, 30)


def invoice(**overrides) -> dict:
    rec = {
        "id": 42, "name": "INV/2026/00042", "move_type": "out_invoice", "state": "posted",
        "payment_state": "partial", "partner_id": [15, "Azure Interior, Brandon Freeman"],
        "commercial_partner_id": [14, "Azure Interior"], "company_id": [1, "Nordwind Trading GmbH"],
        "currency_id": [1, "USD"], "company_currency_id": [125, "EUR"],
        "invoice_date": "2026-01-31", "invoice_date_due": "2026-03-02",
        "amount_total": Decimal("36512.50"), "amount_residual": Decimal("12000.05"),
        "amount_total_signed": Decimal("33807.87"), "amount_residual_signed": Decimal("11111.16"),
        "invoice_origin": False, "ref": "PO 4711", "invoice_payment_term_id": [4, "30 Days"],
        "write_date": "2026-03-01 17:45:09", "create_date": "2026-01-31 08:00:00",
    }
    rec.update(overrides)
    return rec


def partner(**overrides) -> dict:
    rec = {
        "id": 14, "name": "Azure Interior", "email": "ap@azure.example", "phone": False,
        "vat": "BE0477472701", "lang": "fr_BE", "country_id": [20, "Belgium"], "is_company": True,
        "parent_id": False, "commercial_partner_id": [14, "Azure Interior"], "customer_rank": 3,
        "category_id": [1, 5], "company_id": False, "active": False,
        "write_date": "2026-02-27 09:00:00",
    }
    rec.update(overrides)
    return rec


def test_invoice_columns_are_exactly_the_table_columns():
    frame = parse.parse_invoices([invoice()], extracted_at=EXTRACTED)
    assert list(frame.columns) == [c.name for c in schema.odoo_invoices.columns]
    customers = parse.parse_customers([partner()], tag_names={}, extracted_at=EXTRACTED)
    assert list(customers.columns) == [c.name for c in schema.odoo_customers.columns]


def test_requested_fields_are_the_ones_parsed_and_all_exist_in_odoo_16_to_19():
    # The fields Odoo is asked for: exactly those the columns need (a field that does not exist
    # in one version makes Odoo refuse the whole call).
    assert set(parse.INVOICE_FIELDS) == {
        "name", "move_type", "state", "payment_state", "partner_id", "commercial_partner_id",
        "company_id", "currency_id", "company_currency_id", "invoice_date", "invoice_date_due",
        "amount_total", "amount_residual", "amount_total_signed", "amount_residual_signed",
        "invoice_origin", "ref", "invoice_payment_term_id", "write_date", "create_date",
    }
    assert set(parse.PARTNER_FIELDS) == {
        "name", "email", "phone", "vat", "lang", "country_id", "is_company", "parent_id",
        "commercial_partner_id", "customer_rank", "category_id", "company_id", "active", "write_date",
    }


def test_invoice_many2one_dates_money_and_false():
    row = parse.parse_invoices([invoice()], extracted_at=EXTRACTED).iloc[0]
    assert row["id"] == 42
    assert row["partner_id"] == 15 and row["partner_name"] == "Azure Interior, Brandon Freeman"
    assert row["commercial_partner_id"] == 14
    assert row["company_id"] == 1 and row["company_name"] == "Nordwind Trading GmbH"
    assert row["currency"] == "USD" and row["company_currency"] == "EUR"
    assert row["payment_term"] == "30 Days"
    assert row["invoice_date"] == pd.Timestamp("2026-01-31")
    assert row["invoice_date_due"] == pd.Timestamp("2026-03-02")
    assert row["write_date"] == pd.Timestamp("2026-03-01 17:45:09")
    assert row["amount_total"] == 365_125_000
    assert row["amount_residual"] == 120_000_500
    assert row["amount_residual_signed"] == 111_111_600
    assert row["invoice_origin"] is None  # Odoo's false
    assert row["ref"] == "PO 4711"
    assert row["extracted_at"] == pd.Timestamp(EXTRACTED)


def test_dtypes_are_the_warehouse_conventions():
    frame = parse.parse_invoices([invoice(), invoice(id=43, invoice_date_due=False,
                                                     partner_id=False)], extracted_at=EXTRACTED)
    assert str(frame["id"].dtype) == "int64"
    assert str(frame["partner_id"].dtype) == "Int64"
    assert pd.isna(frame.loc[1, "partner_id"]) and frame.loc[1, "partner_name"] is None
    assert pd.isna(frame.loc[1, "invoice_date_due"])
    for col in parse.MONEY_COLUMNS:
        assert str(frame[col].dtype) == "int64", col
    assert str(frame["invoice_date"].dtype) == "datetime64[s]"
    assert str(frame["write_date"].dtype) == "datetime64[us]"
    assert str(frame["extracted_at"].dtype) == "datetime64[us]"


def test_money_from_json_is_exact_to_the_last_digit():
    # Parsed the way the client parses: json with parse_float=Decimal.
    records = json.loads(
        '[{"a": 0.1}, {"a": 0.2}, {"a": 1234567890.12}, {"a": 0.07}, {"a": 70000}]',
        parse_float=Decimal,
    )
    recs = [invoice(id=i + 1, amount_total=r["a"]) for i, r in enumerate(records)]
    frame = parse.parse_invoices(recs, extracted_at=EXTRACTED)
    assert frame["amount_total"].tolist() == [1_000, 2_000, 12_345_678_901_200, 700, 700_000_000]
    assert money.to_decimal(frame["amount_total"].sum()) == Decimal("1234637890.49")


def test_a_money_false_is_null_not_zero():
    frame = parse.parse_invoices([invoice(amount_residual=False)], extracted_at=EXTRACTED)
    assert str(frame["amount_residual"].dtype) == "Int64"
    assert pd.isna(frame.loc[0, "amount_residual"])


def test_amount_with_more_than_four_decimals_names_record_and_field():
    frame = parse.parse_invoices([invoice(), invoice(id=77, name="INV/77", amount_total=Decimal("1.000001"))],
                                 extracted_at=EXTRACTED)
    text = frame.loc[1, "parse_error"]
    assert "account.move 77 (INV/77)" in text and "amount_total" in text and "1.000001" in text
    assert pd.isna(frame.loc[1, "amount_total"]) and frame.loc[0, "amount_total"] == 365_125_000
    assert frame.loc[0, "parse_error"] is None


@pytest.mark.parametrize(
    ("field", "value", "column", "expected"),
    [
        ("invoice_date_due", "2026-02-30", "invoice_date_due", "'2026-02-30' is not a date"),
        ("invoice_date_due", "soon", "invoice_date_due", "'soon' is not a date"),
        ("invoice_date", 20260101, "invoice_date", "expected a date string"),
        ("write_date", "2026-03-01T17:45:09Z", "write_date", "is not a datetime"),
        ("partner_id", [15], "partner_id", "expected [id, name] or false"),
        ("partner_id", 15, "partner_name", "expected [id, name] or false"),
        ("partner_id", [2**70, "Azure"], "partner_id", "expected [id, name] or false"),
        ("currency_id", [3, "Euro"], "currency", "'Euro' does not start with an ISO 4217 code"),
        ("amount_total", "abc", "amount_total", "is not a number"),
        ("amount_total", True, "amount_total", "expected an amount"),
        ("amount_total", float("inf"), "amount_total", "is not finite"),
        ("amount_residual", float("nan"), "amount_residual", "is not finite"),
        ("amount_total", Decimal("1E15"), "amount_total", "beyond what the warehouse holds"),
        ("amount_total_signed", -10**15, "amount_total_signed", "beyond what the warehouse holds"),
        ("ref", 12, "ref", "expected text or false"),
    ],
)
def test_a_bad_value_is_null_and_its_record_names_the_field(field, value, column, expected):
    frame = parse.parse_invoices([invoice(), invoice(id=99, name="INV/99", **{field: value})],
                                 extracted_at=EXTRACTED)
    text = frame.loc[1, "parse_error"]
    assert text.startswith("account.move 99 (INV/99): field " + field), text
    assert expected in text
    assert pd.isna(frame.loc[1, column]) and not pd.isna(frame.loc[0, column])
    assert frame.loc[0, "parse_error"] is None


def test_the_largest_amount_the_warehouse_holds_is_kept():
    frame = parse.parse_invoices([invoice(amount_total=Decimal("922337203685477.5807"))], extracted_at=EXTRACTED)
    assert frame.loc[0, "amount_total"] == 2**63 - 1 and frame.loc[0, "parse_error"] is None


def test_several_bad_fields_of_one_record_are_all_named():
    frame = parse.parse_invoices([invoice(id=4, invoice_date="x", amount_residual="y")], extracted_at=EXTRACTED)
    assert frame.loc[0, "parse_error"].count("account.move 4") == 2
    assert "field invoice_date:" in frame.loc[0, "parse_error"] and "field amount_residual:" in frame.loc[0, "parse_error"]


@pytest.mark.parametrize(("value", "stored", "problem"), [
    ("Azure \ud800Interior", "Azure \ufffdInterior", "a lone surrogate"),
    ("Azure\x00 Interior", "Azure\ufffd Interior", "a NUL character"),
    ("Azure \ufffd Interior", "Azure \ufffd Interior", "U+FFFD"),
])
def test_text_a_database_cannot_store_is_replaced_and_named(value, stored, problem):
    frame = parse.parse_invoices([invoice(), invoice(id=8, partner_id=[14, value], ref=value)], extracted_at=EXTRACTED)
    assert frame.loc[1, "partner_name"] == stored and frame.loc[1, "ref"] == stored
    text = frame.loc[1, "parse_error"]
    assert "field partner_id:" in text and "field ref:" in text and problem in text
    assert frame.loc[0, "parse_error"] is None


def test_a_required_field_still_fails_the_page():
    with pytest.raises(OdooDataError) as err:
        parse.parse_invoices([invoice(), invoice(id=99, name="INV/99", state=False)], extracted_at=EXTRACTED)
    assert str(err.value).startswith("account.move 99 (INV/99): field state: is required")


def test_a_missing_field_is_named():
    rec = invoice(id=5)
    del rec["invoice_payment_term_id"]
    with pytest.raises(OdooDataError, match=r"account.move 5: field invoice_payment_term_id is missing"):
        parse.parse_invoices([invoice(), rec], extracted_at=EXTRACTED)


def test_a_record_without_id_is_reported():
    rec = invoice()
    del rec["id"]
    with pytest.raises(OdooDataError, match="record #2 of the page has no integer id"):
        parse.parse_invoices([invoice(), rec], extracted_at=EXTRACTED)


def test_customers_tags_booleans_and_nulls():
    tags = parse.parse_tag_names([{"id": 1, "name": "Key Account"}, {"id": 5, "name": "Legacy"}])
    frame = parse.parse_customers(
        [partner(), partner(id=15, name="Brandon Freeman", is_company=False, parent_id=[14, "Azure Interior"],
                            category_id=[7], lang=False, country_id=False, active=True, customer_rank=0)],
        tag_names=tags, extracted_at=EXTRACTED,
    )
    company, contact = frame.iloc[0], frame.iloc[1]
    assert json.loads(company["tags"]) == ["Key Account", "Legacy"]
    assert json.loads(contact["tags"]) == ["#7"]  # a tag the user may not read is kept, not dropped
    assert company["country"] == "Belgium" and contact["country"] is None
    assert company["phone"] is None and contact["lang"] is None
    # A boolean's false is a value, not "empty".
    assert not pd.isna(company["active"]) and not bool(company["active"])
    assert bool(contact["active"])
    assert bool(company["is_company"]) and not bool(contact["is_company"])
    assert pd.isna(company["parent_id"]) and contact["parent_id"] == 14
    assert contact["commercial_partner_id"] == 14
    assert contact["customer_rank"] == 0 and company["customer_rank"] == 3
    assert pd.isna(company["company_id"])
    assert str(frame["is_company"].dtype) == "boolean"


def test_customer_bad_tag_list_is_named():
    frame = parse.parse_customers([partner(category_id=[[1, "Key Account"]])], tag_names={}, extracted_at=EXTRACTED)
    assert frame.loc[0, "parse_error"].startswith("res.partner 14 (Azure Interior): field category_id")
    assert frame.loc[0, "tags"] is None


def test_currency_code_from_display_name():
    assert parse.currency_code("EUR") == "EUR"
    assert parse.currency_code(" JPY ") == "JPY"
    assert parse.currency_code("CHF (Swiss Franc)") == "CHF"
    assert parse.currency_code("Euro") is None
    assert parse.currency_code("EURO") is None


def test_empty_pages_give_typed_empty_frames():
    frame = parse.parse_invoices([], extracted_at=EXTRACTED)
    assert frame.empty
    assert list(frame.columns) == [c.name for c in schema.odoo_invoices.columns]
    assert str(frame["amount_total"].dtype) == "int64"
    assert str(parse.empty_customers()["write_date"].dtype) == "datetime64[us]"


def test_timezone_aware_extracted_at_is_stored_as_naive_utc():
    from datetime import timedelta, timezone

    aware = datetime(2026, 3, 3, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    frame = parse.parse_invoices([invoice()], extracted_at=aware)
    assert frame.loc[0, "extracted_at"] == pd.Timestamp("2026-03-02 23:30")

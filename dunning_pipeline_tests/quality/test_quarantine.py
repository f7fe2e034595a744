"""The quarantine table on SQLite and PostgreSQL: per-asset replacement, scoping between the two
check ops of an asset, and the ids the dunning engine leaves out."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from dunning_pipeline.quality.quarantine import quarantined_ids, read_quarantine, replace_quarantine

NOW = datetime(2026, 3, 3, 1, 30, tzinfo=UTC)


def rows(*records) -> pd.DataFrame:
    return pd.DataFrame(records, columns=["record_id", "check_name", "field", "value", "reason"])


def put(wh, asset, frame, **scope):
    return replace_quarantine(wh, asset, frame, run_id="run-1", as_of=date(2026, 3, 2), quarantined_at=NOW, **scope)


def test_a_run_replaces_only_its_assets_rows(warehouse):
    put(warehouse, "odoo_invoices", rows((7, "amounts_consistent", "amount_residual", "12.0000", "too much"),
                                         (9, "currency_codes", "currency", "XYZ", "not ISO")))
    put(warehouse, "odoo_customers", rows((3, "emails_well_formed", "email", "a(at)b.de", "no @")))
    assert quarantined_ids(warehouse, "odoo_invoices") == {7, 9}

    put(warehouse, "odoo_invoices", rows((9, "currency_codes", "currency", "XYZ", "not ISO")))
    assert quarantined_ids(warehouse, "odoo_invoices") == {9}  # 7 was fixed: it returns
    assert quarantined_ids(warehouse, "odoo_customers") == {3}
    stored = read_quarantine(warehouse, "odoo_invoices").iloc[0]
    assert (stored["field"], stored["value"], stored["reason"], stored["run_id"]) == ("currency", "XYZ", "not ISO", "run-1")
    assert stored["quarantined_at"] == pd.Timestamp("2026-03-03 01:30:00")
    assert stored["as_of_date"] == pd.Timestamp("2026-03-02")

    put(warehouse, "odoo_invoices", rows())
    assert quarantined_ids(warehouse, "odoo_invoices") == set()


def test_the_two_check_ops_of_an_asset_replace_their_own_rows(warehouse):
    refs = ["partner_references"]
    put(warehouse, "odoo_invoices", rows((5, "partner_references", "partner_id", "999", "unknown")), checks=refs)
    put(warehouse, "odoo_invoices", rows((6, "dates_plausible", "invoice_date", "0026-01-01", "decades")),
        other_than=refs)
    assert quarantined_ids(warehouse, "odoo_invoices") == {5, 6}
    put(warehouse, "odoo_invoices", rows(), other_than=refs)
    assert quarantined_ids(warehouse, "odoo_invoices") == {5}
    put(warehouse, "odoo_invoices", rows(), checks=refs)
    assert quarantined_ids(warehouse, "odoo_invoices") == set()


def test_rows_of_another_ops_checks_are_refused(warehouse):
    with pytest.raises(ValueError, match="partner_references"):
        put(warehouse, "odoo_invoices", rows((5, "partner_references", "partner_id", "9", "unknown")),
            other_than=["partner_references"])
    with pytest.raises(ValueError, match="dates_plausible"):
        put(warehouse, "odoo_invoices", rows((5, "dates_plausible", "invoice_date", "x", "decades")),
            checks=["partner_references"])


def test_a_missing_value_is_stored_as_null(warehouse):
    put(warehouse, "odoo_invoices", rows((8, "posted_fields_present", "invoice_date_due", None, "no due date")))
    assert read_quarantine(warehouse)["value"].isna().all()

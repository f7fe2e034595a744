"""Receivables from raw Odoo moves (pure, no warehouse): which moves are open receivables, their
signs, their customer (the commercial partner), their segment, and what is left out and why."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.dunning.receivables import (
    EXCLUSION_COLUMNS,
    RECEIVABLE_COLUMNS,
    build_receivables,
    commercial_partner_map,
    quarantined_ids,
    tag_lists,
)
from dunning_pipeline.money import to_units

from . import dataset as D

POLICY = load_policy()
AS_OF = date(2026, 3, 2)


def _invoices(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def _by_id(frame: pd.DataFrame, column: str) -> dict:
    return dict(zip(frame["invoice_id"], frame[column], strict=True))


def test_only_posted_open_customer_invoices_and_credit_notes_are_receivables():
    invoices = _invoices(
        D._inv(1, "INV/1", 10, "2026-02-01", "10.00"),
        D._inv(2, "INV/2", 10, "2026-02-01", "10.00", payment_state="partial"),
        D._inv(3, "INV/3", 10, "2026-02-01", "10.00", payment_state="blocked"),
        D._inv(4, "INV/4", 10, "2026-02-01", "10.00", payment_state="in_payment"),
        D._inv(5, "INV/5", 10, "2026-02-01", "10.00", payment_state="paid"),
        D._inv(6, "INV/6", 10, "2026-02-01", "10.00", payment_state="reversed"),
        D._inv(7, "INV/7", 10, "2026-02-01", "10.00", state="draft"),
        D._inv(8, "INV/8", 10, "2026-02-01", "10.00", state="cancel"),
        D._inv(9, "BILL/9", 10, "2026-02-01", "10.00", move_type="in_invoice"),  # a vendor bill
        D._inv(11, "MISC/11", 10, "2026-02-01", "10.00", move_type="entry"),
        D._inv(12, "RINV/12", 10, "2026-02-01", "10.00", move_type="out_refund"),
    )
    recv, excluded = build_receivables(invoices, D.customers(), POLICY, AS_OF)
    assert _by_id(recv, "receivable_status") == {1: "open", 2: "open", 3: "open", 4: "in_payment", 12: "open"}
    assert list(recv.columns) == RECEIVABLE_COLUMNS and excluded.empty
    assert list(excluded.columns) == EXCLUSION_COLUMNS


def test_residuals_within_the_tolerance_are_settled_but_in_payment_is_kept():
    invoices = _invoices(
        D._inv(1, "INV/1", 10, "2026-02-01", "0.01", total="20.00", payment_state="partial"),
        D._inv(2, "INV/2", 10, "2026-02-01", "0.02", total="20.00", payment_state="partial"),
        D._inv(3, "INV/3", 10, "2026-02-01", "1", currency="JPY", residual_company="0.0061"),  # 1 yen: settled
        D._inv(4, "INV/4", 10, "2026-02-01", "2", currency="JPY", residual_company="0.0122"),
        D._inv(5, "INV/5", 10, "2026-02-01", "0.00", payment_state="in_payment"),  # paid, not yet reconciled
        D._inv(6, "RINV/6", 10, "2026-02-01", "0.01", move_type="out_refund"),
        D._inv(7, "RINV/7", 10, "2026-02-01", "0.02", move_type="out_refund"),
    )
    recv, _ = build_receivables(invoices, D.customers(), POLICY, AS_OF)
    assert sorted(recv["invoice_id"]) == [2, 4, 5, 7]


def test_credit_notes_are_negative_whichever_sign_odoo_stores():
    plain = D._inv(1, "RINV/1", 10, "2026-02-01", "40.00", total="50.00", move_type="out_refund")
    unsigned = {**D._inv(2, "RINV/2", 10, "2026-02-01", "40.00", total="50.00", move_type="out_refund"),
                "amount_residual_signed": to_units("36.00"), "amount_total_signed": to_units("45.00")}
    negative_invoice = {**D._inv(3, "INV/3", 10, "2026-02-01", "40.00", total="50.00"),
                        "amount_residual": -to_units("40.00"), "amount_total_signed": -to_units("50.00")}
    recv, _ = build_receivables(_invoices(plain, unsigned, negative_invoice), D.customers(), POLICY, AS_OF)
    u = to_units
    assert _by_id(recv, "amount_residual") == {1: -u("40.00"), 2: -u("40.00"), 3: u("40.00")}
    assert _by_id(recv, "amount_residual_company") == {1: -u("40.00"), 2: -u("36.00"), 3: u("40.00")}
    assert _by_id(recv, "amount_total") == {1: -u("50.00"), 2: -u("50.00"), 3: u("50.00")}
    assert _by_id(recv, "amount_total_company") == {1: -u("50.00"), 2: -u("45.00"), 3: u("50.00")}
    assert recv["amount_residual"].dtype == "int64" and recv["amount_total"].dtype == "Int64"


def test_the_customer_is_the_commercial_partner():
    without_cp = {**D._inv(2, "INV/2", 11, "2026-02-01", "10.00"), "commercial_partner_id": None}  # Anna, Acme's
    unknown = {**D._inv(3, "INV/3", 77, "2026-02-01", "10.00"), "commercial_partner_id": None, "partner_name": "Omega"}
    unknown_contact = {**D._inv(4, "INV/4", 78, "2026-02-01", "10.00", partner=79), "partner_name": "Olga of Omicron"}
    invoices = _invoices(D._inv(1, "INV/1", 10, "2026-02-01", "10.00", partner=11), without_cp, unknown,
                         unknown_contact)
    recv, _ = build_receivables(invoices, D.customers(), POLICY, AS_OF)
    assert _by_id(recv, "customer_id") == {1: 10, 2: 10, 3: 77, 4: 78}
    assert _by_id(recv, "partner_id") == {1: 11, 2: 11, 3: 77, 4: 79}
    assert recv["customer_id"].dtype == "int64"
    # a customer odoo_customers does not know keeps the name on its invoice, not a contact's
    names = _by_id(recv, "customer_name")
    assert names[1] == names[2] == "Acme GmbH" and names[3] == "Omega" and pd.isna(names[4])
    acme = recv.set_index("invoice_id").loc[1]
    assert (acme["customer_email"], acme["customer_lang"], acme["customer_country"]) == (
        "ap@acme.example", "en_US", "Germany")
    assert acme["customer_tags"] == '["Wholesale"]' and pd.isna(acme["customer_vat"])


def test_commercial_partner_map_maps_a_company_to_itself():
    customers = D.customers()
    customers.loc[customers["id"] == 30, "commercial_partner_id"] = None
    cp = commercial_partner_map(customers)
    assert cp.loc[11] == 10 and cp.loc[30] == 30 and cp.loc[10] == 10 and cp.dtype == "int64"


@pytest.mark.parametrize("customers", [D.customers().iloc[0:0], pd.DataFrame()], ids=["no rows", "no columns"])
def test_without_customers_the_invoice_tells_the_customer(customers):
    invoices = _invoices(D._inv(1, "INV/1", 10, "2026-02-01", "10.00"), D._inv(2, "INV/2", 20, "2026-02-01", "5.00"))
    recv, _ = build_receivables(invoices, customers, POLICY, AS_OF)
    assert _by_id(recv, "customer_name") == {1: "Partner 10", 2: "Partner 20"}
    assert recv["customer_email"].isna().all() and recv["customer_tags"].isna().all()
    assert (recv["segment"] == "default").all() and (recv["policy"] == "default").all()


def test_segments_follow_the_customers_tags():
    customers = D.customers()
    customers.loc[customers["id"] == 30, "tags"] = "VIP"  # a bare tag, not a JSON list
    invoices = _invoices(D._inv(1, "INV/1", 10, "2026-02-01", "10.00"), D._inv(2, "INV/2", 20, "2026-02-01", "5.00"),
                         D._inv(3, "INV/3", 30, "2026-02-01", "5.00"), D._inv(4, "INV/4", 20, "2026-02-10", "5.00"))
    recv, _ = build_receivables(invoices, customers, POLICY, AS_OF)
    assert _by_id(recv, "segment") == {1: "default", 2: "key_accounts", 3: "key_accounts", 4: "key_accounts"}
    assert _by_id(recv, "policy") == {1: "default", 2: "key_accounts", 3: "key_accounts", 4: "key_accounts"}


def test_receivables_are_ordered_by_invoice_and_dated_as_of_the_night():
    invoices = _invoices(D._inv(5, "INV/5", 10, "2026-02-01", "10.00"), D._inv(2, "INV/2", 20, "2026-02-01", "5.00"),
                         D._inv(3, "INV/3", 30, "2026-02-01", "5.00"))
    recv, _ = build_receivables(invoices, D.customers(), POLICY, AS_OF)
    assert recv["invoice_id"].tolist() == [2, 3, 5] and list(recv.index) == [0, 1, 2]
    assert (recv["as_of_date"] == pd.Timestamp(AS_OF)).all()
    assert recv["invoice_number"].tolist() == ["INV/2", "INV/3", "INV/5"]
    assert recv.loc[0, "invoice_date_due"] == pd.Timestamp("2026-02-01")
    assert recv.loc[0, "invoice_date"] == pd.Timestamp("2026-01-02")
    assert recv.loc[0, "write_date"] == pd.Timestamp("2026-02-01 08:00:00")
    assert (recv.loc[0, "company_id"], recv.loc[0, "company_name"]) == (1, "Dunning Demo SE")
    assert (recv.loc[0, "currency"], recv.loc[0, "company_currency"]) == ("EUR", "EUR")
    assert (recv.loc[0, "move_type"], recv.loc[0, "state"], recv.loc[0, "payment_state"]) == (
        "out_invoice", "posted", "not_paid")


def test_records_left_out_are_listed_with_the_reason():
    no_partner = {**D._inv(4, "INV/4", 10, "2026-02-01", "10.00"), "commercial_partner_id": None, "partner_id": None}
    no_amount = {**D._inv(5, "INV/5", 10, "2026-02-01", "10.00"), "amount_residual": None}
    no_signed = {**D._inv(6, "INV/6", 10, "2026-02-01", "10.00"), "amount_residual_signed": None}
    invoices = _invoices(
        D._inv(1, "INV/1", 10, "2026-02-01", "10.00"),
        D._inv(2, "INV/2", 10, "2026-02-01", "10.00"),                 # quarantined invoice
        D._inv(3, "INV/3", 60, "2026-02-01", "10.00"),                 # quarantined customer
        D._inv(7, "INV/7", 10, "2026-02-01", "10.00", partner=61),     # quarantined contact
        no_partner, no_amount, no_signed,
    )
    quarantine = pd.DataFrame([
        {"asset": "odoo_invoices", "record_id": "2"}, {"asset": "odoo_customers", "record_id": 60},
        {"asset": "odoo_customers", "record_id": 61}, {"asset": "odoo_invoices", "record_id": 30},
        {"asset": "odoo_receivable_lines", "record_id": 1},
    ])
    recv, excluded = build_receivables(invoices, D.customers(), POLICY, AS_OF, quarantine)
    assert recv["invoice_id"].tolist() == [1]
    assert excluded.astype(object).where(excluded.notna(), None).to_dict("records") == [
        {"invoice_id": 2, "invoice_number": "INV/2", "customer_id": 10, "reason": "quarantined",
         "detail": "invoice held back by a data-quality check"},
        {"invoice_id": 3, "invoice_number": "INV/3", "customer_id": 60, "reason": "quarantined",
         "detail": "customer held back by a data-quality check"},
        {"invoice_id": 7, "invoice_number": "INV/7", "customer_id": 10, "reason": "quarantined",
         "detail": "customer held back by a data-quality check"},
        {"invoice_id": 4, "invoice_number": "INV/4", "customer_id": None, "reason": "no_customer",
         "detail": "the invoice has no partner"},
        {"invoice_id": 5, "invoice_number": "INV/5", "customer_id": 10, "reason": "no_amount",
         "detail": "amount_residual or amount_residual_signed is empty"},
        {"invoice_id": 6, "invoice_number": "INV/6", "customer_id": 10, "reason": "no_amount",
         "detail": "amount_residual or amount_residual_signed is empty"},
    ]
    assert list(excluded.index) == list(range(6))


def test_quarantined_ids_are_the_ids_of_one_asset():
    quarantine = pd.DataFrame([{"asset": "odoo_invoices", "record_id": "7"}, {"asset": "odoo_invoices", "record_id": 9},
                               {"asset": "odoo_customers", "record_id": 3}])
    assert quarantined_ids(quarantine, "odoo_invoices") == {7, 9}
    assert quarantined_ids(quarantine, "odoo_customers") == {3}
    assert quarantined_ids(quarantine, "zendesk_tickets") == set()
    assert quarantined_ids(None, "odoo_invoices") == set()
    assert quarantined_ids(quarantine.iloc[0:0], "odoo_invoices") == set()


def test_tag_lists_read_json_lists_bare_names_and_nothing():
    tags = pd.Series(['["Key Account", "VIP"]', "VIP", '"Gold"', "[1, 2]", "7", None, "[]", "{oops"])
    assert tag_lists(tags).tolist() == [["Key Account", "VIP"], ["VIP"], ["Gold"], ["1", "2"], ["7"], [], [], ["{oops"]]


def test_missing_fields_keep_exact_amounts_and_nullable_ids():
    # a raw extract with an empty field reads as float64 (NaN); amounts stay exact integers of
    # 1/10,000 units, ids nullable integers
    no_total = {**D._inv(1, "INV/1", 10, "2026-02-01", "10.00"), "amount_total": None, "amount_total_signed": None}
    no_partner = {**D._inv(2, "RINV/2", 10, "2026-02-01", "25.00", move_type="out_refund"), "partner_id": None}
    no_company = {**D._inv(3, "INV/3", 20, "2026-02-01", "30.00"), "company_id": None}
    no_amount = {**D._inv(4, "INV/4", 10, "2026-02-01", "10.00"), "amount_residual_signed": None}
    invoices = _invoices(no_total, no_partner, no_company, no_amount)
    assert invoices["amount_residual_signed"].dtype == "float64" and invoices["partner_id"].dtype == "float64"
    recv, _ = build_receivables(invoices, D.customers(), POLICY, AS_OF)
    assert recv["invoice_id"].tolist() == [1, 2, 3]
    assert {c: str(recv[c].dtype) for c in ("amount_residual", "amount_residual_company", "amount_total",
                                            "amount_total_company", "partner_id", "customer_id", "company_id")} == {
        "amount_residual": "int64", "amount_residual_company": "int64", "amount_total": "Int64",
        "amount_total_company": "Int64", "partner_id": "Int64", "customer_id": "int64", "company_id": "Int64"}
    assert _by_id(recv, "amount_residual_company") == {1: to_units("10.00"), 2: -to_units("25.00"), 3: to_units("30.00")}
    assert recv["amount_total_company"].isna().tolist() == [True, False, False]
    assert recv["amount_total_company"][1] == -to_units("25.00")
    assert pd.isna(recv.loc[1, "partner_id"]) and recv.loc[1, "customer_id"] == 10
    assert recv.loc[1, "customer_name"] == "Acme GmbH"
    assert pd.isna(recv.loc[2, "company_id"]) and recv.loc[2, "segment"] == "key_accounts"


def test_every_customer_attribute_is_copied():
    customers = D.customers()
    customers.loc[customers["id"] == 10, ["phone", "vat", "lang", "country"]] = ["+49 30 1234", "DE123456789",
                                                                                 "de_DE", "Austria"]
    recv, _ = build_receivables(_invoices(D._inv(1, "INV/1", 10, "2026-02-01", "10.00")), customers, POLICY, AS_OF)
    row = recv.iloc[0]
    assert (row["customer_name"], row["customer_email"], row["customer_phone"], row["customer_vat"],
            row["customer_lang"], row["customer_country"], row["customer_tags"]) == (
        "Acme GmbH", "ap@acme.example", "+49 30 1234", "DE123456789", "de_DE", "Austria", '["Wholesale"]')

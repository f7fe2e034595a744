"""The AR aging report on a small aging table built by hand: buckets, customer lines, instalments,
reconciliation."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dunning_pipeline.reporting import report

AS_OF = date(2026, 3, 2)
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
U = 10_000


def _aging(*rows) -> pd.DataFrame:
    cols = ["invoice_id", "move_type", "customer_id", "company_id", "currency", "amount_residual",
            "amount_residual_company", "invoice_date_due", "days_overdue", "aging_bucket", "stage", "stage_rank",
            "dunning_status", "hold_reason"]
    frame = pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])
    frame["customer_name"] = "Customer " + frame["customer_id"].astype(str)
    frame["company_currency"] = frame["company_id"].map({1: "EUR", 2: "USD"})
    frame["invoice_date_due"] = pd.to_datetime(frame["invoice_date_due"])
    frame["stage_rank"] = frame["stage_rank"].astype("Int64")
    frame["as_of_date"] = pd.Timestamp(AS_OF)
    return frame


AGING = _aging(
    # customer 10 in company 1: EUR and USD invoices, a credit note, one invoice disputed
    (1, "out_invoice", 10, 1, "EUR", 100 * U, 100 * U, "2026-03-10", -8, "current", None, None, "not_in_dunning", None),
    (2, "out_invoice", 10, 1, "USD", 200 * U, 180 * U, "2026-02-20", 10, "1-30", "reminder_2", 1, "dunned", None),
    (3, "out_invoice", 10, 1, "EUR", 50 * U, 50 * U, "2026-01-01", 60, "31-60", "final_notice", 3, "on_hold", "dispute"),
    (4, "out_refund", 10, 1, "EUR", -30 * U, -30 * U, "2026-02-25", 5, "1-30", None, None, "credit_note", None),
    # the same customer in company 2 (USD): its own line
    (5, "out_invoice", 10, 2, "USD", 70 * U, 70 * U, "2025-11-01", 121, "90+", "collection", 4, "on_hold", "promise"),
    # customer 20, company 1
    (6, "out_invoice", 20, 1, "EUR", 10 * U, 10 * U, "2026-02-01", 29, "1-30", "call", 2, "dunned", None),
)


def _summary(instalments=None, promises=None, contacts=None):
    items = report.aged_items(AGING, instalments)
    return report.build_summary(AGING, items, AS_OF, contacts=contacts, promises=promises).set_index(
        ["company_id", "customer_id"]), report.build_buckets(items, BUCKETS, AS_OF)


def test_customer_lines_per_company_in_company_currency():
    summary, _ = _summary()
    c = summary.loc[(1, 10)]
    assert c["total_company"] == (100 + 180 + 50 - 30) * U
    assert c["current_company"] == 100 * U
    assert c["overdue_company"] == (180 + 50) * U  # the credit note is not overdue money
    assert c["open_credit_company"] == -30 * U
    assert c["oldest_due_date"] == pd.Timestamp("2026-01-01")
    assert c["highest_stage"] == "final_notice"  # frozen by the dispute, still the highest
    assert (c["dunning_status"], c["invoices_on_hold"], c["on_hold_company"], c["hold_reasons"]) == (
        "partly_on_hold", 1, 50 * U, "dispute")
    assert c["currencies"] == "EUR, USD" and c["open_items"] == 4
    assert summary.loc[(2, 10), ["dunning_status", "highest_stage", "total_company"]].tolist() == [
        "on_hold", "collection", 70 * U]
    assert summary.loc[(1, 20), "hold_reasons"] is None or pd.isna(summary.loc[(1, 20), "hold_reasons"])


def test_buckets_in_company_currency_and_per_invoice_currency():
    _, buckets = _summary()
    b = buckets.set_index(["company_id", "customer_id", "basis", "currency", "aging_bucket"])["amount"]
    assert b[(1, 10, "company", "EUR", "1-30")] == (180 - 30) * U
    assert b[(1, 10, "invoice", "USD", "1-30")] == 200 * U
    assert b[(1, 10, "invoice", "EUR", "1-30")] == -30 * U
    assert b[(2, 10, "company", "USD", "90+")] == 70 * U


def test_instalments_spread_an_invoice_over_their_buckets():
    # Invoice 2 (200 USD, 180 EUR) in two instalments: one 10 days overdue, one not yet due.
    inst = pd.DataFrame({"invoice_id": [2, 2], "date_maturity": pd.to_datetime(["2026-02-20", "2026-03-20"]),
                         "days_overdue": [10, -18], "aging_bucket": ["1-30", "current"],
                         "amount_residual": [120 * U, 80 * U], "amount_residual_company": [108 * U, 72 * U]})
    summary, buckets = _summary(instalments=inst)
    b = buckets.set_index(["company_id", "customer_id", "basis", "currency", "aging_bucket"])["amount"]
    assert b[(1, 10, "invoice", "USD", "1-30")] == 120 * U and b[(1, 10, "invoice", "USD", "current")] == 80 * U
    assert summary.loc[(1, 10), "current_company"] == (100 + 72) * U
    assert report.reconcile(summary.reset_index(), buckets, AGING).passed


def test_promises_and_contacts():
    promises = pd.DataFrame({"customer_id": pd.array([20, pd.NA, 20], dtype="Int64"),
                             "invoice_id": pd.array([pd.NA, 5, pd.NA], dtype="Int64"),
                             "reason": ["promise", "promise", "promise"],
                             "until": pd.to_datetime(["2026-03-09", "2026-03-15", "2026-02-01"])})
    contacts = pd.DataFrame({"customer_id": [10], "last_inbound_at": pd.to_datetime(["2026-02-27 10:00"]),
                             "last_outbound_at": pd.to_datetime(["2026-02-28 09:00"])})
    summary, _ = _summary(promises=promises, contacts=contacts)
    assert summary.loc[(1, 20), "promised_date"] == pd.Timestamp("2026-03-09")  # the lapsed one is ignored
    assert summary.loc[(2, 10), "promised_date"] == pd.Timestamp("2026-03-15")  # via its invoice
    assert pd.isna(summary.loc[(1, 10), "promised_date"])
    assert summary.loc[(1, 10), "last_inbound_at"] == pd.Timestamp("2026-02-27 10:00")
    assert summary.loc[(2, 10), "last_outbound_at"] == pd.Timestamp("2026-02-28 09:00")


def test_reconciliation_finds_a_missing_cent():
    summary, buckets = _summary()
    assert report.reconcile(summary.reset_index(), buckets, AGING).passed
    short = buckets.copy()
    short.loc[0, "amount"] -= 100  # one cent
    result = report.reconcile(summary.reset_index(), short, AGING)
    assert not result.passed
    bad = result.table[result.table["difference"] != 0]
    assert bad["difference"].tolist() == [-100]

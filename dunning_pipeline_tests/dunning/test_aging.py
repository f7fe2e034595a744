"""The aging table's report helpers and the corners of `build_aging` the engine's dataset does
not reach, on small hand-made frames (pure, no warehouse)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd

from dunning_pipeline.dunning import aging as aging_mod
from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.dunning.receivables import EXCLUSION_COLUMNS, build_receivables
from dunning_pipeline.money import to_units

from . import dataset as D
from .test_instalments import _line

POLICY = load_policy()
UTC = ZoneInfo("UTC")
BUCKETS = ("current", "1-30", "31-60")


def test_bucket_totals_of_no_receivables_has_the_report_columns():
    empty = pd.DataFrame(columns=["currency", "aging_bucket", "amount_residual"])
    assert list(aging_mod.bucket_totals(empty, BUCKETS).columns) == ["currency", *BUCKETS, "total"]
    assert aging_mod.bucket_totals_markdown(aging_mod.bucket_totals(empty, BUCKETS), pd.Series(dtype="int64")) == (
        "_no open receivables_")


def test_bucket_totals_stay_exact_int64_units():
    aging = pd.DataFrame({"currency": ["EUR", "EUR", "JPY"], "aging_bucket": ["current", "31-60", "1-30"],
                          "amount_residual": [2**62, 5, 700]})
    totals = aging_mod.bucket_totals(aging, BUCKETS)
    assert (totals[[*BUCKETS, "total"]].dtypes == "int64").all()
    assert totals.set_index("currency").loc["EUR", "total"] == 2**62 + 5  # no float rounding


def test_bucket_totals_markdown_is_the_whole_table_in_each_currencys_decimals():
    totals = pd.DataFrame({"currency": ["EUR", "JPY"], "current": [1234500, 0], "1-30": [0, 70000],
                           "31-60": [100, 0], "total": [1234600, 70000]})
    # JPY has no decimals (7 yen is 70000 units); a currency missing from the open totals has 0 open
    md = aging_mod.bucket_totals_markdown(totals, pd.Series({"EUR": 1234600}))
    assert md == "\n".join([
        "| Currency | current | 1-30 | 31-60 | Total | Open residual | Reconciles |",
        "|---|---:|---:|---:|---:|---:|---|",
        "| EUR | 123.45 | 0.00 | 0.01 | 123.46 | 123.46 | yes |",
        "| JPY | 0 | 7 | 0 | 7 | 0 | **NO** |",
    ])
    nothing_open = totals.assign(**{"1-30": 0, "total": [1234600, 0]})
    assert aging_mod.bucket_totals_markdown(nothing_open, pd.Series({"EUR": 1234600})).endswith(
        "| JPY | 0 | 0 | 0 | 0 | 0 | yes |")


def _receivables(ids: list[int], undated: tuple[int, ...] = (), no_due: tuple[int, ...] = ()) -> pd.DataFrame:
    """The dataset's invoices `ids` as receivables; those in `undated` with neither date set,
    those in `no_due` with an invoice date only."""
    inv = D.invoices()
    inv = inv[inv["id"].isin(ids)].reset_index(drop=True)
    inv.loc[inv["id"].isin(undated), ["invoice_date_due", "invoice_date"]] = pd.NaT
    inv.loc[inv["id"].isin(no_due), "invoice_date_due"] = pd.NaT
    recv, _ = build_receivables(inv, D.customers(), POLICY, D.AS_OF, None)
    return recv


def test_a_receivable_without_any_date_is_excluded_and_the_others_aged_on_their_own_rows():
    result = aging_mod.build_aging(_receivables([103, 104, 105], undated=(104,)), POLICY, D.AS_OF, UTC)
    assert result.excluded.to_dict("records") == [{
        "invoice_id": 104, "invoice_number": "INV/2026/00104", "customer_id": 10, "reason": "no_due_date",
        "detail": "neither invoice_date_due nor invoice_date is set"}]
    aging = result.aging.set_index("invoice_id")
    # 105 comes after the dropped row: its own due date, days and stage, not its neighbour's
    assert aging[["days_overdue", "aging_bucket", "stage"]].to_dict("index") == {
        103: {"days_overdue": 8, "aging_bucket": "1-30", "stage": "reminder_2"},
        105: {"days_overdue": 31, "aging_bucket": "31-60", "stage": "final_notice"}}
    assert result.aging["days_overdue"].dtype == "int64"
    inst = result.instalments.set_index("invoice_id")
    assert inst["days_overdue"].to_dict() == {103: 8, 105: 31} and inst["days_overdue"].dtype == "int64"


def test_with_every_receivable_dated_nothing_is_excluded():
    result = aging_mod.build_aging(_receivables([103, 105]), POLICY, D.AS_OF, UTC)
    assert result.excluded.empty and list(result.excluded.columns) == EXCLUSION_COLUMNS
    assert sorted(result.aging["invoice_id"]) == [103, 105]


def test_the_day_a_hold_starts_is_taken_in_the_business_time_zone():
    # Auckland is 13 hours ahead of UTC in March: an afternoon in UTC is the next day there
    auckland = ZoneInfo("Pacific/Auckland")
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 107, "write_date"] = pd.Timestamp("2026-02-27 11:30:00")  # in payment
    night = run_night(invoices, D.customers(), POLICY, D.AS_OF, tickets=D.tickets(), users=D.users(),
                      comments=D.comments(), manual_holds=D.manual_holds(), quarantine=D.quarantine(), tz=auckland)
    aging = night.aging.set_index("invoice_id")
    assert aging.loc[[105, 107, 401], ["hold_reason", "hold_since"]].to_dict("index") == {
        105: {"hold_reason": "dispute", "hold_since": pd.Timestamp("2026-03-01")},  # comment 02-28 16:00 UTC
        107: {"hold_reason": "in_payment", "hold_since": pd.Timestamp("2026-02-28")},  # written 02-27 11:30 UTC
        401: {"hold_reason": "promise", "hold_since": pd.Timestamp("2026-02-26")},  # entered 02-25 14:00 UTC
    }


def _hold(customer_id=None, invoice_id=None) -> pd.DataFrame:
    return pd.DataFrame([{"id": 1, "customer_id": customer_id, "invoice_id": invoice_id, "kind": "promise",
                          "until": pd.Timestamp("2026-03-10"), "note": "Promised on the phone", "created_by": "jane",
                          "created_at": pd.Timestamp("2026-02-25 14:00:00")}])


def test_a_manual_hold_on_a_contact_holds_its_companys_invoices():
    result = aging_mod.build_aging(_receivables([103, 105]), POLICY, D.AS_OF, UTC,
                                   manual_holds=_hold(customer_id=11), customers=D.customers())
    assert result.aging["hold_reason"].tolist() == ["promise", "promise"]  # Anna Acme (11) speaks for Acme (10)


def test_a_manual_hold_on_an_invoice_needs_no_customers():
    result = aging_mod.build_aging(_receivables([103, 105]), POLICY, D.AS_OF, UTC, manual_holds=_hold(invoice_id=105))
    assert result.aging.set_index("invoice_id")["hold_reason"].fillna("none").to_dict() == {
        103: "none", 105: "promise"}


def test_a_credit_note_covers_the_invoice_with_the_oldest_open_instalment_first():
    # 701's first instalment (02-02) is older than 703's due date (02-20), though 701's own
    # invoice_date_due (04-03) is later: the 80.00 credit goes to 701, and 703 is dunned.
    invoices = pd.concat([D.invoices().iloc[:0], pd.DataFrame([
        D._inv(701, "INV/2026/00701", 40, "2026-04-03", "1000.00", invoice_date="2026-02-02"),
        D._inv(703, "INV/2026/00703", 40, "2026-02-20", "80.00", invoice_date="2026-01-21"),
        D._inv(704, "RINV/2026/00704", 40, "2026-02-25", "80.00", move_type="out_refund", invoice_date="2026-02-25"),
    ])], ignore_index=True)
    lines = pd.DataFrame([_line(7011, 701, "2026-02-02", "300.00"), _line(7012, 701, "2026-04-03", "700.00")])
    aging = run_night(invoices, D.customers(), POLICY, D.AS_OF, lines=lines).aging.set_index("invoice_id")
    assert aging.loc[[701, 703], ["net_residual_company", "dunning_status"]].to_dict("index") == {
        701: {"net_residual_company": to_units("920.00"), "dunning_status": "dunned"},
        703: {"net_residual_company": to_units("80.00"), "dunning_status": "dunned"}}


def test_an_invoice_without_a_due_date_falls_due_on_its_invoice_date():
    aging = aging_mod.build_aging(_receivables([103, 105], no_due=(103,)), POLICY, D.AS_OF, UTC).aging
    row = aging.set_index("invoice_id").loc[103]
    # the dataset dates 103 30 days before its due date 02-22: 01-23, 38 days before the as-of day
    assert (row["invoice_date_due"], row["due_date"], row["days_overdue"], row["aging_bucket"]) == (
        pd.Timestamp("2026-01-23"), pd.Timestamp("2026-01-23"), 38, "31-60")


def test_money_and_days_of_the_aging_table_are_int64_and_the_rank_nullable_int():
    result = aging_mod.build_aging(_receivables([103, 105, 301, 302, 303]), POLICY, D.AS_OF, UTC)
    aging = result.aging
    for col in ("amount_residual", "amount_residual_company", "days_overdue", "customer_overdue_company",
                "customer_credit_company", "customer_net_overdue_company"):
        assert aging[col].dtype == "int64", col
    assert str(aging["net_residual_company"].dtype) == "Int64" and str(aging["stage_rank"].dtype) == "Int64"
    # without tickets nobody has been in contact, in the column's own type
    contacts = aging[["customer_last_inbound_at", "customer_last_outbound_at"]]
    assert contacts.isna().all().all() and (contacts.dtypes == "datetime64[us]").all()


def test_the_customers_highest_stage_is_per_company_and_an_invoice_of_no_company_is_its_own():
    recv = _receivables([103, 104, 105])
    recv.loc[recv["invoice_id"] == 104, "company_id"] = None  # call, of no company
    recv.loc[recv["invoice_id"] == 105, "company_id"] = 2  # final_notice, in company 2
    aging = aging_mod.build_aging(recv, POLICY, D.AS_OF, UTC).aging.set_index("invoice_id")
    assert aging[["stage", "customer_stage"]].to_dict("index") == {
        103: {"stage": "reminder_2", "customer_stage": "reminder_2"},
        104: {"stage": "call", "customer_stage": "call"},
        105: {"stage": "final_notice", "customer_stage": "final_notice"}}


def test_an_invoice_falling_due_on_the_day_is_not_yet_overdue():
    recv = _receivables([103, 105])
    recv.loc[recv["invoice_id"] == 103, "invoice_date_due"] = pd.Timestamp(D.AS_OF)
    aging = aging_mod.build_aging(recv, POLICY, D.AS_OF, UTC).aging.set_index("invoice_id")
    assert (aging.loc[103, "days_overdue"], aging.loc[103, "aging_bucket"]) == (0, "current")
    assert aging.loc[103, "customer_overdue_company"] == to_units("70.00")  # 105's only


def test_receivables_in_any_order_give_the_aging_table_in_invoice_order_each_row_its_own():
    recv = _receivables([103, 104, 105]).iloc[::-1]
    result = aging_mod.build_aging(recv, POLICY, D.AS_OF, UTC, run_id="night-7")
    aging = result.aging
    assert list(aging.columns) == aging_mod.AGING_COLUMNS
    assert aging[["invoice_id", "days_overdue", "stage"]].to_numpy().tolist() == [
        [103, 8, "reminder_2"], [104, 15, "call"], [105, 31, "final_notice"]]
    assert aging.index.tolist() == [0, 1, 2]
    # the night's day and run on every row
    assert (aging["as_of_date"] == pd.Timestamp(D.AS_OF)).all() and aging["as_of_date"].dtype.kind == "M"
    assert aging["run_id"].tolist() == ["night-7"] * 3
    inst = result.instalments
    assert (inst["as_of_date"] == pd.Timestamp(D.AS_OF)).all() and inst["as_of_date"].dtype.kind == "M"
    assert inst["run_id"].tolist() == ["night-7"] * 3
    assert aging_mod.build_aging(recv, POLICY, D.AS_OF, UTC).aging["run_id"].isna().all()  # no run named

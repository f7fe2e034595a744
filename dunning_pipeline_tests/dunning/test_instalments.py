"""Instalments: an invoice is aged and dunned by its open receivable lines, not by Odoo's
`invoice_date_due` (the LAST instalment's date); each instalment sits in its own bucket and the
amounts reconcile with the invoice to the unit. And `blocked` invoices: still owed, held."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from dunning_pipeline.dunning import aging as aging_mod
from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.money import to_units

from . import dataset as D

POLICY = load_policy()
AS_OF = D.AS_OF  # 2026-03-02


def _line(id_, move, maturity, amount, residual=None, *, amount_company=None, residual_company=None):
    residual = amount if residual is None else residual
    amount_company = amount if amount_company is None else amount_company
    residual_company = residual if residual_company is None else residual_company
    return {"id": id_, "move_id": move, "company_id": 1, "partner_id": 40,
            "date_maturity": pd.Timestamp(maturity), "amount_residual": to_units(residual_company),
            "amount_residual_currency": to_units(residual), "balance": to_units(amount_company),
            "amount_currency": to_units(amount), "reconciled": to_units(residual) == 0,
            "write_date": pd.Timestamp("2026-02-01 08:00:00"), "extracted_at": pd.Timestamp("2026-03-02 01:00:00")}


def _invoices():
    return pd.DataFrame([
        # 30% now, balance in 60 days, issued 28 days ago: Odoo's due date is the balance's.
        D._inv(701, "INV/2026/00701", 40, "2026-04-03", "1000.00", invoice_date="2026-02-02"),
        # Three instalments 15/30/45 days from 2025-12-01; 400.00 of 900.00 paid (the first and
        # a third of the second, oldest first as Odoo reconciles).
        D._inv(702, "INV/2026/00702", 40, "2026-01-15", "500.00", total="900.00", payment_state="partial",
               invoice_date="2025-12-01"),
        # No lines extracted (older data): one instalment on invoice_date_due.
        D._inv(703, "INV/2026/00703", 40, "2026-02-20", "80.00", invoice_date="2026-01-21"),
    ])


def _lines(stale: bool = False):
    rows = [_line(7011, 701, "2026-02-02", "300.00"), _line(7012, 701, "2026-04-03", "700.00"),
            _line(7021, 702, "2025-12-16", "300.00", "300.00" if stale else "0.00"),
            _line(7022, 702, "2025-12-31", "300.00", "300.00" if stale else "200.00"),
            _line(7023, 702, "2026-01-15", "300.00")]
    return pd.DataFrame(rows)


def _night(lines, invoices=None, as_of=AS_OF, prev=None):
    return run_night(_invoices() if invoices is None else invoices, D.customers(), POLICY, as_of,
                     prev_state=prev, lines=lines, run_id=f"run-{as_of}")


def _row(night, invoice_id):
    return night.aging.set_index("invoice_id").loc[invoice_id]


def test_first_instalment_28_days_overdue_is_dunned_at_its_stage():
    night = _night(_lines())
    inv = _row(night, 701)
    assert inv["invoice_date_due"] == pd.Timestamp("2026-04-03")  # Odoo's: the last instalment
    assert inv["due_date"] == pd.Timestamp("2026-02-02")          # the oldest open one decides
    assert (inv["days_overdue"], inv["aging_bucket"], inv["stage"], inv["dunning_status"]) == (
        28, "1-30", "call", "dunned")
    assert (inv["instalment_number"], inv["instalments_total"], inv["instalments_open"]) == (1, 2, 2)
    # counts, not floats (the aging table's columns are integers)
    assert {str(night.aging[c].dtype) for c in ("instalment_number", "instalments_total", "instalments_open")} <= {
        "int64", "Int64"}
    entered = night.rows.set_index("invoice_id").loc[701]
    assert (entered["to_stage"], entered["days_overdue"]) == ("call", 28)
    assert entered["invoice_date_due"] == pd.Timestamp("2026-02-02")


def test_each_instalment_falls_in_the_bucket_of_its_own_due_date():
    inst = _night(_lines()).instalments
    got = {(r.invoice_id, r.instalment_number): (None if pd.isna(r.line_id) else int(r.line_id),
                                                  r.date_maturity.date(), r.days_overdue, r.aging_bucket,
                                                  r.amount_residual)
           for r in inst.itertuples()}
    assert got == {
        (701, 1): (7011, date(2026, 2, 2), 28, "1-30", to_units("300.00")),
        (701, 2): (7012, date(2026, 4, 3), -32, "current", to_units("700.00")),
        (702, 2): (7022, date(2025, 12, 31), 61, "61-90", to_units("200.00")),  # the first is paid
        (702, 3): (7023, date(2026, 1, 15), 46, "31-60", to_units("300.00")),
        (703, 1): (None, date(2026, 2, 20), 10, "1-30", to_units("80.00")),   # no lines: its due date
    }


@pytest.mark.parametrize("stale", [False, True], ids=["lines-as-reconciled", "lines-older-than-invoice"])
def test_a_partly_paid_invoice_follows_its_oldest_open_instalment(stale):
    """Lines read before the payment reached them still reconcile: the invoice's residual is laid
    on its latest instalments (the oldest is paid first)."""
    night = _night(_lines(stale=stale))
    inv = _row(night, 702)
    assert (inv["due_date"], inv["days_overdue"], inv["aging_bucket"], inv["stage"]) == (
        pd.Timestamp("2025-12-31"), 61, "61-90", "collection")
    assert (inv["instalment_number"], inv["instalments_total"], inv["instalments_open"]) == (2, 3, 2)
    open_ = night.instalments[night.instalments["invoice_id"] == 702]
    assert open_["amount_residual"].tolist() == [to_units("200.00"), to_units("300.00")]


def test_without_lines_an_invoice_is_one_instalment_on_its_due_date():
    night = _night(None)
    inv = _row(night, 701)
    assert (inv["due_date"], inv["days_overdue"], inv["instalment_number"], inv["instalments_total"]) == (
        pd.Timestamp("2026-04-03"), -32, 1, 1)
    assert night.instalments["line_id"].isna().all() and len(night.instalments) == 3
    assert night.aging.set_index("invoice_id")["instalments_open"].to_dict() == {701: 1, 702: 1, 703: 1}


def test_instalments_reconcile_with_the_invoices_to_the_unit():
    # USD invoice in a EUR company: company amounts split with their own rounding.
    usd = D._inv(704, "INV/2026/00704", 40, "2026-03-31", "100.01", currency="USD", residual_company="92.61",
                 invoice_date="2026-01-30")
    invoices = pd.concat([_invoices(), pd.DataFrame([usd])], ignore_index=True)
    lines = pd.concat([_lines(), pd.DataFrame([
        _line(7041, 704, "2026-01-30", "50.00", amount_company="46.30", residual_company="46.30"),
        _line(7042, 704, "2026-03-31", "50.01", amount_company="46.31", residual_company="46.31")])], ignore_index=True)
    night = _night(lines, invoices)
    inst, aging = night.instalments, night.aging.set_index("invoice_id")
    sums = inst.groupby("invoice_id")[["amount_residual", "amount_residual_company"]].sum()
    assert (sums["amount_residual"] == aging.loc[sums.index, "amount_residual"]).all()
    assert (sums["amount_residual_company"] == aging.loc[sums.index, "amount_residual_company"]).all()
    totals = aging_mod.bucket_totals(inst, POLICY.all_bucket_labels()).set_index("currency")
    open_ = night.receivables.groupby("currency")["amount_residual"].sum()
    assert (totals["total"] == open_.reindex(totals.index)).all()
    assert totals.loc["EUR", "1-30"] == to_units("300.00") + to_units("80.00")
    assert totals.loc["EUR", "current"] == to_units("700.00")
    # only the instalments past due count as the customer's overdue balance
    assert aging.loc[701, "customer_overdue_company"] == (
        to_units("300.00") + to_units("500.00") + to_units("80.00") + to_units("46.30"))


def test_a_blocked_invoice_stays_owed_and_is_held_never_closed():
    """(Without lines: the hold does not depend on instalments.)"""
    first = run_night(_invoices(), D.customers(), POLICY, AS_OF, run_id="n1")
    assert _row(first, 701)["stage"] is None  # not due before 2026-04-03 without its lines
    blocked = _invoices()
    blocked.loc[blocked["id"] == 703, ["payment_state", "write_date"]] = ["blocked", pd.Timestamp("2026-03-04 10:00")]
    assert _row(first, 703)["stage"] == "reminder_2"
    week = date(2026, 3, 9)
    second = run_night(blocked, D.customers(), POLICY, week, prev_state=first.state, run_id="n2")
    inv = _row(second, 703)
    assert (inv["dunning_status"], inv["hold_reason"], inv["stage"]) == ("on_hold", "blocked", "reminder_2")
    assert inv["amount_residual"] == to_units("80.00")  # in the aging and its totals
    assert second.receivables.set_index("invoice_id").loc[703, "payment_state"] == "blocked"
    row = second.rows.set_index("invoice_id").loc[703]
    assert (row["reason"], row["to_stage"], row["hold_reason"]) == ("hold", "reminder_2", "blocked")
    later = run_night(blocked, D.customers(), POLICY, date(2026, 4, 20), prev_state=second.state, run_id="n3")
    assert 703 not in set(later.rows["invoice_id"])  # no closed/removed row, no move up: held
    assert _row(later, 703)["hold_reason"] == "blocked"


def test_a_blocked_instalment_invoice_is_held_at_the_stage_of_its_first_instalment():
    first = _night(_lines())
    assert _row(first, 701)["stage"] == "call"
    blocked = _invoices()
    blocked.loc[blocked["id"] == 701, ["payment_state", "write_date"]] = ["blocked", pd.Timestamp("2026-03-04 10:00")]
    week = date(2026, 3, 9)
    second = _night(_lines(), blocked, as_of=week, prev=first.state)
    inv = _row(second, 701)
    assert (inv["dunning_status"], inv["hold_reason"], inv["stage"]) == ("on_hold", "blocked", "call")
    assert inv["amount_residual"] == to_units("1000.00")  # in the aging and its totals
    assert second.receivables.set_index("invoice_id").loc[701, "payment_state"] == "blocked"
    row = second.rows.set_index("invoice_id").loc[701]
    assert (row["reason"], row["to_stage"], row["hold_reason"]) == ("hold", "call", "blocked")
    later = _night(_lines(), blocked, as_of=date(2026, 4, 20), prev=second.state)
    assert 701 not in set(later.rows.loc[later.rows["to_stage"] == "closed", "invoice_id"])
    assert _row(later, 701)["hold_reason"] == "blocked"


def _instalments(night, invoice_id):
    rows = night.instalments[night.instalments["invoice_id"] == invoice_id]
    return [(None if pd.isna(r.line_id) else int(r.line_id), r.date_maturity.date(), r.amount_residual,
             r.amount_residual_company) for r in rows.itertuples()]


def test_lines_as_odoo_reconciled_them_are_kept_even_when_a_later_instalment_was_paid_first():
    """The customer paid the balance instalment, not the first: Odoo's lines say so, and the first
    (28 days overdue) stays open; laying the residual oldest-first would put it on the balance."""
    inv = D._inv(705, "INV/2026/00705", 40, "2026-04-03", "300.00", total="1000.00", payment_state="partial",
                 invoice_date="2026-02-02")
    night = _night(pd.DataFrame([_line(7051, 705, "2026-02-02", "300.00"),
                                 _line(7052, 705, "2026-04-03", "700.00", "0.00")]), pd.DataFrame([inv]))
    assert _instalments(night, 705) == [(7051, date(2026, 2, 2), to_units("300.00"), to_units("300.00"))]
    row = _row(night, 705)
    assert (row["due_date"], row["days_overdue"], row["instalment_number"], row["instalments_open"]) == (
        pd.Timestamp("2026-02-02"), 28, 1, 1)


def test_lines_whose_company_amounts_disagree_get_the_invoice_s_company_residual():
    # Lines read before a revaluation: the USD residual agrees, the EUR one (95.00) does not.
    usd = D._inv(706, "INV/2026/00706", 40, "2026-02-02", "100.00", currency="USD", residual_company="92.00",
                 invoice_date="2026-01-03")
    night = _night(pd.DataFrame([_line(7061, 706, "2026-02-02", "100.00", amount_company="95.00")]),
                   pd.DataFrame([usd]))
    assert _instalments(night, 706) == [(7061, date(2026, 2, 2), to_units("100.00"), to_units("92.00"))]


def test_more_owed_than_the_lines_lies_on_the_oldest_instalment():
    # The invoice owes 1100.00, its lines (read earlier) 1000.00: the 100.00 more is the oldest's.
    inv = D._inv(707, "INV/2026/00707", 40, "2026-04-03", "1100.00", invoice_date="2026-02-02")
    night = _night(pd.DataFrame([_line(7071, 707, "2026-02-02", "300.00"), _line(7072, 707, "2026-04-03", "700.00")]),
                   pd.DataFrame([inv]))
    assert _instalments(night, 707) == [(7071, date(2026, 2, 2), to_units("400.00"), to_units("400.00")),
                                        (7072, date(2026, 4, 3), to_units("700.00"), to_units("700.00"))]


def test_a_credit_note_s_instalments_are_signed_like_the_credit_note():
    note = D._inv(708, "RINV/2026/00708", 40, "2026-02-10", "50.00", move_type="out_refund",
                  invoice_date="2026-02-10")
    night = _night(pd.DataFrame([_line(7081, 708, "2026-02-10", "50.00")]), pd.DataFrame([note]))
    assert _instalments(night, 708) == [(7081, date(2026, 2, 10), -to_units("50.00"), -to_units("50.00"))]
    receivable = night.receivables.set_index("invoice_id").loc[708]
    assert (receivable["amount_residual"], receivable["amount_residual_company"]) == (
        -to_units("50.00"), -to_units("50.00"))


def test_a_missing_due_date_falls_back_to_the_invoice_s():
    """A line without date_maturity falls due on the invoice's due date; an invoice without lines
    nor invoice_date_due on its invoice date."""
    no_due = D._inv(709, "INV/2026/00709", 40, "2026-02-20", "80.00", invoice_date="2026-01-15")
    no_due["invoice_date_due"] = pd.NaT
    dated = D._inv(710, "INV/2026/00710", 40, "2026-02-20", "60.00", invoice_date="2026-01-21")
    line = _line(7101, 710, "2026-02-20", "60.00")
    line["date_maturity"] = pd.NaT
    night = _night(pd.DataFrame([line]), pd.DataFrame([no_due, dated]))
    assert _instalments(night, 709) == [(None, date(2026, 1, 15), to_units("80.00"), to_units("80.00"))]
    assert _instalments(night, 710) == [(7101, date(2026, 2, 20), to_units("60.00"), to_units("60.00"))]
    assert _row(night, 709)["days_overdue"] == 46 and _row(night, 710)["days_overdue"] == 10


def test_an_undated_receivable_is_left_out_and_the_others_keep_their_own_instalment():
    undated = D._inv(711, "INV/2026/00711", 40, "2026-02-20", "90.00")
    undated["invoice_date_due"] = undated["invoice_date"] = pd.NaT
    invoices = pd.concat([_invoices().iloc[[2]], pd.DataFrame([undated]), _invoices().iloc[[0]]],
                         ignore_index=True)  # 703, 711, 701
    night = _night(_lines(), invoices)
    aging = night.aging.set_index("invoice_id")
    assert sorted(aging.index) == [701, 703]
    assert (aging.loc[701, "due_date"], aging.loc[701, "instalments_total"], aging.loc[701, "instalments_open"]) == (
        pd.Timestamp("2026-02-02"), 2, 2)
    assert (aging.loc[703, "due_date"], aging.loc[703, "instalments_total"], aging.loc[703, "instalments_open"]) == (
        pd.Timestamp("2026-02-20"), 1, 1)


@pytest.mark.parametrize("left, left_company, residual, residual_company", [
    ("0.00", "0.01", "700.00", "646.01"),  # 0.00 USD but 0.01 EUR left (rounding of the rate)
    ("0.01", "0.00", "700.01", "646.00"),  # and the other way round
])
def test_an_instalment_open_in_one_currency_only_is_still_open(left, left_company, residual, residual_company):
    # The first line stays open, as its invoice does.
    usd = D._inv(712, "INV/2026/00712", 40, "2026-04-03", residual, total="1000.00", currency="USD",
                 residual_company=residual_company, payment_state="partial", invoice_date="2026-02-02")
    lines = pd.DataFrame([_line(7121, 712, "2026-02-02", "300.00", left, amount_company="277.00",
                                residual_company=left_company),
                          _line(7122, 712, "2026-04-03", "700.00", amount_company="646.00")])
    night = _night(lines, pd.DataFrame([usd]))
    assert _instalments(night, 712) == [(7121, date(2026, 2, 2), to_units(left), to_units(left_company)),
                                        (7122, date(2026, 4, 3), to_units("700.00"), to_units("646.00"))]
    assert _row(night, 712)["instalments_open"] == 2


def test_lines_without_their_full_amounts_are_read_by_their_residuals():
    # balance and amount_currency are not checked by the quality suite: a line may lack them.
    lines = _lines()
    lines.loc[lines["move_id"] == 701, ["balance", "amount_currency"]] = None
    night = _night(lines)
    assert _instalments(night, 701) == [(7011, date(2026, 2, 2), to_units("300.00"), to_units("300.00")),
                                        (7012, date(2026, 4, 3), to_units("700.00"), to_units("700.00"))]
    assert len(night.instalments) == 5

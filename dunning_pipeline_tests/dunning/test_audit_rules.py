"""Audit rules a one-line bug would break unnoticed (found by trying mutants of the engine).

Each test pins one rule of the history or the receivables that the hand-made engine tests did
not exercise: re-running a day on data that changed since, a hold that must never lower a
recorded stage, and a quarantined contact (not the commercial partner).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.money import to_units

from . import dataset as D

POLICY = load_policy()


def _night(as_of, state=None, **overrides):
    kwargs = dict(tickets=D.tickets(), users=D.users(), comments=D.comments(),
                  manual_holds=D.manual_holds(), quarantine=D.quarantine())
    kwargs.update(overrides)
    invoices = kwargs.pop("invoices", D.invoices())
    args = (invoices, D.customers(), POLICY, as_of) + ((state,) if state is not None else ())
    return run_night(*args, **kwargs)


def test_rerunning_a_day_after_an_invoice_was_paid_adds_nothing_that_day():
    first = _night(D.AS_OF, run_id="first")
    assert 102 in set(first.rows["invoice_id"])  # entered dunning at reminder_1 on this day
    paid = D.invoices().set_index("id")
    paid.loc[102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    again = _night(D.AS_OF, first.state, invoices=paid.reset_index(), run_id="again")
    # The day already has its row for 102: its closure waits for the next day, once.
    assert again.rows.empty
    next_day = _night(date(2026, 3, 3), first.state, invoices=paid.reset_index(), run_id="next")
    closed = next_day.rows.set_index("invoice_id").loc[102]
    assert (closed["from_stage"], closed["to_stage"], closed["reason"]) == ("reminder_1", "closed", "paid")


def test_a_dispute_found_later_never_lowers_a_recorded_stage():
    # Night 1 knows no ticket: 106 (due 01-16, 45 days) is recorded at collection.
    empty = D.tickets().iloc[0:0]
    first = _night(D.AS_OF, tickets=empty, comments=D.comments().iloc[0:0], run_id="first")
    assert first.rows.set_index("invoice_id").loc[106, "to_stage"] == "collection"
    # Night 2 learns of the customer's dispute of 02-20 (35 days then: final_notice). The hold
    # freezes the stage; it must not take back the collection stage already recorded.
    second = _night(date(2026, 3, 3), first.state, run_id="second")
    aging = second.aging.set_index("invoice_id").loc[106]
    assert (aging["hold_reason"], aging["stage"]) == ("dispute", "collection")
    row = second.rows.set_index("invoice_id").loc[106]
    assert (row["from_stage"], row["to_stage"], row["reason"]) == ("collection", "collection", "hold")


def test_a_quarantined_contact_holds_back_its_invoices_but_not_its_companys():
    # Contact 11 (Anna, of Acme 10) is quarantined; invoice 101 is addressed to her.
    quarantine = pd.concat([D.quarantine(), D.quarantine().iloc[[0]].assign(record_id=11)], ignore_index=True)
    night = _night(D.AS_OF, quarantine=quarantine)
    excluded = night.excluded.set_index("invoice_id")
    assert excluded.loc[101, "reason"] == "quarantined"
    assert 101 not in set(night.aging["invoice_id"])
    acme = night.aging[night.aging["customer_id"] == 10]
    assert {102, 103, 104} <= set(acme["invoice_id"])  # the company's own invoices are still dunned
    assert acme.set_index("invoice_id").loc[102, "amount_residual"] == to_units("250.50")

"""The history's pure rules, one at a time: why an invoice left the open set (`closure_reasons`),
and the closing rows `transitions` writes for it.

Expectations are written from the module's rules (history.py: `paid` also when settled within
the tolerance of the invoice's currency, `credited` for a reversed invoice, `cancelled` for a
cancelled or draft one, `removed` when Odoo no longer has it or its payment state is not a
receivable's; still open: no reason) and the default policy's tolerance (0.01, JPY 1), not
computed by the code under test."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dunning_pipeline.dunning import history
from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import load_policy, parse_policy
from dunning_pipeline.money import to_units

from . import dataset as D

POLICY = load_policy()
u = to_units


def _raw(id_, *, state="posted", payment_state="partial", residual="0.00", residual_company=None, currency="EUR"):
    return D._inv(id_, f"INV/2026/{id_:05d}", 10, "2026-02-01", residual, total="100.00", state=state,
                  payment_state=payment_state, currency=currency, residual_company=residual_company)


# id: (raw record, (reason, residual, residual in the company currency)); None: still open.
CLOSURES = {
    1: (_raw(1, state="cancel", residual="40.00"), ("cancelled", u("40.00"), u("40.00"))),
    2: (_raw(2, state="draft", residual="40.00"), ("cancelled", u("40.00"), u("40.00"))),  # reset to draft
    3: (_raw(3, payment_state="reversed"), ("credited", 0, 0)),
    4: (_raw(4, payment_state="paid"), ("paid", 0, 0)),
    5: (_raw(5, residual="0.01"), ("paid", u("0.01"), u("0.01"))),           # at the tolerance: settled
    6: (_raw(6, residual="0.02", residual_company="0.03"), (None, u("0.02"), u("0.03"))),  # above it: open
    # in payment: Odoo's residual is already 0, yet the payment is not reconciled: still open
    7: (_raw(7, payment_state="in_payment"), (None, 0, 0)),
    8: (_raw(8, payment_state="invoicing_legacy"), ("removed", 0, 0)),      # not a receivable's state
    9: (_raw(9, payment_state="blocked", residual="50.00"), (None, u("50.00"), u("50.00"))),
    10: (_raw(10, residual="1", residual_company="0.0061", currency="JPY"), ("paid", u("1"), u("0.0061"))),
    # the tolerance is in the invoice's currency: 0.02 USD is open, though 0.009 EUR is below 0.01
    11: (_raw(11, residual="0.02", residual_company="0.009", currency="USD"), (None, u("0.02"), u("0.009"))),
}


def test_each_way_out_of_the_open_set_has_its_reason_and_the_residual_at_that_time():
    unrelated = _raw(99, state="cancel")  # not asked about: not in the answer
    raw = pd.DataFrame([record for record, _ in CLOSURES.values()] + [unrelated])
    asked = pd.Index([*CLOSURES, 12])  # 12: no longer in Odoo at all
    got = history.closure_reasons(raw, asked, POLICY)
    assert sorted(got.index) == sorted(asked)
    assert got.index.dtype == "int64" and list(got.columns) == ["reason", "amount_residual", "amount_residual_company"]
    as_tuples = {int(i): (None if pd.isna(r.reason) else r.reason,
                          None if pd.isna(r.amount_residual) else int(r.amount_residual),
                          None if pd.isna(r.amount_residual_company) else int(r.amount_residual_company))
                 for i, r in got.iterrows()}
    assert as_tuples == {**{i: expected for i, (_, expected) in CLOSURES.items()}, 12: ("removed", None, None)}


def test_an_invoice_gone_from_odoo_or_reversed_is_closed_with_its_reason_and_amounts():
    night1 = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, quarantine=D.quarantine())
    invoices = D.invoices().set_index("id")
    invoices.loc[104, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["reversed", 0, 0]
    invoices.loc[102, ["amount_residual", "amount_residual_signed"]] = [u("0.01"), u("0.01")]  # settled
    invoices = invoices.drop(index=103).reset_index()  # deleted in Odoo
    as_of = date(2026, 3, 4)
    night2 = run_night(invoices, D.customers(), POLICY, as_of, night1.state, quarantine=D.quarantine())
    rows = night2.rows.set_index("invoice_id")
    closed = rows[rows["to_stage"] == "closed"]
    assert sorted(closed.index) == [102, 103, 104]
    got = {i: (r.from_stage, r.reason, r.days_overdue, None if pd.isna(r.amount_residual) else int(r.amount_residual),
               None if pd.isna(r.amount_residual_company) else int(r.amount_residual_company))
           for i, r in closed.iterrows()}
    assert got == {
        102: ("reminder_1", "paid", 3, u("0.01"), u("0.01")),   # due 03-01
        103: ("reminder_2", "removed", 10, None, None),          # due 02-22; nothing known of it any more
        104: ("call", "credited", 17, 0, 0),                     # due 02-15
    }
    assert (closed["stages_skipped"] == 0).all() and not closed["on_hold"].astype(bool).any()
    assert closed["hold_reason"].isna().all() and closed["action"].isna().all()
    assert (closed["customer_id"] == 10).all() and closed.loc[103, "invoice_number"] == "INV/2026/00103"
    # once closed, the next night adds nothing for them
    night3 = run_night(invoices, D.customers(), POLICY, date(2026, 3, 5), night2.state, quarantine=D.quarantine())
    assert not {102, 103, 104} & set(night3.rows["invoice_id"])


def _night(invoices, as_of, state=None, *, manual_holds=None, policy=POLICY):
    return run_night(invoices, D.customers(), policy, as_of, state, manual_holds=manual_holds,
                     quarantine=D.quarantine(), run_id=f"run-{as_of}")


def _changes(night, ids):
    rows = night.rows.set_index("invoice_id")
    return {i: (rows.loc[i, "from_stage"], rows.loc[i, "to_stage"], rows.loc[i, "reason"],
                int(rows.loc[i, "stages_skipped"]),
                None if pd.isna(rows.loc[i, "action"]) else rows.loc[i, "action"]) for i in ids}


def test_a_catch_up_after_missed_nights_is_one_row_counting_the_stages_in_between():
    night1 = _night(D.invoices(), D.AS_OF)
    # Two weeks without a run. 101 (due 03-05): 12 days, reminder_2; 102 (due 03-01): 16 days, call;
    # 103 (due 02-22): 23 days, call, the next stage after reminder_2.
    later = _night(D.invoices(), date(2026, 3, 17), night1.state)
    assert _changes(later, [101, 102, 103]) == {
        101: ("pre_due", "reminder_2", "days_overdue", 1, "email"),   # reminder_1 skipped
        102: ("reminder_1", "call", "days_overdue", 1, "call"),       # reminder_2 skipped
        103: ("reminder_2", "call", "days_overdue", 0, "call"),
    }
    assert list(later.rows.columns) == history.HISTORY_COLUMNS
    assert list(later.rows["invoice_id"]) == sorted(later.rows["invoice_id"])
    # the engine has no clock: a row is stamped with its as-of day, midnight
    assert (later.rows["recorded_at"] == pd.Timestamp("2026-03-17")).all()
    assert (later.rows["run_id"] == "run-2026-03-17").all()


def test_an_invoice_closed_and_then_open_again_reenters_as_reopened_skipping_nothing():
    night1 = _night(D.invoices(), D.AS_OF)
    paid = D.invoices().set_index("id")
    paid.loc[102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    night2 = _night(paid.reset_index(), date(2026, 3, 3), night1.state)
    assert _changes(night2, [102]) == {102: ("reminder_1", "closed", "paid", 0, None)}
    # the payment is taken back: open again, at its calendar stage (due 03-01, 3 days: reminder_1).
    # Closed is not on the ladder, so no stage was jumped over to get back there.
    night3 = _night(D.invoices(), date(2026, 3, 4), night2.state)
    assert _changes(night3, [102]) == {102: ("closed", "reminder_1", "reopened", 0, "email")}


def test_a_hold_that_changes_its_reason_is_a_row_of_its_own():
    night1 = _night(D.invoices(), D.AS_OF, manual_holds=D.manual_holds())  # 401: promised on 02-25
    assert night1.rows.set_index("invoice_id").loc[401, "hold_reason"] == "promise"
    holds = D.manual_holds()
    holds.loc[holds["id"] == 1, ["kind", "until", "note"]] = ["exclusion", None, "excluded instead"]
    # the same start (02-25: 5 days, reminder_1), so the stage stays; only the reason changes
    night2 = _night(D.invoices(), date(2026, 3, 3), night1.state, manual_holds=holds)
    assert _changes(night2, [401]) == {401: ("reminder_1", "reminder_1", "hold", 0, "email")}
    assert night2.rows.set_index("invoice_id").loc[401, "hold_reason"] == "exclusion"


def test_an_edited_ladder_that_moves_a_stage_is_a_policy_change_not_a_due_date_change():
    text = open(POLICY.source, encoding="utf-8").read()
    old = "{name: call,         days: 15,"
    assert text.count(old) == 1
    later_calls = parse_policy(text.replace(old, "{name: call,         days: 20,"), source="edited.yaml")
    night1 = _night(D.invoices(), D.AS_OF)
    # 104 (due 02-15, not moved): 16 days on 03-03, below the call now at 20 days: reminder_2
    night2 = _night(D.invoices(), date(2026, 3, 3), night1.state, policy=later_calls)
    assert _changes(night2, [104]) == {104: ("call", "reminder_2", "policy_change", 0, "email")}


def test_state_from_rows_written_before_the_on_hold_column_takes_the_hold_from_its_reason():
    rows = _night(D.invoices(), D.AS_OF, manual_holds=D.manual_holds()).rows
    held = set(rows.loc[rows["hold_reason"].notna(), "invoice_id"])
    assert held == {107, 301, 351, 401, 501}  # in payment, net credit (2), promise, exclusion; no tickets here
    for legacy in (rows.drop(columns=["on_hold"]), rows.assign(on_hold=pd.NA)):  # no column / not filled
        state = history.state_from_rows(legacy)
        assert list(state.columns) == history.STATE_COLUMNS
        assert {int(i) for i in state.loc[state["on_hold"], "invoice_id"]} == held
        assert state["on_hold"].dtype == bool

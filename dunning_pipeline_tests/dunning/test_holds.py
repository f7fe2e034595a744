"""Holds on small hand-made frames: which manual and ticket holds apply on a day, from when, and
which one names the hold of an invoice (priority) while the stage freezes as of the earliest.

The expectations follow the rules in holds.py's docstring and PRODUCT.md: a manual hold counts
from its effective date (by default the day it was entered, in the company's time zone), until
its `until` day inclusive, and not from the day it was released; a night knows only the holds
entered by its end."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dunning_pipeline.dunning.holds import (
    HOLD_COLUMNS,
    HoldError,
    manual_holds,
    resolve_holds,
    ticket_holds,
    validate_manual_holds,
)

BERLIN = ZoneInfo("Europe/Berlin")
AS_OF = date(2026, 3, 2)
DAY = pd.Timestamp(AS_OF)
CUSTOMERS = pd.DataFrame({"id": [10, 11, 20], "commercial_partner_id": [None, 10, None]})  # 11: a contact of 10


def _manual(**fields) -> pd.DataFrame:
    row = {"id": 1, "customer_id": None, "invoice_id": 401, "kind": "promise", "until": pd.Timestamp("2026-03-10"),
           "note": "Promised on the phone", "created_by": "jane", "created_at": pd.Timestamp("2026-02-25 14:00:00")}
    row.update(fields)
    return pd.DataFrame([row])


def _active(manual: pd.DataFrame, as_of: date = AS_OF) -> pd.DataFrame:
    return manual_holds(manual, CUSTOMERS, as_of, BERLIN)


# -- validation of dunning_holds rows ------------------------------------------------------------
def test_rows_that_cannot_be_honoured_are_refused_naming_row_and_field():
    with pytest.raises(HoldError, match=r"id=7: field 'kind' is 'pause', expected one of promise, exclusion"):
        validate_manual_holds(_manual(id=7, kind="pause"))
    with pytest.raises(HoldError, match=r"id=8: fields 'customer_id' and 'invoice_id' are both empty"):
        validate_manual_holds(_manual(id=8, invoice_id=None, kind="exclusion"))
    with pytest.raises(HoldError, match=r"id=9: a promise needs field 'until'"):
        validate_manual_holds(_manual(id=9, until=None))


def test_an_exclusion_needs_no_end_and_a_customer_alone_is_a_target():
    validate_manual_holds(_manual(kind="exclusion", until=None, customer_id=10, invoice_id=None))
    validate_manual_holds(_manual().iloc[:0])
    assert len(_active(_manual(kind="exclusion", until=None))) == 1


def test_only_the_first_bad_row_is_named():
    rows = pd.concat([_manual(id=1), _manual(id=2, kind="pause"), _manual(id=3, kind="later")], ignore_index=True)
    with pytest.raises(HoldError, match="id=2:"):
        validate_manual_holds(rows)


# -- manual holds: from when, until when -----------------------------------------------------------
def test_a_manual_hold_counts_from_the_day_it_was_entered_with_its_note_and_author():
    got = _active(_manual())
    assert len(got) == 1
    hold = got.iloc[0]
    assert hold["invoice_id"] == 401 and pd.isna(hold["customer_id"]) and pd.isna(hold["ticket_id"])
    assert hold["reason"] == "promise"
    assert hold["since"] == pd.Timestamp("2026-02-25")
    assert hold["until"] == pd.Timestamp("2026-03-10")
    assert hold["note"] == "Promised on the phone (jane)"


def test_the_author_or_the_note_may_be_missing():
    assert _active(_manual(note=None)).iloc[0]["note"] == "(jane)"
    assert _active(_manual(created_by=None)).iloc[0]["note"] == "Promised on the phone (?)"


def test_a_promise_holds_through_its_day_and_not_after():
    assert len(_active(_manual(until=DAY))) == 1
    assert len(_active(_manual(until=DAY - pd.Timedelta(days=1)))) == 0


def test_the_day_entered_is_the_companys_local_day():
    # 23:30 UTC on 1 March is 00:30 on 2 March in Berlin: unknown to the night of 1 March.
    late = _manual(created_at=pd.Timestamp("2026-03-01 23:30:00"))
    assert len(_active(late, date(2026, 3, 1))) == 0
    got = _active(late, date(2026, 3, 2))
    assert got.iloc[0]["since"] == pd.Timestamp("2026-03-02")
    # Entered during the as-of day itself: that night knows it.
    assert len(_active(_manual(created_at=pd.Timestamp("2026-03-02 10:00:00")))) == 1


def test_a_hold_dated_back_is_frozen_as_of_its_effective_date_from_the_night_it_was_entered():
    dated_back = _manual(created_at=pd.Timestamp("2026-02-27 09:00:00"), effective_date=pd.Timestamp("2026-02-20"))
    assert _active(dated_back).iloc[0]["since"] == pd.Timestamp("2026-02-20")
    # A replay of a night before it was entered does not see it, although it is dated earlier.
    assert len(_active(dated_back, date(2026, 2, 24))) == 0
    # Without an effective date, the day entered.
    undated = _manual(effective_date=None)
    assert _active(undated).iloc[0]["since"] == pd.Timestamp("2026-02-25")


def test_a_hold_dated_forward_applies_from_its_effective_date():
    ahead = _manual(effective_date=pd.Timestamp("2026-03-03"))
    assert len(_active(ahead, date(2026, 3, 2))) == 0
    assert len(_active(ahead, date(2026, 3, 3))) == 1


def test_a_released_hold_no_longer_applies_from_the_day_it_was_released():
    released = _manual(released_at=pd.Timestamp("2026-03-02 08:00:00"))
    assert len(_active(released, date(2026, 3, 1))) == 1
    assert len(_active(released, date(2026, 3, 2))) == 0
    assert len(_active(_manual(released_at=None))) == 1


def test_a_contacts_hold_counts_for_its_company():
    got = _active(pd.concat([_manual(id=1, customer_id=11, invoice_id=None, kind="exclusion", until=None),
                             _manual(id=2, customer_id=20, invoice_id=None, kind="exclusion", until=None),
                             _manual(id=3, customer_id=99, invoice_id=None, kind="exclusion", until=None)],
                            ignore_index=True))
    assert list(got["customer_id"]) == [10, 20, 99]  # 99: not in odoo_customers, kept as written
    assert [str(got[c].dtype) for c in ("customer_id", "invoice_id", "ticket_id")] == ["Int64"] * 3  # ids, some missing


def test_only_active_rows_are_returned():
    rows = pd.concat([_manual(id=1, invoice_id=1, until=DAY - pd.Timedelta(days=1)),
                      _manual(id=2, invoice_id=2), _manual(id=3, invoice_id=3, created_at=pd.Timestamp("2026-03-05"))],
                     ignore_index=True)
    assert list(_active(rows)["invoice_id"]) == [2]


def test_no_rows_give_no_holds():
    empty = _manual().iloc[:0]
    got = manual_holds(empty, CUSTOMERS.iloc[:0], AS_OF, BERLIN)
    assert got.empty and list(got.columns) == ["customer_id", "invoice_id", "reason", "since", "until",
                                                "ticket_id", "note"]


def test_a_row_without_its_entry_time_counts_as_known_and_in_force():
    # Frames built by hand may lack created_at: the hold applies (its start is filled in later).
    got = _active(_manual(created_at=pd.NaT))
    assert len(got) == 1 and pd.isna(got.iloc[0]["since"])


def test_the_day_of_release_is_the_companys_local_day():
    # 23:30 UTC on 1 March is 2 March in Berlin: the hold still applies on 1 March.
    released = _manual(released_at=pd.Timestamp("2026-03-01 23:30:00"))
    assert len(_active(released, date(2026, 3, 1))) == 1
    assert len(_active(released, date(2026, 3, 2))) == 0


def test_a_release_column_does_not_revive_expired_or_unknown_holds():
    rows = pd.concat([_manual(id=1, invoice_id=1, until=DAY - pd.Timedelta(days=1)),
                      _manual(id=2, invoice_id=2, created_at=pd.Timestamp("2026-03-05 10:00:00")),
                      _manual(id=3, invoice_id=3)], ignore_index=True)
    rows["released_at"] = pd.NaT
    assert list(_active(rows)["invoice_id"]) == [3]


# -- ticket holds ---------------------------------------------------------------------------------
def _comms(**columns) -> pd.DataFrame:
    base = {
        "ticket_id": [1, 2, 3, 4],
        "invoice_id": pd.array([105, None, 106, 107], dtype="Int64"),
        "customer_id": pd.array([10, 10, None, 20], dtype="Int64"),
        "hold_kind": ["dispute", "payment_claimed", "dispute", None],
        "hold_until": pd.to_datetime([None, "2026-03-05", None, None]),
        "mentioned_at": pd.to_datetime(["2026-02-28 23:30:00", "2026-02-27 10:00:00", "2026-02-20 10:00:00",
                                        "2026-02-20 10:00:00"]),
        "subject": ["Wrong amount", "Paid", "Unmatched", "Question"],
        "is_open": [True, True, True, True],
        "promise_until": pd.to_datetime([None, None, None, None]),
        "ticket_created_at": pd.to_datetime(["2026-02-01"] * 4),
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_ticket_holds_are_the_held_rows_of_known_customers_from_the_local_day_mentioned():
    got = ticket_holds(_comms(), BERLIN)
    # Ticket 3 names no known customer; ticket 4 holds nothing.
    assert list(got["ticket_id"]) == [1, 2]
    assert list(got["reason"]) == ["dispute", "payment_claimed"]
    assert list(got["invoice_id"].astype(object).where(got["invoice_id"].notna(), None)) == [105, None]
    assert list(got["since"]) == [pd.Timestamp("2026-03-01"), pd.Timestamp("2026-02-27")]  # 23:30 UTC: 1 March in Berlin
    assert pd.isna(got["until"].iloc[0]) and got["until"].iloc[1] == pd.Timestamp("2026-03-05")
    # A payment claim tells the accountant to check the bank; a dispute keeps the ticket's subject.
    assert list(got["note"]) == ["Wrong amount", "customer says paid, check the bank: Paid"]


def test_tables_written_before_hold_kind_hold_disputes_only():
    old = _comms().drop(columns=["hold_kind", "hold_until"])
    old["is_dispute"] = [False, True, True, None]  # unknown: not a dispute
    old.index = [20, 21, 22, 23]  # a slice of a larger frame
    got = ticket_holds(old, BERLIN)
    assert list(got["ticket_id"]) == [2] and list(got["reason"]) == ["dispute"]
    assert pd.isna(got["until"].iloc[0]) and got["note"].iloc[0] == "Paid"


def test_ticket_holds_keep_ids_as_nullable_integers():
    comms = _comms(promise_until=pd.to_datetime([None, "2026-03-12", None, None]))
    got = ticket_holds(comms, BERLIN)
    assert list(got["reason"]) == ["dispute", "payment_claimed", "promise"]
    for col in ("customer_id", "invoice_id", "ticket_id"):
        assert got[col].dtype == "Int64", col
    no_promises = ticket_holds(_comms(), BERLIN)
    assert [str(no_promises[c].dtype) for c in ("customer_id", "invoice_id", "ticket_id")] == ["Int64"] * 3
    only_promises = ticket_holds(_comms(hold_kind=[None] * 4, promise_until=comms["promise_until"]), BERLIN)
    assert [str(only_promises[c].dtype) for c in ("customer_id", "invoice_id", "ticket_id")] == ["Int64"] * 3


def test_a_payment_claim_without_subject_still_says_to_check_the_bank():
    got = ticket_holds(_comms(subject=[None, None, None, None]), BERLIN)
    assert list(got["note"]) == [None, "customer says paid, check the bank: "]


def test_a_promise_read_from_an_open_ticket_holds_from_the_day_the_ticket_was_opened():
    comms = _comms(hold_kind=[None] * 4,
                   promise_until=pd.to_datetime(["2026-03-10", "2026-03-12", "2026-03-10", None]),
                   is_open=[True, False, True, True],
                   ticket_created_at=pd.to_datetime(["2026-02-24 23:30:00"] + ["2026-02-24 10:00:00"] * 3))
    got = ticket_holds(comms, BERLIN)
    # Ticket 2 is closed, ticket 3 has no customer, ticket 4 no promise.
    assert list(got["ticket_id"]) == [1]
    hold = got.iloc[0]
    assert (hold["reason"], hold["invoice_id"], hold["customer_id"]) == ("promise", 105, 10)
    assert hold["since"] == pd.Timestamp("2026-02-25") and hold["until"] == pd.Timestamp("2026-03-10")
    assert hold["note"] == "Wrong amount"


# -- resolving the hold of each invoice ------------------------------------------------------------
def _receivables() -> pd.DataFrame:
    return pd.DataFrame({
        "invoice_id": [1, 2, 3, 4, 5],
        "customer_id": [10, 10, 10, 20, 20],
        "move_type": ["out_invoice", "out_invoice", "out_refund", "out_invoice", "out_invoice"],
        "receivable_status": ["open", "open", "open", "open", "open"],
        "payment_state": ["not_paid"] * 5,
        "write_date": pd.to_datetime(["2026-02-01"] * 5),
    }, index=[50, 51, 52, 53, 54])


def _hold(reason, since, *, invoice_id=None, customer_id=None, until=None, ticket_id=None, note=None):
    return {"customer_id": customer_id, "invoice_id": invoice_id, "reason": reason, "since": pd.Timestamp(since),
            "until": pd.Timestamp(until) if until else pd.NaT, "ticket_id": ticket_id, "note": note or reason}


def _candidates(*holds) -> pd.DataFrame:
    df = pd.DataFrame(list(holds))
    return df.astype({"customer_id": "Int64", "invoice_id": "Int64", "ticket_id": "Int64"})


def _resolve(candidates, receivables=None, covered=None, credit_since=None, as_of=AS_OF):
    recv = _receivables() if receivables is None else receivables
    got = resolve_holds(recv, candidates, covered, as_of, BERLIN, credit_since=credit_since)
    assert list(got.columns) == HOLD_COLUMNS and list(got.index) == list(recv.index)
    return got


def test_missing_or_empty_candidate_frames_are_skipped_not_the_end():
    dispute = _candidates(_hold("dispute", "2026-02-01", invoice_id=1))
    got = _resolve([None, dispute.iloc[:0], dispute])
    assert got["hold_reason"].to_dict() == {50: "dispute", 51: None, 52: None, 53: None, 54: None}


def test_nothing_held_gives_null_holds_for_every_receivable():
    got = _resolve([None, _candidates(_hold("dispute", "2026-02-01", invoice_id=1)).iloc[:0]])
    assert got["hold_reason"].isna().all() and got["hold_since"].isna().all()
    assert got["hold_until"].isna().all() and got["hold_ticket_id"].isna().all() and got["hold_note"].isna().all()


def test_a_customer_hold_covers_all_its_invoices_an_invoice_hold_one_and_credit_notes_none():
    got = _resolve([_candidates(_hold("exclusion", "2026-02-10", customer_id=10, note="insolvent"),
                                _hold("dispute", "2026-02-20", invoice_id=4, ticket_id=7, note="Wrong amount"))])
    assert got["hold_reason"].to_dict() == {50: "exclusion", 51: "exclusion", 52: None, 53: "dispute", 54: None}
    assert got.loc[53, "hold_ticket_id"] == 7 and got.loc[53, "hold_note"] == "Wrong amount"
    assert got.loc[50, "hold_note"] == "insolvent" and pd.isna(got.loc[50, "hold_ticket_id"])
    assert got.loc[50, "hold_since"] == pd.Timestamp("2026-02-10")


def test_the_first_hold_in_priority_names_it_and_the_earliest_start_freezes_the_stage():
    got = _resolve([_candidates(
        _hold("promise", "2026-02-01", invoice_id=1, until="2026-03-20", note="promised"),
        _hold("dispute", "2026-02-15", invoice_id=1, ticket_id=9, note="disputed"),
        _hold("payment_claimed", "2026-02-25", invoice_id=2, until="2026-03-04"),
        _hold("promise", "2026-02-20", invoice_id=2, until="2026-03-20"),
        _hold("exclusion", "2026-02-28", invoice_id=4),
        _hold("dispute", "2026-02-05", invoice_id=4, ticket_id=3),
    )])
    assert got.loc[50, "hold_reason"] == "dispute" and got.loc[50, "hold_ticket_id"] == 9
    assert got.loc[50, "hold_note"] == "disputed" and pd.isna(got.loc[50, "hold_until"])
    assert got.loc[50, "hold_since"] == pd.Timestamp("2026-02-01")  # the promise began first
    assert got.loc[51, "hold_reason"] == "payment_claimed" and got.loc[51, "hold_until"] == pd.Timestamp("2026-03-04")
    assert got.loc[51, "hold_since"] == pd.Timestamp("2026-02-20")
    assert got.loc[53, "hold_reason"] == "exclusion" and got.loc[53, "hold_since"] == pd.Timestamp("2026-02-05")


def test_of_two_holds_of_one_kind_the_earlier_names_it_then_the_lower_ticket():
    got = _resolve([_candidates(
        _hold("dispute", "2026-02-20", invoice_id=1, ticket_id=5, note="later"),
        _hold("dispute", "2026-02-10", invoice_id=1, ticket_id=8, note="earlier"),
        _hold("dispute", "2026-02-10", invoice_id=2, ticket_id=8, note="eight"),
        _hold("dispute", "2026-02-10", invoice_id=2, ticket_id=6, note="six"),
        _hold("promise", "2026-02-10", invoice_id=4, until="2026-03-20", note="entered by hand"),
        _hold("promise", "2026-02-10", invoice_id=4, until="2026-03-20", ticket_id=4, note="on the ticket"),
    )])
    assert got.loc[53, "hold_note"] == "on the ticket"  # a hold without a ticket comes after those with one
    assert (got.loc[50, "hold_ticket_id"], got.loc[50, "hold_note"]) == (8, "earlier")
    assert (got.loc[51, "hold_ticket_id"], got.loc[51, "hold_note"]) == (6, "six")


def test_a_hold_lasts_through_its_until_day_and_a_start_in_the_future_counts_as_today():
    got = _resolve([_candidates(
        _hold("promise", "2026-02-01", invoice_id=1, until="2026-03-02"),
        _hold("promise", "2026-02-01", invoice_id=2, until="2026-03-01"),
        _hold("dispute", "2026-03-09", invoice_id=4),
    )])
    assert got.loc[50, "hold_reason"] == "promise" and got.loc[50, "hold_until"] == pd.Timestamp("2026-03-02")
    assert got.loc[51, "hold_reason"] is None  # expired the day before
    assert got.loc[53, "hold_since"] == DAY


def test_in_payment_and_blocked_invoices_are_held_since_odoo_last_changed_them():
    recv = _receivables()
    recv["receivable_status"] = ["in_payment", "open", "open", "open", "in_payment"]
    recv["payment_state"] = ["in_payment", "blocked", "not_paid", "blocked", "in_payment"]
    # 23:30 UTC on 25 Feb is 26 Feb in Berlin; a change dated after the as-of day counts as today.
    recv["write_date"] = pd.to_datetime(["2026-02-25 23:30:00", "2026-02-19 23:30:00", "2026-02-01 10:00:00",
                                         "2026-03-05 10:00:00", None])
    got = _resolve([], receivables=recv)
    assert got["hold_reason"].to_dict() == {50: "in_payment", 51: "blocked", 52: None, 53: "blocked", 54: "in_payment"}
    assert got.loc[50, "hold_since"] == pd.Timestamp("2026-02-26")
    assert got.loc[51, "hold_since"] == pd.Timestamp("2026-02-20")
    assert got.loc[53, "hold_since"] == DAY and got.loc[54, "hold_since"] == DAY
    assert got.loc[50, "hold_note"] == "payment registered, not yet reconciled"
    assert got.loc[51, "hold_note"] == "payment blocked in Odoo (still owed)"


def test_when_every_invoice_is_blocked_all_are_held_and_tables_without_the_column_hold_none():
    recv = _receivables()
    recv["payment_state"] = "blocked"
    assert _resolve([], receivables=recv)["hold_reason"].to_dict() == \
        {50: "blocked", 51: "blocked", 52: None, 53: "blocked", 54: "blocked"}
    assert _resolve([], receivables=recv.drop(columns=["payment_state"]))["hold_reason"].isna().all()


def test_in_payment_ranks_before_net_credit_and_blocked():
    recv = _receivables()
    recv["receivable_status"] = ["in_payment", "open", "open", "open", "open"]
    recv["payment_state"] = ["blocked", "blocked", "not_paid", "not_paid", "not_paid"]
    covered = pd.Series([True, True, False, False, False], index=recv.index)
    got = _resolve([], receivables=recv, covered=covered)
    assert got.loc[50, "hold_reason"] == "in_payment" and got.loc[51, "hold_reason"] == "net_credit"


def test_an_invoice_covered_by_credit_notes_is_held_since_the_credit_was_there():
    covered = pd.Series([True, True, True, False, True], index=_receivables().index)
    credit_since = pd.Series(pd.to_datetime(["2026-02-15", None, "2026-02-10", None, "2026-03-08"]),
                             index=_receivables().index)
    got = _resolve([], covered=covered, credit_since=credit_since)
    # The credit note itself (52) is never held; a missing or future start counts as today.
    assert got["hold_reason"].to_dict() == {50: "net_credit", 51: "net_credit", 52: None, 53: None, 54: "net_credit"}
    assert got.loc[50, "hold_since"] == pd.Timestamp("2026-02-15")
    assert got.loc[51, "hold_since"] == DAY and got.loc[54, "hold_since"] == DAY
    assert got.loc[50, "hold_note"] == "open credit notes cover this invoice"
    without_dates = _resolve([], covered=covered)
    assert without_dates.loc[50, "hold_since"] == DAY


def test_covered_flags_for_other_rows_only_hold_nothing():
    assert _resolve([], covered=pd.Series([False] * 5, index=_receivables().index))["hold_reason"].isna().all()
    # Flags for some rows only (here the credit note): the rest are not covered.
    assert _resolve([], covered=pd.Series([True], index=[52]))["hold_reason"].isna().all()


def test_a_candidate_without_a_start_is_held_from_the_as_of_day():
    # A manual row without its entry time (manual_holds leaves `since` empty) still freezes the stage.
    got = _resolve([_candidates(_hold("exclusion", "2026-02-01", invoice_id=1) | {"since": pd.NaT},
                                _hold("dispute", "2026-02-10", invoice_id=2, ticket_id=12))])
    assert got.loc[50, "hold_reason"] == "exclusion" and got.loc[50, "hold_since"] == DAY
    assert str(got["hold_ticket_id"].dtype) == "Int64" and got.loc[51, "hold_ticket_id"] == 12

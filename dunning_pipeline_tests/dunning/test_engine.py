"""The engine on a small hand-made dataset (dataset.py): every expected bucket, stage, hold and
net balance written out by hand, and two nights of history a week apart."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dunning_pipeline.dunning import aging as aging_mod
from dunning_pipeline.dunning.engine import UTC_ZONE as UTC, run_night
from dunning_pipeline.dunning.holds import HoldError, validate_manual_holds
from dunning_pipeline.dunning.policy import load_policy, parse_policy
from dunning_pipeline.money import to_units

from . import dataset as D

POLICY = load_policy()


def u(amount: str) -> int:
    return to_units(amount)


@pytest.fixture(scope="module")
def night1():
    return run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, tickets=D.tickets(), users=D.users(),
                     comments=D.comments(), manual_holds=D.manual_holds(), quarantine=D.quarantine(), run_id="n1")


# invoice: (bucket, stage by the calendar, stage in effect, hold, status, net residual after credit notes)
EXPECTED_NIGHT1 = {
    101: ("current", "pre_due", "pre_due", None, "dunned", "100.00"),          # due in 3 days
    102: ("1-30", "reminder_1", "reminder_1", None, "dunned", "250.50"),       # 1 day, partially paid
    103: ("1-30", "reminder_2", "reminder_2", None, "dunned", "80.00"),        # 8 days
    104: ("1-30", "call", "call", None, "dunned", "900.00"),                   # 15 days, USD, 900 EUR
    105: ("31-60", "final_notice", "call", "dispute", "on_hold", "70.00"),     # named in a comment on 02-28 (29 days)
    106: ("31-60", "collection", "final_notice", "dispute", "on_hold", "60.00"),  # ticket of 02-20 (35 days)
    107: ("90+", "collection", "collection", "in_payment", "on_hold", None),   # payment on its way since 02-27
    108: ("current", None, None, None, "not_in_dunning", "30.00"),            # due in 8 days
    112: ("current", None, None, None, "not_in_dunning", "0.02"),             # 0.02 is above the 0.01 tolerance
    201: ("1-30", "reminder_1", None, "dispute", "on_hold", "5000.00"),      # key account; disputed before its first stage
    301: ("1-30", "call", "call", "net_credit", "on_hold", "0.00"),           # covered by credit note 303
    302: ("1-30", "reminder_2", "reminder_2", None, "dunned", "100.00"),     # 100 of 200 covered
    303: ("1-30", None, None, None, "credit_note", None),
    351: ("1-30", "call", "call", "net_credit", "on_hold", "0.00"),           # credit 150 > overdue 100
    352: ("1-30", None, None, None, "credit_note", None),
    401: ("1-30", "reminder_2", "reminder_1", "promise", "on_hold", "120.00"),  # promised on 02-25 (5 days)
    501: ("31-60", "collection", "reminder_2", "exclusion", "on_hold", "999.99"),  # excluded on 01-10 (9 days)
}

# customer: (overdue balance, open credit, net overdue balance, highest stage of dunned invoices)
EXPECTED_CUSTOMERS = {
    10: ("1360.50", "0", "1360.50", "call"),   # 102+103+104(900 EUR)+105+106; 107 is in payment
    20: ("5000.00", "0", "5000.00", None),
    30: ("500.00", "-400.00", "100.00", "reminder_2"),
    35: ("100.00", "-150.00", "-50.00", None),   # net not positive: not dunned
    40: ("120.00", "0", "120.00", None),
    50: ("999.99", "0", "999.99", None),
}


def test_receivables_are_the_open_posted_moves_per_commercial_partner(night1):
    recv = night1.receivables.set_index("invoice_id")
    assert sorted(recv.index) == sorted(EXPECTED_NIGHT1)  # 109 paid, 110 draft, 111 at tolerance, 113 cancelled
    assert recv.loc[101, "customer_id"] == 10 and recv.loc[101, "partner_id"] == 11  # a contact's invoice
    assert recv.loc[107, "receivable_status"] == "in_payment"
    assert recv.loc[303, "amount_residual"] == -u("400.00")
    assert recv.loc[104, "amount_residual"] == u("1000.00") and recv.loc[104, "amount_residual_company"] == u("900.00")
    assert recv.loc[201, "segment"] == "key_accounts" and recv.loc[201, "policy"] == "key_accounts"
    assert recv.loc[101, "segment"] == "default" and recv.loc[101, "customer_name"] == "Acme GmbH"
    excluded = night1.excluded.set_index("invoice_id")
    assert excluded["reason"].to_dict() == {601: "quarantined", 602: "quarantined"}
    assert excluded.loc[601, "detail"] == "customer held back by a data-quality check"


def test_every_invoice_has_the_expected_bucket_stage_hold_and_net(night1):
    aging = night1.aging.set_index("invoice_id")
    got = {
        i: (r.aging_bucket, r.due_stage, r.stage, None if pd.isna(r.hold_reason) else r.hold_reason,
            r.dunning_status, None if pd.isna(r.net_residual_company) else r.net_residual_company)
        for i, r in aging.iterrows()
    }
    expected = {i: (*e[:5], None if e[5] is None else u(e[5])) for i, e in EXPECTED_NIGHT1.items()}
    assert got == expected


def test_hold_details(night1):
    aging = night1.aging.set_index("invoice_id")
    assert aging.loc[106, "hold_ticket_id"] == 9001
    assert aging.loc[105, "hold_ticket_id"] == 9005
    assert aging.loc[105, "hold_since"] == pd.Timestamp("2026-02-28")
    assert aging.loc[201, "hold_ticket_id"] == 9003  # a dispute tag, no number: the whole customer
    assert aging.loc[401, "hold_until"] == pd.Timestamp("2026-03-10")
    assert aging.loc[401, "hold_note"] == "Promised on the phone (jane)"
    assert aging.loc[501, "hold_since"] == pd.Timestamp("2026-01-10") and pd.isna(aging.loc[501, "hold_until"])
    assert aging.loc[107, "hold_since"] == pd.Timestamp("2026-02-27")
    assert aging.loc[301, "hold_since"] == pd.Timestamp("2026-02-25")  # the credit note's date
    assert aging.loc[201, "manual_only"] is pd.NA or pd.isna(aging.loc[201, "manual_only"])  # no stage yet
    assert aging.loc[104, "action"] == "call" and aging.loc[106, "action"] == "letter"


def test_stage_rank_is_the_position_of_the_stage_in_effect_in_its_ladder(night1):
    ranks = night1.aging.set_index("invoice_id")["stage_rank"]
    # from 0 (pre_due) to 5 (collection); null without a stage in effect, and for credit notes
    assert ranks.dropna().to_dict() == {101: 0, 102: 1, 103: 2, 104: 3, 105: 3, 106: 4, 107: 5, 301: 3,
                                        302: 2, 351: 3, 401: 1, 501: 2}
    assert ranks.isna().sum() == 5  # 108, 112, 201, 303, 352
    assert str(ranks.dtype) == "Int64"


def test_every_invoice_carries_its_customers_last_contacts(night1):
    aging = night1.aging.set_index("invoice_id")
    contacts = aging[["customer_last_inbound_at", "customer_last_outbound_at"]]
    # Acme: its comment of 02-28 16:00 and our reply of 03-01 10:00 (9005); Beta: its ticket 9003
    assert contacts.loc[[101, 107]].to_numpy().tolist() == [
        [pd.Timestamp("2026-02-28 16:00:00"), pd.Timestamp("2026-03-01 10:00:00")]] * 2
    assert contacts.loc[201, "customer_last_inbound_at"] == pd.Timestamp("2026-02-10 12:00:00")
    assert pd.isna(contacts.loc[201, "customer_last_outbound_at"])
    assert contacts.loc[[301, 401, 501]].isna().all().all()  # no tickets
    assert (contacts.dtypes == "datetime64[us]").all()


def test_customer_level_netting_and_highest_stage(night1):
    aging = night1.aging.drop_duplicates("customer_id").set_index("customer_id")
    got = {c: (r.customer_overdue_company, r.customer_credit_company, r.customer_net_overdue_company,
               None if pd.isna(r.customer_stage) else r.customer_stage) for c, r in aging.iterrows()}
    assert got == {c: (u(a), u(b), u(n), s) for c, (a, b, n, s) in EXPECTED_CUSTOMERS.items()}


def test_bucket_totals_per_currency_reconcile(night1):
    totals = aging_mod.bucket_totals(night1.aging, POLICY.all_bucket_labels()).set_index("currency")
    assert totals.loc["EUR"].to_dict() == {
        "current": u("130.02"), "1-30": u("5500.50"), "31-60": u("1129.99"), "61-90": 0, "90+": u("40.00"),
        "total": u("6800.51")}
    assert totals.loc["USD", "1-30"] == u("1000.00") and totals.loc["USD", "total"] == u("1000.00")
    md = aging_mod.bucket_totals_markdown(totals.reset_index(), pd.Series({"EUR": u("6800.51"), "USD": u("1000.00")}))
    assert "| EUR | 130.02 | 5,500.50 | 1,129.99 | 0.00 | 40.00 | 6,800.51 | 6,800.51 | yes |" in md
    md_bad = aging_mod.bucket_totals_markdown(totals.reset_index(), pd.Series({"EUR": u("6800.50"), "USD": u("1000")}))
    assert "| 6,800.51 | 6,800.50 | **NO** |" in md_bad


def test_tickets_are_matched_to_customers_and_invoices(night1):
    comms = night1.communications
    by_ticket = comms.drop_duplicates("ticket_id").set_index("ticket_id")
    assert by_ticket["match_method"].to_dict() == {
        9001: "requester_email", 9002: "domain", 9003: "requester_email", 9004: "unmatched",
        9005: "requester_email"}  # 9006 was created after the as-of day
    assert by_ticket["customer_id"].astype("float").fillna(-1).to_dict() == {
        9001: 10, 9002: 10, 9003: 20, 9004: -1, 9005: 10}
    named = comms[comms["invoice_id"].notna()].set_index("ticket_id")["invoice_id"].to_dict()
    assert named == {9001: 106, 9002: 103, 9005: 105}  # 9004 names 102 but is from nobody we know
    disputes = comms[comms["is_dispute"]].set_index("ticket_id")["dispute_scope"].to_dict()
    assert disputes == {9001: "invoice", 9003: "customer", 9005: "invoice"}  # 9002 is solved
    acme = by_ticket.loc[9005]
    assert acme["customer_last_inbound_at"] == pd.Timestamp("2026-02-28 16:00:00")
    assert acme["customer_last_outbound_at"] == pd.Timestamp("2026-03-01 10:00:00")  # the 09:00 note is internal


def test_first_night_history_enters_every_staged_invoice_once(night1):
    rows = night1.rows.set_index("invoice_id")
    got = {i: (None if pd.isna(r.from_stage) else r.from_stage, r.to_stage, r.reason, r.stages_skipped,
               None if pd.isna(r.hold_reason) else r.hold_reason) for i, r in rows.iterrows()}
    assert got == {
        101: (None, "pre_due", "days_overdue", 0, None),
        102: (None, "reminder_1", "days_overdue", 1, None),
        103: (None, "reminder_2", "days_overdue", 2, None),
        104: (None, "call", "days_overdue", 3, None),
        105: (None, "call", "hold", 3, "dispute"),
        106: (None, "final_notice", "hold", 4, "dispute"),
        107: (None, "collection", "hold", 5, "in_payment"),
        301: (None, "call", "hold", 3, "net_credit"),
        302: (None, "reminder_2", "days_overdue", 2, None),
        351: (None, "call", "hold", 3, "net_credit"),
        401: (None, "reminder_1", "hold", 1, "promise"),
        501: (None, "reminder_2", "hold", 2, "exclusion"),
    }
    assert (night1.rows["as_of_date"] == pd.Timestamp(D.AS_OF)).all() and (night1.rows["run_id"] == "n1").all()
    assert rows.loc[104, "amount_residual"] == u("1000.00") and rows.loc[104, "amount_residual_company"] == u("900.00")
    assert rows.loc[106, "ticket_id"] == 9001


def _week_later():
    inv = D.invoices().set_index("id")
    inv.loc[102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    inv.loc[103, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["partial", u("0.01"), u("0.01")]
    inv.loc[104, "state"] = "cancel"
    inv.loc[107, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    inv.loc[352, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    inv = inv.reset_index()
    late = D.invoices().iloc[[0]].assign(id=114, name="INV/2026/00114", invoice_date_due=pd.Timestamp("2026-01-20"),
                                          amount_residual=u("45.00"), amount_residual_signed=u("45.00"))
    tickets = D.tickets()
    tickets.loc[tickets["id"] == 9001, "status"] = "solved"
    return pd.concat([inv, late], ignore_index=True), tickets


def test_a_week_later_one_row_per_change_with_jumps_and_closures(night1):
    invoices, tickets = _week_later()
    as_of = date(2026, 3, 9)
    night2 = run_night(invoices, D.customers(), POLICY, as_of, night1.state, tickets=tickets, users=D.users(),
                       comments=D.comments(), manual_holds=D.manual_holds(), quarantine=D.quarantine(), run_id="n2")
    rows = night2.rows.set_index("invoice_id")
    got = {i: (None if pd.isna(r.from_stage) else r.from_stage, r.to_stage, r.reason, r.stages_skipped)
           for i, r in rows.iterrows()}
    assert got == {
        101: ("pre_due", "pre_due", "hold", 0),              # disputed by 9006 on 03-03, frozen at pre_due
        102: ("reminder_1", "closed", "paid", 0),
        103: ("reminder_2", "closed", "paid", 0),            # 0.01 left: settled within the tolerance
        104: ("call", "closed", "cancelled", 0),
        106: ("final_notice", "collection", "released", 0),  # dispute ticket solved: straight to its calendar stage
        107: ("collection", "closed", "paid", 0),
        108: (None, "pre_due", "days_overdue", 0),           # due tomorrow
        114: (None, "collection", "days_overdue", 5),        # a late invoice enters at its stage, the jump recorded
        302: ("reminder_2", "call", "days_overdue", 0),
        351: ("call", "call", "released", 0),                # its credit note was refunded: dunned again
    }
    assert rows.loc[102, "amount_residual"] == 0 and rows.loc[102, "customer_id"] == 10
    assert bool(rows.loc[106, "on_hold"]) is False and pd.isna(rows.loc[106, "hold_reason"])
    # 105 (still disputed), 401 (promise until 03-10), 501 (excluded) stay frozen: no rows.
    aging = night2.aging.set_index("invoice_id")
    assert aging.loc[401, ["due_stage", "stage"]].tolist() == ["call", "reminder_1"]
    assert aging.loc[105, ["due_stage", "stage"]].tolist() == ["final_notice", "call"]  # 38 days

    again = run_night(invoices, D.customers(), POLICY, as_of, night2.state, tickets=tickets, users=D.users(),
                      comments=D.comments(), manual_holds=D.manual_holds(), quarantine=D.quarantine(), run_id="n2b")
    assert again.rows.empty  # the same day again adds nothing


def test_promise_ends_the_day_after_its_date(night1):
    as_of = date(2026, 3, 11)
    night = run_night(D.invoices(), D.customers(), POLICY, as_of, night1.state, manual_holds=D.manual_holds(),
                      quarantine=D.quarantine())
    row = night.rows.set_index("invoice_id").loc[401]
    assert (row["from_stage"], row["to_stage"], row["reason"]) == ("reminder_1", "call", "released")  # 19 days


def test_quarantined_invoice_in_dunning_is_left_as_it_was(night1):
    quarantine = pd.concat([D.quarantine(), D.quarantine().iloc[[1]].assign(record_id=103)], ignore_index=True)
    night = run_night(D.invoices(), D.customers(), POLICY, date(2026, 3, 3), night1.state, quarantine=quarantine)
    assert 103 not in set(night.aging["invoice_id"])
    assert 103 not in set(night.rows["invoice_id"])  # not closed: it is not paid, only held back
    # Spoiled as the checks see it (a payment state no rule knows), it would look settled: still
    # held back, not closed, because the night passes its quarantined ids to the history.
    spoiled = D.invoices()
    spoiled.loc[spoiled["id"] == 103, "payment_state"] = "??"
    night = run_night(spoiled, D.customers(), POLICY, date(2026, 3, 3), night1.state, quarantine=quarantine)
    assert 103 not in set(night.aging["invoice_id"]) and 103 not in set(night.rows["invoice_id"])


def test_bad_manual_holds_are_refused_naming_row_and_field():
    bad = D.manual_holds()
    bad.loc[0, "kind"] = "pause"
    with pytest.raises(HoldError, match=r"dunning_holds row id=1: field 'kind' is 'pause', expected one of promise, exclusion"):
        validate_manual_holds(bad)
    bad = D.manual_holds()
    bad.loc[0, "until"] = None
    with pytest.raises(HoldError, match=r"row id=1: a promise needs field 'until'"):
        validate_manual_holds(bad)
    bad = D.manual_holds()
    bad.loc[1, "customer_id"] = None
    with pytest.raises(HoldError, match=r"row id=2: fields 'customer_id' and 'invoice_id' are both empty"):
        validate_manual_holds(bad)


def test_policy_change_and_moved_due_date_are_recorded_as_such(night1):
    customers = D.customers()
    customers.loc[customers["id"] == 10, "tags"] = '["VIP"]'  # Acme becomes a key account
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 302, "invoice_date_due"] = pd.Timestamp("2026-03-20")  # new payment terms
    night = run_night(invoices, customers, POLICY, date(2026, 3, 3), night1.state, quarantine=D.quarantine())
    rows = night.rows.set_index("invoice_id")
    # key accounts: reminder_1 from day 15, so 103 (9 days) falls back before it; 104 (16 days) stays
    assert tuple(rows.loc[103, ["from_stage", "to_stage", "reason"]]) == ("reminder_2", "pre_due", "policy_change")
    assert tuple(rows.loc[104, ["from_stage", "to_stage", "reason"]]) == ("call", "reminder_1", "policy_change")
    assert rows.loc[104, "policy"] == "key_accounts" and bool(rows.loc[104, "manual_only"]) is True
    # 302 is no longer due for 17 days: out of its ladder ('none'), because the due date moved
    assert tuple(rows.loc[302, ["from_stage", "to_stage", "reason"]]) == ("reminder_2", "none", "due_date_changed")
    assert pd.isna(rows.loc[302, "action"])


def test_promises_read_from_open_tickets_when_the_policy_asks():
    text = open(POLICY.source, encoding="utf-8").read().replace(
        "promise_pattern: null", "promise_pattern: 'pay (?:on|by) (?P<date>\\d{4}-\\d{2}-\\d{2})'")
    with_promises = parse_policy(text, source="promises.yaml")
    assert POLICY.holds.promise_pattern is None and with_promises.holds.promise_pattern
    comments = pd.concat([D.comments(), pd.DataFrame([{
        "id": 7, "ticket_id": 9003, "author_id": 7003, "public": True, "body": "We will pay by 2026-03-20.",
        "via_channel": "email", "created_at": pd.Timestamp("2026-02-27 10:00:00"), "extracted_at": pd.Timestamp("2026-03-02")}])])
    night = run_night(D.invoices(), D.customers(), with_promises, D.AS_OF, tickets=D.tickets(), users=D.users(),
                      comments=comments, quarantine=D.quarantine())
    comms = night.communications.set_index("ticket_id")
    assert comms.loc[9003, "promise_until"] == pd.Timestamp("2026-03-20")
    beta = night.aging.set_index("invoice_id").loc[201]
    # the dispute (same ticket) outranks the promise; both hold, the earliest start freezes the stage
    assert beta["hold_reason"] == "dispute" and beta["hold_since"] == pd.Timestamp("2026-02-10")
    tickets = D.tickets()
    tickets.loc[tickets["id"] == 9003, "tags"] = '["billing"]'  # no longer a dispute: the promise remains
    night = run_night(D.invoices(), D.customers(), with_promises, D.AS_OF, tickets=tickets, users=D.users(),
                      comments=comments, quarantine=D.quarantine())
    beta = night.aging.set_index("invoice_id").loc[201]
    assert (beta["hold_reason"], beta["hold_until"], beta["hold_ticket_id"]) == ("promise", pd.Timestamp("2026-03-20"), 9003)


def test_organization_and_sender_address_match_tickets_to_customers():
    users = pd.concat([D.users(), pd.DataFrame([
        {"id": 7100, "email": "cfo@gamma-holding.example", "name": "cfo", "organization_id": 55, "role": "end-user"},
        {"id": 7101, "email": "finance@gamma.example", "name": "fin", "organization_id": 55, "role": "end-user"},
        {"id": 7102, "email": None, "name": "phone caller", "organization_id": None, "role": "end-user"},
    ])], ignore_index=True)
    tickets = pd.concat([D.tickets(), pd.DataFrame([
        {"id": 9100, "status": "open", "subject": "INV/2026/00302 wrong VAT", "description": "", "requester_id": 7100,
         "organization_id": 55, "tags": "[]", "via_channel": "email", "from_address": None,
         "created_at": pd.Timestamp("2026-02-27 08:00:00"), "updated_at": pd.Timestamp("2026-02-27 08:00:00")},
        {"id": 9101, "status": "open", "subject": "Hello", "description": "", "requester_id": 7102,
         "organization_id": None, "tags": "[]", "via_channel": "email", "from_address": "AR@delta.example",
         "created_at": pd.Timestamp("2026-02-27 08:00:00"), "updated_at": pd.Timestamp("2026-02-27 08:00:00")},
    ])], ignore_index=True)
    night = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, tickets=tickets, users=users,
                      comments=D.comments(), quarantine=D.quarantine())
    comms = night.communications.set_index("ticket_id")
    assert (comms.loc[9100, "customer_id"], comms.loc[9100, "match_method"]) == (30, "organization")
    assert (comms.loc[9101, "customer_id"], comms.loc[9101, "match_method"]) == (40, "sender_email")
    assert night.aging.set_index("invoice_id").loc[302, "hold_reason"] == "dispute"


# run_night's own arguments: each is passed on to the step that needs it. These tests run their
# own nights (not the module's night1), so that mutation testing credits each of them.

def test_a_night_without_the_optional_inputs():
    night = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF)
    assert night.communications is None  # no tickets given: no communications, not an empty table
    assert (night.receivables["as_of_date"] == pd.Timestamp(D.AS_OF)).all()
    assert {601, 602} <= set(night.receivables["invoice_id"]) and night.excluded.empty  # no quarantine
    # without run id and clock: the rows are marked as in-memory and recorded at the as-of midnight
    assert (night.aging["run_id"] == "in-memory").all() and (night.rows["run_id"] == "in-memory").all()
    assert (night.rows["recorded_at"] == pd.Timestamp("2026-03-02 00:00:00")).all()
    aging = night.aging.set_index("invoice_id")
    assert aging.loc[401, "stage"] == "reminder_2" and pd.isna(aging.loc[401, "hold_reason"])  # no promise: 10 days


def test_run_id_and_recorded_at_reach_every_table_of_the_night():
    at = datetime(2026, 3, 2, 23, 15)
    night = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, quarantine=D.quarantine(), run_id="night-7",
                      recorded_at=at)
    assert not night.rows.empty and not night.instalments.empty
    for table in (night.aging, night.instalments, night.rows):
        assert (table["run_id"] == "night-7").all()
    assert (night.rows["recorded_at"] == pd.Timestamp(at)).all()


def test_the_local_zone_decides_which_day_a_timestamp_belongs_to():
    honolulu = ZoneInfo("Pacific/Honolulu")  # UTC-10: 08:00 UTC on 03-03 is still the evening of 03-02
    night = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, tickets=D.tickets(), users=D.users(),
                      comments=D.comments(), quarantine=D.quarantine(), tz=honolulu)
    assert 9006 in set(night.communications["ticket_id"])  # created 03-03 08:00 UTC: 03-02 in Honolulu
    aging = night.aging.set_index("invoice_id")
    assert (aging.loc[101, "hold_reason"], aging.loc[101, "hold_ticket_id"]) == ("dispute", 9006)
    # 107's payment came on 02-27 09:30 UTC, the evening of 02-26 in Honolulu
    assert aging.loc[107, "hold_since"] == pd.Timestamp("2026-02-26")

    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9: 20:00 UTC on 03-02 is already 03-03
    late_hold = D.manual_holds().iloc[[0]].assign(id=9, invoice_id=103, kind="exclusion", until=None,
                                                  created_at=pd.Timestamp("2026-03-02 20:00:00"))
    held = {tz.key: run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, manual_holds=late_hold, tz=tz)
            .aging.set_index("invoice_id").loc[103, "hold_reason"] for tz in (UTC, tokyo)}
    assert held["UTC"] == "exclusion" and pd.isna(held["Asia/Tokyo"])  # not entered yet on 03-02 in Tokyo


def test_a_hold_on_a_contact_holds_its_company():
    on_contact = D.manual_holds().iloc[[1]].assign(customer_id=11)  # Anna, a contact of Acme (10)
    aging = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, manual_holds=on_contact,
                      quarantine=D.quarantine()).aging
    acme = aging[(aging["customer_id"] == 10) & (aging["move_type"] == "out_invoice")]
    assert len(acme) == 9 and (acme["hold_reason"] == "exclusion").all()


def test_a_hold_dated_back_keeps_the_stage_recorded_the_night_before():
    first = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, quarantine=D.quarantine())
    assert first.state.set_index("invoice_id").loc[103, "stage"] == "reminder_2"
    # entered on 03-03, effective from 02-20: frozen as of then (before its due date, pre_due),
    # but a hold never lowers a stage the history has recorded
    hold = D.manual_holds().iloc[[1]].assign(customer_id=None, invoice_id=103, effective_date=pd.Timestamp("2026-02-20"),
                                             created_at=pd.Timestamp("2026-03-03 09:00:00"))
    night = run_night(D.invoices(), D.customers(), POLICY, date(2026, 3, 3), first.state, manual_holds=hold,
                      quarantine=D.quarantine())
    row = night.aging.set_index("invoice_id").loc[103]
    assert (row["hold_reason"], row["hold_since"], row["stage"]) == ("exclusion", pd.Timestamp("2026-02-20"), "reminder_2")


def test_the_exclusions_of_receivables_and_aging_are_one_table():
    undated = D.invoices().iloc[[0]].assign(id=99, name="INV/2026/00099", invoice_date=pd.NaT, invoice_date_due=pd.NaT)
    invoices = pd.concat([D.invoices(), undated], ignore_index=True)
    night = run_night(invoices, D.customers(), POLICY, D.AS_OF, quarantine=D.quarantine())
    assert night.excluded[["invoice_id", "reason"]].values.tolist() == [
        [602, "quarantined"], [601, "quarantined"], [99, "no_due_date"]]  # invoices' checks, customers', undated
    assert list(night.excluded.index) == [0, 1, 2]  # one row per label: 99 was row 0 of the aging

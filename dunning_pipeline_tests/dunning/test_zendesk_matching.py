"""Who wrote a Zendesk ticket, and what they meant: one real-shaped case per row.

Each case is a ticket (with its comments and any extra users) added to a small ledger of four
customers in two companies, and what the engine must make of it: the customer, how it was
matched, the invoices the ticket names, and the hold each of them gets (`*`: the whole
customer). The shapes are those of real accounts (forwarded mail, bookkeepers writing with
the customer in CC, merges, our own reminders and notes, numbers as people write them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dunning_pipeline.dunning.communications import COLUMNS, build_communications, empty_communications
from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import PolicyError, load_policy, parse_policy

POLICY = load_policy()
AS_OF = date(2026, 3, 2)
UTC = ZoneInfo("UTC")
DISPUTE_FIELD = 360001


def _policy_with(old: str, new: str, name: str):
    text = open(POLICY.source, encoding="utf-8").read()
    assert old in text
    return parse_policy(text.replace(old, new), source=name)


WITH_FIELD = _policy_with("dispute_field_ids: []", f"dispute_field_ids: [{DISPUTE_FIELD}]", "field.yaml")
HOLD_ON_WORDS_ONLY = _policy_with("customer_mention_hold: dispute", "customer_mention_hold: none", "words.yaml")


# What an accountant may well write in a reminder: dispute words and the invoice number.
SENT_REMINDER = ("Dear Acme team,\n\ninvoice INV/2025/00054 is overdue. If you dispute it or the amount is "
                 "incorrect, tell us; otherwise please pay it this week.\n\nJane, accounts receivable")


# -- the ledger ---------------------------------------------------------------------------------
def customers() -> pd.DataFrame:
    def c(id_, name, email, parent=None):
        return {"id": id_, "name": name, "email": email, "commercial_partner_id": parent or id_}
    return pd.DataFrame([
        c(10, "Acme GmbH", "ap@acme.example"), c(11, "Anna Acme", "anna@acme.example", parent=10),
        c(20, "Bravo SARL", "compta@bravo.example"), c(30, "Cäsar AG", "buchhaltung@caesar.example"),
        c(40, "Delta Ltd", "ar@delta.example"),
    ])


def invoices() -> pd.DataFrame:
    def i(id_, name, customer, company=1):
        return {"id": id_, "name": name, "state": "posted", "partner_id": customer,
                "commercial_partner_id": customer, "company_id": company}
    return pd.DataFrame([
        i(1054, "INV/2025/00054", 10), i(1055, "INV/2025/00055", 10), i(1099, "INV/2026/00099", 10),
        i(2001, "INV/2026/00201", 20), i(3001, "INV/2026/00301", 30), i(4001, "INV/2026/00401", 40),
        i(2054, "INV/2025/00054", 40, company=2),  # the same number in our second company, Delta's
    ])


def users() -> pd.DataFrame:
    def u(id_, email, role="end-user", org=None, active=True):
        return {"id": id_, "email": email, "organization_id": org, "role": role, "active": active,
                "suspended": False}
    return pd.DataFrame([
        u(8001, "jane@ourco.example", role="agent"),
        u(8002, "old.agent@ourco.example", active=False),  # a former agent, downgraded and deleted
        u(7001, "anna@acme.example", org=501), u(7002, "ap@acme.example", org=501),
        u(7003, "compta@bravo.example"), u(7004, "buchhaltung@caesar.example"),
        u(7005, "bookkeeper@kanzlei-berg.example"),  # an outside bookkeeper
        u(7006, None),                               # a phone contact: no email
        u(7007, "ar@delta.example"),
        u(7008, "old.contact@acme.example", active=False),  # a contact who left the customer
        u(7009, "ap@logistics.acme.example"),        # the customer's subsidiary
    ])


@dataclass
class Case:
    name: str
    ticket: dict
    comments: list[dict] = field(default_factory=list)
    customer: int | None = None
    method: str = "unmatched"
    named: set[int] = field(default_factory=set)
    held: dict = field(default_factory=dict)   # invoice id (or "*") -> hold kind
    policy: object = POLICY
    extra_tickets: list[dict] = field(default_factory=list)


def ticket(id_, subject, requester, *, description="", status="open", tags=(), from_address=None, org=None,
           cc=(), collaborators=(), via="email", created="2026-02-25 09:00:00", custom_fields=()):
    return {"id": id_, "status": status, "subject": subject, "description": description, "requester_id": requester,
            "organization_id": org, "tags": json.dumps(list(tags)), "via_channel": via, "from_address": from_address,
            "email_cc_ids": json.dumps(list(cc)), "collaborator_ids": json.dumps(list(collaborators)),
            "follower_ids": "[]", "custom_fields": json.dumps(list(custom_fields)),
            "created_at": pd.Timestamp(created), "updated_at": pd.Timestamp(created)}


def comment(id_, ticket_id, author, body, created="2026-02-26 10:00:00", public=True):
    return {"id": id_, "ticket_id": ticket_id, "author_id": author, "public": public, "body": body,
            "created_at": pd.Timestamp(created)}


CASES = [
    Case("forwarded mail, number written 2025/00054",
         ticket(101, "Fwd: Lieferung", 8001, from_address="ap@acme.example",
                description="---------- Forwarded message ---------\nFrom: ap@acme.example\n"
                            "We dispute 2025/00054: the goods never arrived."),
         [comment(1, 101, 8001, "---------- Forwarded message ---------\nWe dispute 2025/00054.", "2026-02-25 09:00:00")],
         customer=10, method="sender_email", named={1054}, held={1054: "dispute"}),
    Case("outside bookkeeper with the customer in CC",
         ticket(102, "Invoice INV/2025/00055: amount incorrect", 7005, cc=[7001]),
         customer=10, method="cc", named={1055}, held={1055: "dispute"}),
    Case("bookkeeper with the customer as collaborator",
         ticket(103, "Re: INV/2025/00055", 7005, collaborators=[8001, 7002],
                description="On behalf of our client: INV/2025/00055 was never received."),
         customer=10, method="collaborator", named={1055}, held={1055: "dispute"}),
    Case("subsidiary domain",
         ticket(104, "Question about INV/2026/00099", 7009, description="The quantity on it is wrong."),
         customer=10, method="domain", named={1099}, held={1099: "dispute"}),
    Case("merged ticket: the closed source's invoice carries over to the target",
         ticket(106, "Call from Acme", 8001, via="web", created="2026-02-26 08:00:00"),
         [comment(2, 105, 7002, "INV/2025/00055 is incorrect, we were charged twice.", "2026-02-25 09:00:00"),
          comment(3, 105, 8001, "This request was closed and merged into request #106.", "2026-02-26 08:05:00",
                  public=False),
          comment(4, 106, 8001, 'Request #105 "Invoice question" was closed and merged into this request.',
                  "2026-02-26 08:05:00", public=False)],
         customer=10, method="merged_from", named={1055}, held={1055: "dispute"},
         extra_tickets=[ticket(105, "Invoice question", 7002, status="closed", tags=["closed_by_merge"])]),
    Case("our reminder on a pending ticket",
         ticket(107, "Your account", 7007, status="pending", description="Hello, can you send the statement?"),
         [comment(5, 107, 8001, "Reminder: invoice INV/2026/00401 is 10 days overdue.")],
         customer=40, method="requester_email", named={4001}),
    Case("internal note naming an invoice",
         ticket(108, "Adresse geändert", 7004, description="Bitte die neue Adresse verwenden."),
         [comment(6, 108, 8001, "INV/2026/00301 an die neue Adresse senden", public=False)],
         customer=30, method="requester_email", named={3001}),
    Case("payment claim with remittance advice",
         ticket(109, "Payment INV/2025/00054", 7002, created="2026-02-27 09:00:00",
                description="We have paid INV/2025/00054 today, remittance advice attached."),
         customer=10, method="requester_email", named={1054}, held={1054: "payment_claimed"}),
    Case("payment claim in German, number written 2025/00055",
         ticket(110, "Zahlung", 7001, description="Wir haben 2025/00055 am 25.02. überwiesen."),
         customer=10, method="requester_email", named={1055}, held={1055: "payment_claimed"}),
    Case("customer's 'paid' under our reminder names no number: our reminder's invoice",
         ticket(111, "Rappel", 7003, status="pending", description="Bonjour"),
         [comment(7, 111, 8001, "Rappel : la facture INV/2026/00201 est échue.", "2026-02-26 10:00:00"),
          comment(8, 111, 7003, "Nous avons déjà payé cette facture, avis de virement ci-joint.",
                  "2026-02-27 10:00:00")],
         customer=20, method="requester_email", named={2001}, held={2001: "payment_claimed"}),
    Case("dispute in German",
         ticket(112, "Widerspruch", 7004,
                description="Wir widersprechen der Rechnung Nr. 301, die Lieferung war unvollständig."),
         customer=30, method="requester_email", named={3001}, held={3001: "dispute"}),
    Case("dispute in French",
         ticket(113, "Facture", 7003, description="Nous contestons la facture n° 201 : montant erroné."),
         customer=20, method="requester_email", named={2001}, held={2001: "dispute"}),
    Case("'invoice 54' names only that customer's invoice 54 (company 2)",
         ticket(114, "Charged twice", 7007, description="invoice 54 was charged twice."),
         customer=40, method="requester_email", named={2054}, held={2054: "dispute"}),
    Case("a number that another company also uses: the customer's own",
         ticket(115, "INV-2025-00054 is wrong", 7002),
         customer=10, method="requester_email", named={1054}, held={1054: "dispute"}),
    Case("agent-requested API ticket with empty source",
         ticket(116, "Overdue: INV/2026/00099", 8001, via="api", org=501,
                description="Dear customer, INV/2026/00099 is overdue."),
         customer=10, method="organization", named={1099}),
    Case("a former agent (inactive, now end-user) wrote our reminder",
         ticket(117, "Delivery times", 7002, description="When will you deliver?"),
         [comment(9, 117, 8002, "Please note INV/2025/00055 is overdue.")],
         customer=10, method="requester_email", named={1055}),
    Case("inactive customer contact still speaks for the customer",
         ticket(118, "Rechnung 99", 7008, description="Rechnung 99 ist fehlerhaft."),
         customer=10, method="domain", named={1099}, held={1099: "dispute"}),
    Case("phone contact with null email, customer as collaborator",
         ticket(119, "Call", 7006, via="voice", collaborators=[7007],
                description="Invoice 401 was never received."),
         customer=40, method="collaborator", named={4001}, held={4001: "dispute"}),
    Case("dispute field set, no number named: the whole customer",
         ticket(120, "Question", 7003, custom_fields=[{"id": DISPUTE_FIELD, "value": True}]),
         customer=20, method="requester_email", held={"*": "dispute"}, policy=WITH_FIELD),
    Case("plain mention without dispute words, policy holds on words only",
         ticket(121, "Copy please", 7002, description="Please send a copy of INV/2025/00055."),
         customer=10, method="requester_email", named={1055}, policy=HOLD_ON_WORDS_ONLY),
    Case("our reminder sent as a new ticket to the customer (workbench): its dispute words are ours",
         ticket(122, "Overdue: INV/2025/00054", 7002, via="api", created="2026-02-25 09:00:00",
                description=SENT_REMINDER),
         [comment(10, 122, 8001, SENT_REMINDER, "2026-02-25 09:00:00")],
         customer=10, method="requester_email", named={1054}),
    Case("the customer's dispute under our reminder sent as a new ticket",
         ticket(123, "Overdue: INV/2026/00201", 7003, via="api", created="2026-02-25 09:00:00",
                description="Reminder: INV/2026/00201 is overdue."),
         [comment(11, 123, 8001, "Reminder: INV/2026/00201 is overdue.", "2026-02-25 09:00:00"),
          comment(12, 123, 7003, "Nous contestons cette facture : montant erroné.", "2026-02-26 10:00:00")],
         customer=20, method="requester_email", named={2001}, held={2001: "dispute"}),
]


def _run(case: Case) -> pd.DataFrame:
    tickets = pd.DataFrame([*case.extra_tickets, case.ticket])
    comments = pd.DataFrame(case.comments, columns=["id", "ticket_id", "author_id", "public", "body", "created_at"])
    return build_communications(tickets, users(), comments, customers(), invoices(), case.policy, AS_OF, UTC)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_who_wrote_and_what_they_meant(case: Case):
    comms = _run(case)
    rows = comms[comms["ticket_id"] == case.ticket["id"]]
    got_customer = rows["customer_id"].iloc[0]
    assert (None if pd.isna(got_customer) else int(got_customer), rows["match_method"].iloc[0]) == \
        (case.customer, case.method)
    assert set(rows["invoice_id"].dropna().astype(int)) == case.named
    held = rows[rows["hold_kind"].notna()]
    got = {("*" if pd.isna(r.invoice_id) else int(r.invoice_id)): r.hold_kind for r in held.itertuples()}
    assert got == case.held
    assert rows["is_dispute"].tolist() == (rows["hold_kind"] == "dispute").tolist()


def test_the_cases_cover_the_shapes_of_the_issue():
    assert len(CASES) >= 15
    assert {c.method for c in CASES} >= {"requester_email", "sender_email", "cc", "collaborator", "organization",
                                         "domain", "merged_from"}
    assert {k for c in CASES for k in c.held.values()} == {"dispute", "payment_claimed"}


def test_all_cases_at_once_give_the_same_answers():
    """One frame of every ticket (one regex pass, hash joins) decides each as it does alone."""
    cases = [c for c in CASES if c.policy is POLICY]
    tickets = pd.DataFrame([t for c in cases for t in (*c.extra_tickets, c.ticket)])
    comments = pd.DataFrame([m for c in cases for m in c.comments])
    comms = build_communications(tickets, users(), comments, customers(), invoices(), POLICY, AS_OF, UTC)
    for case in cases:
        alone = _run(case)
        cols = ["ticket_id", "invoice_id", "customer_id", "match_method", "hold_kind", "mentioned_at", "hold_until"]
        mine = comms[comms["ticket_id"] == case.ticket["id"]][cols].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone[alone["ticket_id"] == case.ticket["id"]][cols]
                                      .reset_index(drop=True), obj=case.name)


def test_a_ticket_we_opened_for_the_customer_is_our_outbound_message_not_their_reply():
    case = next(c for c in CASES if c.ticket["id"] == 122)
    row = _run(case).iloc[0]
    assert pd.isna(row["last_inbound_at"]) and pd.isna(row["customer_last_inbound_at"])
    assert row["last_outbound_at"] == pd.Timestamp("2026-02-25 09:00:00")
    assert not row["is_dispute"] and pd.isna(row["hold_kind"])


def test_merged_source_itself_holds_nothing_and_names_its_invoice():
    case = next(c for c in CASES if c.method == "merged_from")
    source = _run(case).set_index("ticket_id").loc[[105]]
    assert source["customer_id"].tolist() == [10] and source["invoice_id"].tolist() == [1055]
    assert source["hold_kind"].isna().all()  # closed: the hold lives on the target


def test_payment_claim_expires_after_the_policy_days_from_the_claim_day():
    case = next(c for c in CASES if c.ticket["id"] == 109)
    row = _run(case).set_index("ticket_id").loc[109]
    assert row["mentioned_at"] == pd.Timestamp("2026-02-27 09:00:00")
    assert row["hold_until"] == pd.Timestamp("2026-02-27") + pd.Timedelta(days=POLICY.holds.payment_claim_days)
    assert row["dispute_scope"] == "invoice"


def test_dispute_words_win_over_payment_words_and_disputes_need_an_open_ticket():
    both = ticket(130, "INV/2025/00054", 7002, description="We paid INV/2025/00054 but the amount is incorrect.")
    solved_claim = ticket(131, "INV/2025/00055", 7002, status="solved", description="We have paid INV/2025/00055.")
    solved_dispute = ticket(132, "INV/2026/00099", 7002, status="solved", description="INV/2026/00099 is incorrect.")
    product = ticket(133, "Broken pallet", 7002, description="The delivery was damaged, please send a new one.")
    claim_no_number = ticket(134, "Payment", 7003, description="We have paid everything we owe you.",
                             created="2026-03-01 12:00:00")
    comms = build_communications(pd.DataFrame([both, solved_claim, solved_dispute, product, claim_no_number]), users(),
                                 pd.DataFrame(columns=["id", "ticket_id", "author_id", "public", "body", "created_at"]),
                                 customers(), invoices(), POLICY, AS_OF, UTC).set_index("ticket_id")
    assert comms.loc[130, "hold_kind"] == "dispute"
    assert comms.loc[131, "hold_kind"] == "payment_claimed"  # a claim is checked whatever the status
    assert pd.isna(comms.loc[132, "hold_kind"])
    assert pd.isna(comms.loc[133, "hold_kind"])  # dispute words about a product name no invoice: no hold
    assert (comms.loc[134, "hold_kind"], comms.loc[134, "dispute_scope"]) == ("payment_claimed", "customer")
    assert comms.loc[134, "hold_until"] == pd.Timestamp("2026-03-06")


def test_tables_without_the_new_zendesk_columns_still_match():
    """A warehouse written before CCs and custom fields were extracted: those steps find nothing."""
    case = next(c for c in CASES if c.ticket["id"] == 101)
    tickets = pd.DataFrame([case.ticket]).drop(columns=["email_cc_ids", "collaborator_ids", "follower_ids",
                                                        "custom_fields"])
    comms = build_communications(tickets, users().drop(columns=["active", "suspended"]),
                                 pd.DataFrame(case.comments), customers(), invoices(), POLICY, AS_OF, UTC)
    assert comms[["customer_id", "match_method", "invoice_id", "hold_kind"]].values.tolist() == \
        [[10, "sender_email", 1054, "dispute"]]


# -- numbers in other policies and ledgers -----------------------------------------------------
def _named(policy, text, ledger=None, requester=7002) -> set[int]:
    """The invoices one ticket with this text names (customer 10 writes by default)."""
    tickets = pd.DataFrame([ticket(140, "Question", requester, description=text)])
    comments = pd.DataFrame(columns=["id", "ticket_id", "author_id", "public", "body", "created_at"])
    comms = build_communications(tickets, users(), comments, customers(),
                                 invoices() if ledger is None else ledger, policy, AS_OF, UTC)
    return set(comms["invoice_id"].dropna().astype(int))


def test_without_invoice_words_a_bare_number_names_no_invoice():
    words = ("invoice_words: [invoice, invoices, inv, rechnung, rechnungen, rechnungsnummer, rechnungsnr, rg,\n"
             "                  facture, factures, fact]")
    no_words = _policy_with(words, "invoice_words: []", "no_words.yaml")
    assert no_words.holds.invoice_words == []
    text = "Order #54 arrived damaged and INV/2025/00055 is incorrect."
    assert _named(no_words, text) == {1055}
    assert _named(POLICY, text + " So is invoice 54.") == {1054, 1055}  # the words are what name 54


def test_a_number_of_another_scheme_is_found_by_the_policy_pattern_whatever_its_case():
    pattern = r"invoice_number_pattern: '\b[A-Z][A-Z0-9]*/\d{4}/(?:\d{2}/)?\d{3,}\b'"
    other = _policy_with(pattern, r"invoice_number_pattern: '\bAB\d{5}\b'", "scheme.yaml")
    ledger = pd.concat([invoices(), pd.DataFrame([{"id": 1500, "name": "AB12345", "state": "posted", "partner_id": 10,
                                                   "commercial_partner_id": 10, "company_id": 1}])],
                       ignore_index=True)
    assert _named(other, "ab12345 is incorrect.", ledger) == {1500}
    assert _named(other, "AB12345 and INV/2025/00054 are incorrect.", ledger) == {1500, 1054}
    assert _named(POLICY, "AB12345 is incorrect.", ledger) == set()


def test_a_full_number_is_compared_by_its_parts_not_as_written():
    """The policy pattern also finds INV/2025/054; its sequence compares as an integer, its year too."""
    ledger = pd.concat([invoices(), pd.DataFrame([{"id": 1654, "name": "INV/2026/00054", "state": "posted",
                                                   "partner_id": 10, "commercial_partner_id": 10, "company_id": 1}])],
                       ignore_index=True)
    assert _named(POLICY, "INV/2025/054 is incorrect.", ledger) == {1054}
    assert _named(POLICY, "inv-2026-054 is incorrect.", ledger) == {1654}
    assert _named(POLICY, "invoice 54 is incorrect.", ledger) == {1054, 1654}
    monthly = pd.concat([ledger, pd.DataFrame([
        {"id": 1707, "name": "RINV/2026/03/0007", "state": "posted", "partner_id": 10, "commercial_partner_id": 10,
         "company_id": 1},
        {"id": 1717, "name": "RINV/2026/02/0007", "state": "posted", "partner_id": 10, "commercial_partner_id": 10,
         "company_id": 1}])], ignore_index=True)
    for written in ("RINV/2026/03/007", "rinv-2026-03-7", "2026/03/007"):  # the month as written, in each form
        assert _named(POLICY, f"{written} is incorrect.", monthly) == {1707}, written


def test_an_invoice_of_a_partner_missing_from_the_customers_names_nobody_and_stops_nothing():
    orphan = {"id": 1600, "name": "INV/2025/00056", "state": "posted", "partner_id": 99,
              "commercial_partner_id": None, "company_id": 1}
    ledger = pd.concat([invoices(), pd.DataFrame([orphan])], ignore_index=True)
    assert _named(POLICY, "INV/2025/00056 and INV/2025/00054 are incorrect.", ledger) == {1054}


def test_invoices_without_a_company_column_are_matched_per_customer_all_the_same():
    ledger = invoices().drop(columns=["company_id"])
    assert _named(POLICY, "invoice 54 was charged twice.", ledger, requester=7007) == {2054}
    assert _named(POLICY, "INV-2025-00054 is wrong.", ledger) == {1054}


def test_the_same_number_in_two_of_our_companies_names_each_with_its_company():
    from dunning_pipeline.dunning import invoice_numbers as N
    ledger = pd.DataFrame({"id": [1054, 5054, 1055], "name": ["INV/2025/00054", "INV/2025/00054", "INV/2025/00055"],
                           "company_id": [1, 2, 1], "customer_id": [10, 10, 10]})
    pattern = N.text_pattern(POLICY.holds.invoice_number_pattern, POLICY.holds.invoice_words)
    texts = pd.Series(["invoice 54 is wrong", "INV-2025-00055 is wrong"])
    found = N.match_numbers(N.find_candidates(texts, pattern), pd.Series([10, 10]), N.invoice_keys(ledger))
    assert sorted(found[["text_row", "invoice_id", "company_id", "form"]].itertuples(index=False, name=None)) == [
        (0, 1054, 1, "word"), (0, 5054, 2, "word"), (1, 1055, 1, "full")]
    exact = N.match_numbers(N.find_candidates(pd.Series(["INV/2025/00055"]), pattern), pd.Series([10]),
                            N.invoice_keys(ledger))
    assert exact[["invoice_id", "form"]].values.tolist() == [[1055, "exact"]]  # once, though also a full key
    for text in ("invoice 77", "no number at all"):  # a number of nobody's, and no candidate
        none = N.match_numbers(N.find_candidates(pd.Series([text]), pattern), pd.Series([10]), N.invoice_keys(ledger))
        assert none.empty and list(none.columns) == N.MATCH_COLUMNS, text
    for unknown in (N.invoice_keys(ledger.drop(columns=["company_id"])),  # no column, or (timeline) all null
                    N.invoice_keys(ledger.assign(company_id=pd.NA))):
        assert unknown["invoice_id"].tolist() == [1054, 5054, 1055] and unknown["company_id"].isna().all()


# -- the hold in the aging table and the history ----------------------------------------------
def _ledger():
    from . import dataset as D
    return D


def test_payment_claim_freezes_the_stage_is_recorded_and_released_when_it_expires():
    D = _ledger()
    tickets = D.tickets()
    tickets = pd.concat([tickets, pd.DataFrame([{
        **tickets.iloc[0].to_dict(), "id": 9200, "status": "solved", "subject": "Remittance advice",
        "description": "We have paid INV/2026/00104 today.", "requester_id": 7005,
        "created_at": pd.Timestamp("2026-02-27 15:00:00"), "updated_at": pd.Timestamp("2026-02-27 15:00:00")}])],
        ignore_index=True)
    night1 = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, tickets=tickets, users=D.users(),
                       comments=D.comments(), quarantine=D.quarantine(), run_id="n1")
    aging = night1.aging.set_index("invoice_id")
    # 104 is 15 days overdue on 03-02 (call); the claim came on 02-27 (12 days: reminder_2)
    assert tuple(aging.loc[104, ["hold_reason", "hold_since", "hold_until", "hold_ticket_id", "stage"]]) == (
        "payment_claimed", pd.Timestamp("2026-02-27"), pd.Timestamp("2026-03-04"), 9200, "reminder_2")
    assert aging.loc[104, "dunning_status"] == "on_hold" and aging.loc[104, "due_stage"] == "call"
    assert aging.loc[104, "hold_note"] == "customer says paid, check the bank: Remittance advice"
    row = night1.rows.set_index("invoice_id").loc[104]
    assert (row["reason"], row["hold_reason"], row["to_stage"], row["hold_until"]) == (
        "hold", "payment_claimed", "reminder_2", pd.Timestamp("2026-03-04"))
    # still held on its last day; released to its calendar stage the day after
    night2 = run_night(D.invoices(), D.customers(), POLICY, date(2026, 3, 4), night1.state, tickets=tickets,
                       users=D.users(), comments=D.comments(), quarantine=D.quarantine(), run_id="n2")
    assert night2.aging.set_index("invoice_id").loc[104, "hold_reason"] == "payment_claimed"
    assert 104 not in set(night2.rows["invoice_id"])
    night3 = run_night(D.invoices(), D.customers(), POLICY, date(2026, 3, 5), night2.state, tickets=tickets,
                       users=D.users(), comments=D.comments(), quarantine=D.quarantine(), run_id="n3")
    assert pd.isna(night3.aging.set_index("invoice_id").loc[104, "hold_reason"])
    row = night3.rows.set_index("invoice_id").loc[104]
    assert (row["from_stage"], row["to_stage"], row["reason"]) == ("reminder_2", "call", "released")


def test_a_dispute_outranks_a_payment_claim_on_the_same_invoice():
    D = _ledger()
    tickets = D.tickets()
    claim = {**tickets.iloc[0].to_dict(), "id": 9201, "subject": "Paid", "requester_id": 7005,
             "description": "We have paid INV/2026/00106.", "created_at": pd.Timestamp("2026-02-28 08:00:00"),
             "updated_at": pd.Timestamp("2026-02-28 08:00:00")}
    night = run_night(D.invoices(), D.customers(), POLICY, D.AS_OF, tickets=pd.concat(
        [tickets, pd.DataFrame([claim])], ignore_index=True), users=D.users(), comments=D.comments(),
        quarantine=D.quarantine())
    aging = night.aging.set_index("invoice_id")
    assert (aging.loc[106, "hold_reason"], aging.loc[106, "hold_ticket_id"]) == ("dispute", 9001)


# -- the policy --------------------------------------------------------------------------------
@pytest.mark.parametrize("old,new,message", [
    ("payment_claim_days: 5", "payment_claim_days: 0", "holds.payment_claim_days: Input should be greater than"),
    ("customer_mention_hold: dispute", "customer_mention_hold: always",
     "holds.customer_mention_hold: Input should be 'dispute' or 'none'"),
    ("dispute_keywords: [dispute,", "dispute_keywords: ['', dispute,", "holds.dispute_keywords[0]: String should"),
    ("payment_claim_keywords: [we have paid,", "payment_claim_keywords: [7, we have paid,",
     "holds.payment_claim_keywords[0]: Input should be a valid string"),
])
def test_policy_keys_are_validated_with_file_and_line(old, new, message):
    text = open(POLICY.source, encoding="utf-8").read()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if old in t)
    with pytest.raises(PolicyError) as err:
        parse_policy(text.replace(old, new), source="mine.yaml")
    assert f"mine.yaml, line {line}, {message}" in str(err.value)


def test_a_night_without_tickets_has_the_columns_and_types_of_one_with_tickets():
    from . import dataset as D
    full = build_communications(D.tickets(), D.users(), D.comments(), D.customers(), D.invoices(), POLICY, AS_OF, UTC)
    empty = build_communications(D.tickets().iloc[:0], D.users(), D.comments(), D.customers(), D.invoices(), POLICY,
                                 AS_OF, UTC)
    assert empty.empty and list(empty.columns) == list(full.columns) == COLUMNS
    # ids stay integers (nullable where a ticket may name none), flags booleans, times datetimes
    for col in ("ticket_id", "invoice_id", "customer_id", "is_open", "is_dispute", "mentioned_at",
                "ticket_created_at", "ticket_updated_at", "last_inbound_at", "last_outbound_at",
                "customer_last_inbound_at", "customer_last_outbound_at", "hold_until"):
        assert empty[col].dtype == full[col].dtype, col
    assert str(empty["requester_id"].dtype) == "Int64"  # a ticket may have lost its requester
    assert empty["as_of_date"].dtype.kind == empty["promise_until"].dtype.kind == "M"
    assert empty_communications().dtypes.equals(empty.dtypes)


PROMISES = _policy_with("promise_pattern: null", "promise_pattern: 'pay on (?P<date>\\d{4}-\\d{2}-\\d{2})'", "promise.yaml")


def test_a_promise_read_from_a_ticket_is_its_latest_valid_date():
    from . import dataset as D
    more = pd.DataFrame([
        {"id": 11, "ticket_id": 9005, "author_id": 7005, "public": True, "body": "We will PAY ON 2026-03-20.",
         "via_channel": "email", "created_at": pd.Timestamp("2026-03-01 12:00:00"), "extracted_at": pd.Timestamp("2026-03-02")},
        {"id": 10, "ticket_id": 9005, "author_id": 7005, "public": True, "body": "We will pay on 2026-03-15.",
         "via_channel": "email", "created_at": pd.Timestamp("2026-02-27 12:00:00"), "extracted_at": pd.Timestamp("2026-03-02")},
        {"id": 12, "ticket_id": 9005, "author_id": 7005, "public": True, "body": "Or pay on 2026-02-30?",  # no such day
         "via_channel": "email", "created_at": pd.Timestamp("2026-03-01 13:00:00"), "extracted_at": pd.Timestamp("2026-03-02")},
    ])
    comments = pd.concat([D.comments(), more], ignore_index=True)
    comms = build_communications(D.tickets(), D.users(), comments, D.customers(), D.invoices(), PROMISES, AS_OF, UTC)
    until = comms.drop_duplicates("ticket_id").set_index("ticket_id")["promise_until"]
    assert until.loc[9005] == pd.Timestamp("2026-03-20")  # the later of the two, the impossible day left out
    assert until.drop(9005).isna().all()
    # without any promise in the texts, none
    plain = build_communications(D.tickets(), D.users(), D.comments(), D.customers(), D.invoices(), PROMISES, AS_OF, UTC)
    assert plain["promise_until"].isna().all() and plain["promise_until"].dtype.kind == "M"


@pytest.mark.parametrize("customer_email, user_email", [("  ", " "), ("delta.example", "ap@delta.example")],
                         ids=["blank-both", "customer-email-without-at"])
def test_an_address_that_is_no_address_identifies_nobody(customer_email, user_email):
    from . import dataset as D
    customers, users = D.customers(), D.users()
    customers.loc[customers["id"] == 40, "email"] = customer_email  # Delta
    users.loc[users["id"] == 7004, "email"] = user_email  # the requester of 9004
    comms = build_communications(D.tickets(), users, D.comments(), customers, D.invoices(), POLICY, AS_OF, UTC)
    ticket = comms[comms["ticket_id"] == 9004]
    assert ticket["match_method"].tolist() == ["unmatched"] and ticket["customer_id"].isna().all()


# A looser date group than the default's: the policy says the date is YYYY-MM-DD, so anything else it
# catches is refused rather than guessed (03/04/2026 is March 4th to some, April 3rd to others).
LOOSE_PROMISES = _policy_with("promise_pattern: null", "promise_pattern: 'pay on (?P<date>\\S*\\d)'", "loose.yaml")


@pytest.mark.parametrize("text, until", [("We will pay on 03/04/2026.", None),
                                         ("We will pay on 2026-03-20.", "2026-03-20")],
                         ids=["not-yyyy-mm-dd", "yyyy-mm-dd"])
def test_a_promise_date_is_read_only_as_yyyy_mm_dd(text, until):
    tickets = pd.DataFrame([ticket(150, "Payment", 7002, description=text)])
    comments = pd.DataFrame(columns=["id", "ticket_id", "author_id", "public", "body", "created_at"])
    got = build_communications(tickets, users(), comments, customers(), invoices(), LOOSE_PROMISES, AS_OF,
                               UTC)["promise_until"].iloc[0]
    assert (None if pd.isna(got) else got) == (None if until is None else pd.Timestamp(until))


def test_the_domain_of_an_address_is_what_follows_its_last_at():
    """A quoted local part may hold an '@' ("ap@bravo"@acme.example is Acme's)."""
    people = pd.concat([users(), pd.DataFrame([{"id": 7010, "email": '"ap@bravo.example"@acme.example',
                                                "organization_id": None, "role": "end-user", "active": True,
                                                "suspended": False}])], ignore_index=True)
    tickets = pd.DataFrame([ticket(151, "INV/2025/00054 is wrong", 7010)])
    comments = pd.DataFrame(columns=["id", "ticket_id", "author_id", "public", "body", "created_at"])
    comms = build_communications(tickets, people, comments, customers(), invoices(), POLICY, AS_OF, UTC)
    assert comms[["customer_id", "match_method"]].values.tolist() == [[10, "domain"]]


@pytest.mark.parametrize("cc_ids", ["7001", 7001, '["7001"]'], ids=["bare-json-id", "bare-int", "id-as-text"])
def test_a_bare_id_in_an_id_list_is_that_one_user(cc_ids):
    """A CC column holding one id, not a list of one, still names that user (here Anna, of Acme)."""
    case = next(c for c in CASES if c.method == "cc")
    tickets = pd.DataFrame([{**case.ticket, "email_cc_ids": cc_ids}])
    comms = build_communications(tickets, users(), pd.DataFrame(case.comments, columns=["id", "ticket_id", "author_id",
                                 "public", "body", "created_at"]), customers(), invoices(), POLICY, AS_OF, UTC)
    assert comms["match_method"].tolist() == ["cc"] and comms["customer_id"].tolist() == [10]


@pytest.mark.parametrize("cc_ids", ["[null, 1.5, \"x\"]", "not json", None])
def test_what_is_no_id_in_an_id_list_names_nobody(cc_ids):
    case = next(c for c in CASES if c.method == "cc")
    tickets = pd.DataFrame([{**case.ticket, "email_cc_ids": cc_ids}])
    comms = build_communications(tickets, users(), pd.DataFrame(columns=["id", "ticket_id", "author_id", "public",
                                 "body", "created_at"]), customers(), invoices(), POLICY, AS_OF, UTC)
    assert comms["match_method"].tolist() == ["unmatched"]


@pytest.mark.parametrize("tags, note_on, merged", [(["closed_by_merge"], 105, True), ([], 105, False),
                                                   ([], 106, True)],
                         ids=["source-note-tagged", "source-note-untagged", "target-note"])
def test_either_merge_note_alone_carries_the_source_over(tags, note_on, merged):
    """The source's note 'merged into request #106' is trusted only on a source Zendesk closed by merge (its
    tag); the target's note 'Request #105 ... was closed and merged into this request' on its own."""
    case = next(c for c in CASES if c.method == "merged_from")
    source = {**case.extra_tickets[0], "tags": json.dumps(tags)}
    comments = pd.DataFrame([m for m in case.comments if m["ticket_id"] == 105 or m["ticket_id"] == note_on])
    if note_on == 106:  # the customer's comment stays on the source, the merge note is the target's only
        comments = comments[~comments["body"].str.contains("merged into request #106")]
    comms = build_communications(pd.DataFrame([source, case.ticket]), users(), comments, customers(), invoices(),
                                 POLICY, AS_OF, UTC)
    target = comms[comms["ticket_id"] == 106]
    assert (target["match_method"].tolist() == ["merged_from"]) is merged
    if merged:
        assert target["invoice_id"].tolist() == [1055] and target["hold_kind"].tolist() == ["dispute"]

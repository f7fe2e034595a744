"""The generator: deterministic for a seed, realistic, internally consistent; nights change it."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from dunning_pipeline.sandbox import data as sd

AS_OF = date(2026, 3, 2)


@pytest.fixture(scope="module")
def data() -> sd.SandboxData:
    return sd.generate(seed=3, customers=40, invoices=600, as_of=AS_OF)


def minor(amount, currency: str) -> int:
    dec = sd.CURRENCY_BY_CODE[currency][3]
    value = round(amount * 10 ** dec)
    assert value == amount * 10 ** dec or abs(value - amount * 10 ** dec) < 1e-6, amount
    return value


def test_same_seed_same_data_and_other_seed_other_data():
    a = sd.generate(seed=5, customers=15, invoices=120, as_of=AS_OF)
    b = sd.generate(seed=5, customers=15, invoices=120, as_of=AS_OF)
    c = sd.generate(seed=6, customers=15, invoices=120, as_of=AS_OF)
    for name in ("partners", "moves", "zendesk_users", "zendesk_tickets", "zendesk_comments"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.moves != c.moves
    # the nights are deterministic too
    assert sd.advance_night(a) == sd.advance_night(b)
    assert a.moves == b.moves and a.zendesk_tickets == b.zendesk_tickets


def test_records_are_sorted_by_id_and_ids_unique(data):
    for records in (data.moves, data.partners, data.zendesk_tickets, data.zendesk_users):
        ids = [r["id"] for r in records]
        assert ids == sorted(set(ids))


def test_money_is_consistent_to_the_cent(data):
    companies = {c["id"]: c["currency_id"][1] for c in data.companies}
    for m in data.moves:
        cur, company_cur = m["currency_id"][1], companies[m["company_id"][0]]
        total, residual = minor(m["amount_total"], cur), minor(m["amount_residual"], cur)
        assert 0 <= residual <= total, m
        sign = -1 if m["move_type"] in ("out_refund", "in_invoice") else 1
        assert minor(m["amount_total_signed"], company_cur) == sign * sd.convert_minor(total, cur, company_cur)
        assert minor(m["amount_residual_signed"], company_cur) == sign * sd.convert_minor(residual, cur, company_cur)
        if m["payment_state"] in ("paid", "in_payment", "reversed"):
            assert residual == 0, m
        if m["payment_state"] == "partial":
            assert 0 < residual < total, m
        if m["payment_state"] == "not_paid":
            assert residual == total, m
    refunds = [m for m in data.moves if m["move_type"] == "out_refund"]
    assert refunds and all(m["amount_total_signed"] < 0 < m["amount_total"] for m in refunds)
    jpy = [m for m in data.moves if m["currency_id"][1] == "JPY"]
    assert all(m["amount_total"] == int(m["amount_total"]) for m in jpy)


def test_the_ledger_has_every_case_the_pipeline_must_handle(data):
    kinds = Counter((m["move_type"], m["state"], m["payment_state"]) for m in data.moves)
    for key in [("out_invoice", "posted", "not_paid"), ("out_invoice", "posted", "partial"),
                ("out_invoice", "posted", "paid"), ("out_invoice", "posted", "in_payment"),
                ("out_refund", "posted", "not_paid"), ("out_invoice", "draft", "not_paid"),
                ("out_invoice", "cancel", "not_paid")]:
        assert kinds[key] > 0, key
    assert {m["move_type"] for m in data.moves} >= {"out_invoice", "out_refund", "in_invoice", "entry"}
    assert {m["company_id"][0] for m in data.moves} == {1, 2}
    assert {m["currency_id"][1] for m in data.moves} >= {"EUR", "USD", "GBP", "CHF"}
    assert len(sd.open_receivables(data)) > 50


def test_numbers_drafts_and_dates(data):
    posted = [m for m in data.moves if m["state"] == "posted"]
    assert all(m["name"] == "/" for m in data.moves if m["state"] == "draft")
    names = [(m["company_id"][0], m["name"]) for m in posted]
    assert len(names) == len(set(names))  # unique per company (see test_same_number_in_two_companies)
    assert all(re.fullmatch(r"(INV|INVUS|RINV|RINVUS)/20\d\d/\d{5}", m["name"])
               for m in posted if m["move_type"].startswith("out_"))
    # numbers follow the invoice date within a journal and year
    by_journal: dict[tuple, list] = {}
    for m in posted:
        if m["move_type"] == "out_invoice":
            journal, year, seq = m["name"].split("/")
            by_journal.setdefault((m["company_id"][0], journal, year), []).append((m["invoice_date"], int(seq)))
    for entries in by_journal.values():
        assert [s for _, s in sorted(entries)] == sorted(s for _, s in entries)
    now = sd.odoo_datetime(data.now)
    for m in data.moves:
        assert m["create_date"] <= m["write_date"] < now
        if m["move_type"] == "out_invoice" and m["state"] == "posted":
            days = (date.fromisoformat(m["invoice_date_due"]) - AS_OF).days
            assert -120 <= days <= 30
            assert m["invoice_date"] <= AS_OF.isoformat()


def test_credit_notes_reverse_an_invoice_of_the_same_customer(data):
    by_id = {m["id"]: m for m in data.moves}
    refunds = [m for m in data.moves if m["move_type"] == "out_refund"]
    for r in refunds:
        inv = by_id[r["reversed_entry_id"][0]]
        assert inv["move_type"] == "out_invoice"
        assert inv["commercial_partner_id"] == r["commercial_partner_id"]
        assert r["invoice_date"] >= inv["invoice_date"]
        assert r["ref"] == f"Reversal of: {inv['name']}"
    reversed_ = [m for m in data.moves if m["payment_state"] == "reversed"]
    assert reversed_ and all(any(r["reversed_entry_id"][0] == m["id"] for r in refunds) for m in reversed_)


def test_partners_companies_contacts_tags_languages(data):
    by_id = {p["id"]: p for p in data.partners}
    contacts = [p for p in data.partners if p["parent_id"]]
    assert contacts
    for c in contacts:
        parent = by_id[c["parent_id"][0]]
        assert parent["is_company"] and c["commercial_partner_id"][0] == parent["id"]
        assert c["display_name"] == f"{parent['name']}, {c['name']}"
        if c["email"] and parent["email"]:
            assert c["email"].split("@")[1].lower() == parent["email"].split("@")[1].lower()
    customers = [p for p in data.partners if p["customer_rank"] > 0 and not p["parent_id"]]
    assert any(not p["active"] for p in data.partners if p["customer_rank"] > 0)
    assert {t for p in customers for t in p["category_id"]} >= {1, 2, 3}
    assert len({p["lang"] for p in customers}) >= 3
    for m in data.moves:
        if m["partner_id"]:
            assert by_id[m["partner_id"][0]]["commercial_partner_id"] == m["commercial_partner_id"]


def test_zendesk_mirrors_the_customers(data):
    partner_emails = {p["email"].lower() for p in data.partners if p["email"]}
    end_users = [u for u in data.zendesk_users if u["role"] == "end-user"]
    assert sum((u["email"] or "").lower() in partner_emails for u in end_users) >= 0.8 * len(end_users)
    assert any(u["role"] in ("agent", "admin") for u in data.zendesk_users)
    org_ids = {o["id"] for o in data.zendesk_organizations}
    assert all(u["organization_id"] in org_ids for u in end_users if u["organization_id"])
    numbers = {m["name"] for m in data.moves if m["state"] == "posted"}
    mentioned = [t for t in data.zendesk_tickets
                 if re.search(r"R?INV(US)?/\d{4}/\d{5}", t["subject"] + t["description"])]
    assert mentioned
    for t in mentioned:
        number = re.search(r"R?INV(US)?/\d{4}/\d{5}", t["subject"] + t["description"]).group(0)
        assert number in numbers
    assert any({"dispute", "billing_dispute"} & set(t["tags"]) for t in data.zendesk_tickets)
    assert any("dispute" in t["description"].lower() or "widersprechen" in t["description"]
               for t in data.zendesk_tickets)
    deleted = [t for t in data.zendesk_tickets if t["status"] == "deleted"]
    assert deleted and all(t["subject"] == "SCRUBBED" for t in deleted)
    assert {t["status"] for t in data.zendesk_tickets} >= {"new", "open", "pending", "solved", "closed"}


def test_ticket_threads_are_chronological_with_notes_and_replies(data):
    agents = {u["id"] for u in data.zendesk_users if u["role"] != "end-user"}
    notes = replies = 0
    now = sd.zendesk_datetime(data.now)
    created = [t["created_at"] for t in data.zendesk_tickets]
    assert created == sorted(created)  # ids grow with creation time
    for t in data.zendesk_tickets:
        thread = data.zendesk_comments[t["id"]]
        stamps = [c["created_at"] for c in thread]
        assert stamps == sorted(stamps) and stamps[0] == t["created_at"]
        assert t["created_at"] <= t["updated_at"] < now and stamps[-1] <= t["updated_at"]
        assert thread[0]["author_id"] == t["requester_id"]
        notes += sum(not c["public"] for c in thread)
        replies += sum(c["public"] and c["author_id"] in agents for c in thread)
    assert notes and replies


def test_advance_night_stamps_changes_after_everything_before(data):
    d = sd.generate(seed=3, customers=40, invoices=600, as_of=AS_OF)
    before_moves = {m["id"]: dict(m) for m in d.moves}
    before_tickets = {t["id"]: dict(t) for t in d.zendesk_tickets}
    newest_move = max(m["write_date"] for m in d.moves)
    newest_ticket = max(t["updated_at"] for t in d.zendesk_tickets)
    changes = sd.advance_night(d)
    assert d.as_of == AS_OF + timedelta(days=1) == changes.as_of
    assert d.now == datetime(2026, 3, 3, 23, 0, tzinfo=sd.UTC)
    changed = {m["id"] for m in d.moves if before_moves.get(m["id"]) != m}
    assert changed == set(changes.moves_changed) and changed
    assert all(m["write_date"] > newest_move for m in d.moves if m["id"] in changed)
    assert all(m["write_date"] <= newest_move for m in d.moves if m["id"] not in changed)
    for mid in changes.paid:
        assert before_moves[mid]["payment_state"] in ("not_paid", "partial")
        assert d.move(mid)["payment_state"] == "paid" and d.move(mid)["amount_residual"] == 0
    for mid in changes.cancelled:
        assert d.move(mid)["state"] == "cancel"
    for mid in changes.posted_drafts:
        assert before_moves[mid]["name"] == "/" and d.move(mid)["name"].startswith("INV")
    assert changes.new_invoices and all(mid not in before_moves for mid in changes.new_invoices)
    touched = {t["id"] for t in d.zendesk_tickets if before_tickets.get(t["id"]) != t}
    changed = set(changes.tickets_updated) | set(changes.tickets_new)
    assert touched == changed | set(changes.tickets_resent) and changes.tickets_resent
    assert all(d.ticket(tid)["updated_at"] > newest_ticket for tid in changed)
    for tid in changes.tickets_resent:  # re-sent: a later generated_timestamp, nothing else changed
        assert d.ticket(tid) == {**before_tickets[tid], "generated_timestamp": d.ticket(tid)["generated_timestamp"]}
        assert d.ticket(tid)["generated_timestamp"] > before_tickets[tid]["generated_timestamp"]
    all_comments = {c["id"] for thread in d.zendesk_comments.values() for c in thread}
    assert set(changes.comments_new) <= all_comments
    assert d.moves == sorted(d.moves, key=lambda m: m["id"])


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        sd.generate(customers=0)
    with pytest.raises(TypeError, match="date"):
        sd.generate(as_of="2026-03-02")


def test_zendesk_has_the_shapes_of_real_accounts_and_the_named_scenarios():
    d = sd.generate(seed=7, customers=40, invoices=400, as_of=AS_OF)
    users = {u["id"]: u for u in d.zendesk_users}
    assert any(u["email"] is None for u in users.values())
    assert any(not u["active"] for u in users.values()) and any(u["suspended"] for u in users.values())
    assert any(isinstance(t["via"]["channel"], int) for t in d.zendesk_tickets)
    assert any(isinstance(c["via"]["channel"], int) for th in d.zendesk_comments.values() for c in th)
    assert any(t["email_cc_ids"] for t in d.zendesk_tickets if t["id"] not in
               {s["ticket_id"] for s in d.zendesk_scenarios.values()})
    sc = d.zendesk_scenarios
    assert set(sc) == {"forwarded_dispute", "bookkeeper_cc", "payment_claim", "german_dispute",
                       "reminder_pending", "internal_note", "merged_pair"}
    moves = {m["id"]: m for m in d.moves}
    for name, s in sc.items():
        inv = moves[s["invoice_id"]]
        assert inv["name"] == s["invoice_number"] and inv["commercial_partner_id"][0] == s["customer_id"]
        assert inv["payment_state"] == "not_paid" and inv["invoice_date_due"] < AS_OF.isoformat(), name
        assert d.ticket(s["ticket_id"])["status"] in ("open", "pending"), name
    assert len({s["customer_id"] for s in sc.values()}) == len(sc)  # one customer each
    fwd = d.ticket(sc["forwarded_dispute"]["ticket_id"])
    assert users[fwd["requester_id"]]["role"] == "agent"
    assert fwd["via"]["source"]["from"]["address"] == sc["forwarded_dispute"]["sender"]
    assert sc["forwarded_dispute"]["written_as"] in fwd["description"]
    assert sc["forwarded_dispute"]["invoice_number"] not in fwd["description"]  # only the short form
    keeper = d.ticket(sc["bookkeeper_cc"]["ticket_id"])
    assert users[keeper["requester_id"]]["organization_id"] is None
    assert keeper["email_cc_ids"] == [sc["bookkeeper_cc"]["cc_user_id"]]
    assert sc["bookkeeper_cc"]["written_as"].startswith("invoice ") and sc["bookkeeper_cc"]["written_as"] in keeper["description"]
    assert "we have paid " + sc["payment_claim"]["invoice_number"] in d.ticket(sc["payment_claim"]["ticket_id"])["description"]
    assert "Wir widersprechen der Rechnung".lower() in d.ticket(sc["german_dispute"]["ticket_id"])["description"].lower()
    reminder = d.ticket(sc["reminder_pending"]["ticket_id"])
    assert users[reminder["requester_id"]]["role"] == "agent" and reminder["via"]["source"]["from"] == {}
    assert reminder["status"] == "pending" and sc["reminder_pending"]["invoice_number"] in reminder["description"]
    note = d.zendesk_comments[sc["internal_note"]["ticket_id"]][-1]
    assert not note["public"] and sc["internal_note"]["invoice_number"] in note["body"]
    source, target = sc["merged_pair"]["source_ticket_id"], sc["merged_pair"]["target_ticket_id"]
    assert "closed_by_merge" in d.ticket(source)["tags"] and d.ticket(source)["status"] == "closed"
    assert f"merged into request #{target}" in d.zendesk_comments[source][-1]["body"]
    assert f"Request #{source}" in d.zendesk_comments[target][-1]["body"]
    assert "was closed and merged into this request" in d.zendesk_comments[target][-1]["body"]
    again = sd.generate(seed=7, customers=40, invoices=400, as_of=AS_OF)
    assert again.zendesk_scenarios == sc and again.zendesk_tickets == d.zendesk_tickets

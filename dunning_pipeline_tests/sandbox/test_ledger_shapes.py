"""Shapes of real Odoo ledgers the sandbox produces (issue 8, points 2, 4 and 8): payment terms
of several instalments with consistent receivable lines, `blocked` invoices, and the same
invoice number in two companies; and what the engine makes of them."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest

from dunning_pipeline import money
from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.odoo import parse
from dunning_pipeline.sandbox import data as sd

AS_OF = date(2026, 3, 2)
AT = datetime(2026, 3, 2, 1)


def units(value) -> int:
    return money.to_units(Decimal(repr(value)))


@pytest.fixture(scope="module")
def data():
    return sd.generate(seed=7, customers=40, invoices=400, as_of=AS_OF)


def _lines_by_move(data) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for line in sd.all_receivable_lines(data):
        out.setdefault(line["move_id"][0], []).append(line)
    return out


def test_a_good_share_of_invoices_has_several_instalments_due_last_on_invoice_date_due(data):
    invoices = [m for m in data.moves if m["move_type"] == "out_invoice" and m["state"] == "posted"]
    terms = Counter(m["invoice_payment_term_id"][0] for m in invoices if m["invoice_payment_term_id"])
    assert all(terms[t] >= 10 for t in sd.INSTALMENT_TERMS)  # 30/70, three equal parts, 50/50
    assert sum(terms[t] for t in sd.INSTALMENT_TERMS) >= len(invoices) // 6
    lines = _lines_by_move(data)
    for m in invoices:
        own = lines[m["id"]]
        assert len(own) == len(sd.instalment_parts(m))
        assert own[-1]["date_maturity"] == m["invoice_date_due"]  # Odoo: the last instalment's date
        assert [x["date_maturity"] for x in own] == sorted(x["date_maturity"] for x in own)


def test_lines_reconcile_with_their_move_and_payments_go_to_the_oldest_instalment(data):
    partial_several = 0
    lines = _lines_by_move(data)
    for m in data.moves:
        own = lines.get(m["id"])
        if not own:
            continue
        for line_field, move_field in (("amount_residual_currency", "amount_residual"),
                                       ("amount_currency", "amount_total"),
                                       ("amount_residual", "amount_residual_signed"),
                                       ("balance", "amount_total_signed")):
            got = sum(units(x[line_field]) for x in own)
            want = units(m[move_field])
            assert abs(got) == abs(want), (m["id"], line_field)
        open_ = [abs(units(x["amount_residual_currency"])) for x in own]
        full = [abs(units(x["amount_currency"])) for x in own]
        # oldest first: paid instalments, at most one partly paid, then untouched ones
        first_open = next((i for i, o in enumerate(open_) if o), len(open_))
        assert all(o == 0 for o in open_[:first_open])
        assert open_[first_open + 1:] == full[first_open + 1:]
        assert all(x["reconciled"] == (units(x["amount_residual_currency"]) == 0) for x in own)
        partial_several += len(own) > 1 and 0 < first_open < len(own)
    assert partial_several >= 3  # invoices whose first instalment is paid and a later one is open


def test_the_next_nights_payments_show_on_the_lines(data):
    night_data = sd.generate(seed=7, customers=40, invoices=400, as_of=AS_OF)
    changes = night_data.advance_night()
    lines = _lines_by_move(night_data)
    for move_id in changes.paid:
        assert all(units(x["amount_residual_currency"]) == 0 and x["reconciled"] for x in lines[move_id])
    for move_id in changes.new_invoices:
        assert lines[move_id][-1]["date_maturity"] == night_data.move(move_id)["invoice_date_due"]


def test_blocked_invoices_are_open_receivables(data):
    blocked = [m for m in data.moves if m["payment_state"] == "blocked"]
    assert blocked and all(m["state"] == "posted" and m["amount_residual"] > 0 for m in blocked)
    assert set(map(id, blocked)) <= set(map(id, sd.open_receivables(data)))


def test_generation_is_deterministic(data):
    again = sd.generate(seed=7, customers=40, invoices=400, as_of=AS_OF)
    assert again.moves == data.moves
    assert sd.all_receivable_lines(again) == sd.all_receivable_lines(data)


def _same_number_pair(data) -> tuple[dict, dict]:
    posted = [m for m in data.moves if m["move_type"] == "out_invoice" and m["state"] == "posted"]
    by_name: dict[str, list[dict]] = {}
    for m in posted:
        by_name.setdefault(m["name"], []).append(m)
    pairs = [sorted(ms, key=lambda m: m["company_id"][0]) for ms in by_name.values() if len(ms) > 1]
    assert pairs, "the sandbox has no invoice number used by two companies"
    first, second = pairs[0]
    assert first["company_id"][0] == 1 and second["company_id"][0] == 2
    return first, second


def test_the_same_number_in_two_companies_is_two_invoices_never_confused(data):
    first, second = _same_number_pair(data)
    assert first["commercial_partner_id"] != second["commercial_partner_id"]
    customer = data.partner(second["commercial_partner_id"][0])
    company_currency = {c["id"]: c["currency_id"] for c in data.companies}  # the server computes it
    invoices = parse.parse_invoices([{**m, "company_currency_id": company_currency[m["company_id"][0]]}
                                     for m in data.moves if m["move_type"] in parse.INVOICE_MOVE_TYPES],
                                    extracted_at=AT)
    tags = parse.parse_tag_names(data.partner_categories)
    customers = parse.parse_customers(data.partners, tag_names=tags, extracted_at=AT)
    lines = parse.parse_receivable_lines(
        [x for x in sd.all_receivable_lines(data) if x["parent_state"] == "posted"], extracted_at=AT)
    # The company-2 customer disputes "its" number in an open ticket.
    users = pd.DataFrame([{"id": 1, "email": customer["email"], "name": "x", "organization_id": None,
                           "role": "end-user", "external_id": None, "updated_at": pd.Timestamp("2026-01-01"),
                           "extracted_at": pd.Timestamp(AT)}])
    tickets = pd.DataFrame([{
        "id": 77, "status": "open", "subject": f"Wrong amount on {second['name']}", "description": "",
        "requester_id": 1, "organization_id": None, "tags": json.dumps([]), "via_channel": "email",
        "from_address": None, "created_at": pd.Timestamp("2026-02-27 10:00"),
        "updated_at": pd.Timestamp("2026-02-27 10:00"), "extracted_at": pd.Timestamp(AT)}])
    comments = pd.DataFrame(columns=["id", "ticket_id", "author_id", "public", "body", "via_channel", "created_at",
                                     "extracted_at"])
    night = run_night(invoices, customers, load_policy(), AS_OF, tickets=tickets, users=users, comments=comments,
                      lines=lines, run_id="n1")
    named = night.communications[night.communications["ticket_id"] == 77]
    assert named["invoice_id"].dropna().astype(int).tolist() == [second["id"]]
    aging = night.aging.set_index("invoice_id")
    assert aging.loc[second["id"], "hold_reason"] == "dispute"
    assert aging.loc[first["id"], "hold_reason"] != "dispute"
    assert aging.loc[first["id"], "company_id"] == 1 and aging.loc[second["id"], "company_id"] == 2
    assert aging.loc[first["id"], "invoice_number"] == aging.loc[second["id"], "invoice_number"]
    inst = night.instalments
    assert set(inst.loc[inst["invoice_id"] == first["id"], "company_id"]) == {1}
    assert set(inst.loc[inst["invoice_id"] == second["id"], "company_id"]) == {2}

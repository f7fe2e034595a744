"""The reconciliations (account.partial.reconcile) of the receivable lines, read from the
sandbox's Odoo over JSON-RPC (17.0) and JSON-2 (19.0): all of them on the first run, those of
the moves upserted since on the next ones (undone ones deleted); parsed exactly, bad records named."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime

import pandas as pd
import pytest

from dunning_pipeline.odoo import extract, parse
from dunning_pipeline.sandbox import data as sd
from dunning_pipeline_tests.odoo.conftest import client_for, odoo_calls
from dunning_pipeline_tests.odoo.test_receivable_lines import units

PAGE = 40
AT = datetime(2026, 3, 2, 1)

RECORD = {"id": 7, "debit_move_id": [81, "INV/2026/00010"], "credit_move_id": [1_000_000_000_007, "PBNK1/2026/00007"],
          "company_id": [1, "Nordwind Trading GmbH"], "company_currency_id": [125, "EUR"], "amount": 462.96,
          "debit_currency_id": [1, "USD"], "debit_amount_currency": 500.0, "credit_currency_id": [1, "USD"],
          "credit_amount_currency": 500.0, "max_date": "2026-02-14", "create_date": "2026-02-14 09:12:03",
          "write_date": "2026-02-14 09:12:03"}


def test_a_reconciliation_parses_exactly():
    row = parse.parse_reconciliations([RECORD], extracted_at=AT).iloc[0]
    assert (row["debit_line_id"], row["credit_line_id"], row["company_id"]) == (81, 1_000_000_000_007, 1)
    assert row["amount"] == 4_629_600 and row["debit_amount_currency"] == 5_000_000
    assert (row["company_currency"], row["debit_currency"], row["credit_currency"]) == ("EUR", "USD", "USD")
    assert row["max_date"] == pd.Timestamp("2026-02-14") and row["write_date"] == pd.Timestamp("2026-02-14 09:12:03")


@pytest.mark.parametrize(("field", "column", "value", "problem"), [
    ("amount", "amount", "lots", "field amount:"),
    ("amount", "amount", 1e15, "field amount: amount 1000000000000000.0 is beyond what the warehouse holds"),
    ("debit_amount_currency", "debit_amount_currency", float("nan"), "field debit_amount_currency:"),
    ("max_date", "max_date", "14.02.2026", "field max_date: '14.02.2026' is not a date"),
    ("debit_move_id", "debit_line_id", [81], "field debit_move_id: expected \\[id, name\\] or false"),
    ("credit_currency_id", None, [1, "USD\ud800"], "field credit_currency_id: .* lone surrogate"),
])
def test_a_value_that_does_not_fit_is_stored_empty_and_named_not_a_failed_page(field, column, value, problem):
    """The page goes on: the record's parse_error names it and the field, for `fields_parse`."""
    frame = parse.parse_reconciliations([dict(RECORD, id=6), dict(RECORD, **{field: value})], extracted_at=AT)
    good, bad = frame.iloc[0], frame.iloc[1]
    assert pd.isna(good["parse_error"])
    assert re.match(f"^account.partial.reconcile 7: {problem}", bad["parse_error"]), bad["parse_error"]
    if column is not None:
        assert pd.isna(bad[column])
    assert "\ud800" not in "".join(str(v) for v in bad.tolist())  # storable text only


@pytest.mark.parametrize("field", ["max_date", "debit_move_id", "credit_move_id", "amount"])
def test_a_reconciliation_without_a_line_amount_or_date_is_stored_for_its_checks(field):
    """Odoo's false is an empty value, not a parse error: the checks quarantine it (see quality/)."""
    row = parse.parse_reconciliations([dict(RECORD, **{field: False})], extracted_at=AT).iloc[0]
    column = {"debit_move_id": "debit_line_id", "credit_move_id": "credit_line_id"}.get(field, field)
    assert pd.isna(row[column]) and pd.isna(row["parse_error"])


def night(sb, wh, at: datetime):
    with client_for(sb) as client:
        moves = extract.extract_invoices(client, wh, page_size=PAGE, overlap_seconds=300, extracted_at=at)
        extract.extract_receivable_lines(client, wh, page_size=PAGE, extracted_at=at)
        recs = extract.extract_reconciliations(client, wh, page_size=PAGE, extracted_at=at)
    return moves, recs


def assert_equal_odoo(wh, data):
    rows = wh.read("odoo_reconciliations", order_by=["id"])
    assert rows["id"].tolist() == [p["id"] for p in data.reconciliations]
    assert rows["debit_line_id"].tolist() == [p["debit_move_id"][0] for p in data.reconciliations]
    assert rows["amount"].tolist() == [units(p["amount"]) for p in data.reconciliations]
    assert [d.date().isoformat() for d in rows["max_date"]] == [p["max_date"] for p in data.reconciliations]
    # Every stored line's residual is its balance minus what its reconciliations settled, in
    # company and in invoice currency: the past residuals are built on this.
    lines = wh.read("odoo_receivable_lines")
    settled = defaultdict(lambda: [0, 0])
    for r in rows.itertuples():
        for line in (r.debit_line_id, r.credit_line_id):
            settled[line][0] += r.amount
            settled[line][1] += r.debit_amount_currency
    invoices = lines[lines["balance"] > 0]
    assert len(invoices) > 50
    for line in invoices.itertuples():
        assert line.balance - settled[line.id][0] == line.amount_residual, line.id
        assert line.amount_currency - settled[line.id][1] == line.amount_residual_currency, line.id


def test_reconciliations_full_then_by_the_moves_upserted_since(odoo_sandbox, warehouse):
    sb, wh = odoo_sandbox, warehouse
    _moves, recs = night(sb, wh, AT)
    calls = odoo_calls(sb, parse.RECONCILIATION_MODEL)
    assert recs.mode == "full" and recs.fetched == len(sb.data.reconciliations) > 20
    assert len(calls) == recs.pages == len(sb.data.reconciliations) // PAGE + 1  # paged by id
    assert all(c["call"]["domain"][0] == parse.RECONCILIATION_DOMAIN[0] for c in calls)
    assert_equal_odoo(wh, sb.data)

    # Next night: the payments of that day, dated that day, read by the refreshed moves' lines.
    changes = sb.data.advance_night()
    sb.requests["odoo"].clear()
    moves, recs = night(sb, wh, datetime(2026, 3, 3, 1))
    calls = odoo_calls(sb, parse.RECONCILIATION_MODEL)
    asked = {i for c in calls for term in c["call"]["domain"] if term[0] == "debit_move_id" for i in term[2]}
    lines = wh.read("odoo_receivable_lines")
    assert recs.mode == "incremental" and recs.moves == moves.fetched
    assert asked == set(lines.loc[lines["move_id"].isin(moves_upserted(wh, datetime(2026, 3, 3, 1))), "id"])
    assert len(calls) < 5
    new = wh.read("odoo_reconciliations")
    paid_lines = set(lines.loc[lines["move_id"].isin(changes.paid + changes.partially_paid), "id"])
    today = new[new["max_date"] == pd.Timestamp("2026-03-03")]
    assert paid_lines and paid_lines <= set(today["debit_line_id"])
    assert_equal_odoo(wh, sb.data)

    # A payment undone in Odoo: its reconciliation is deleted, the invoice open again.
    undone = sb.data.reconciliations.pop(next(i for i, p in enumerate(sb.data.reconciliations)
                                              if p["max_date"] == "2026-03-03"))
    move = sb.data.move(undone["debit_move_id"][0] // sd.LINE_IDS_PER_MOVE)
    move.update(amount_residual=move["amount_total"], amount_residual_signed=move["amount_total_signed"],
                payment_state="not_paid", write_date=sd.odoo_datetime(sb.data.now))
    night(sb, wh, datetime(2026, 3, 3, 2))
    assert undone["id"] not in set(wh.read("odoo_reconciliations")["id"])


def moves_upserted(wh, at: datetime) -> set[int]:
    rows = wh.read("odoo_invoices", columns=["id", "extracted_at"])
    return set(rows.loc[rows["extracted_at"] == pd.Timestamp(at), "id"])

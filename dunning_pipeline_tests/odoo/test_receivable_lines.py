"""The receivable lines (one per instalment) read in bulk from the sandbox's Odoo, over JSON-RPC
(17.0) and JSON-2 (19.0): paged by id over all customer moves on the first run, over the moves
upserted since on the next ones; never one request per invoice; equal to Odoo's lines."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pytest

from dunning_pipeline import money
from dunning_pipeline.odoo import extract, parse
from dunning_pipeline.sandbox import data as sd
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline_tests.odoo.conftest import client_for, odoo_calls

PAGE = 40


def units(value) -> int:
    """An amount as the sandbox holds it (a JSON float) or the client returns it (Decimal)."""
    return money.to_units(value if isinstance(value, Decimal) else Decimal(repr(value)))


def night(sb, wh, at: datetime):
    with client_for(sb) as client:
        moves = extract.extract_invoices(client, wh, page_size=PAGE, overlap_seconds=300, extracted_at=at)
        lines = extract.extract_receivable_lines(client, wh, page_size=PAGE, extracted_at=at)
    return moves, lines


def expected_lines(data) -> list[dict]:
    return [line for line in sd.all_receivable_lines(data)
            if line["parent_state"] == "posted"]


def assert_lines_equal_odoo(wh, data):
    rows = wh.read("odoo_receivable_lines", order_by=["id"])
    want = expected_lines(data)
    assert rows["id"].tolist() == [line["id"] for line in want]
    assert rows["move_id"].tolist() == [line["move_id"][0] for line in want]
    assert [d.date().isoformat() for d in rows["date_maturity"]] == [line["date_maturity"] for line in want]
    for col in ("amount_residual", "amount_residual_currency", "balance", "amount_currency"):
        assert rows[col].tolist() == [units(line[col]) for line in want], col
    assert rows["reconciled"].tolist() == [line["reconciled"] for line in want]


def test_lines_are_read_in_pages_not_per_invoice_and_equal_odoo(odoo_sandbox, warehouse):
    sb, wh = odoo_sandbox, warehouse
    moves, lines = night(sb, wh, datetime(2026, 3, 2, 1))
    calls = odoo_calls(sb, parse.LINE_MODEL)
    n = len(expected_lines(sb.data))
    assert lines.mode == "full" and lines.fetched == n
    # pages of PAGE lines (plus the one that finds the end when the last is full), not one per invoice
    assert len(calls) == lines.pages == math.floor(n / PAGE) + 1
    assert len(calls) < moves.fetched / 3
    for call in calls:
        domain = call["call"]["domain"]
        assert ["display_type", "=", "payment_term"] in domain
        assert ["account_id.account_type", "=", "asset_receivable"] in domain
        assert call["call"]["limit"] == PAGE and call["call"]["order"] == "id asc"
    assert_lines_equal_odoo(wh, sb.data)
    several = {line["move_id"][0] for line in expected_lines(sb.data) if line["name"].endswith("#2")}
    assert len(several) >= 10  # instalment terms are common in the sandbox

    # The next night: only the moves upserted since, as id lists, replaced with Odoo's lines now.
    changes = sb.data.advance_night()
    sb.requests["odoo"].clear()
    moves, lines = night(sb, wh, datetime(2026, 3, 3, 1))
    calls = odoo_calls(sb, parse.LINE_MODEL)
    asked = {i for c in calls for term in c["call"]["domain"] if term[0] == "move_id" for i in term[2]}
    rows = wh.read("odoo_invoices", columns=["id", "extracted_at"])
    stored = set(rows.loc[rows["extracted_at"] == pd.Timestamp(2026, 3, 3, 1), "id"])
    assert lines.mode == "incremental" and asked == stored and lines.moves == len(stored) == moves.fetched
    assert set(changes.paid) <= asked and len(calls) < 5
    assert_lines_equal_odoo(wh, sb.data)
    paid = wh.read("odoo_receivable_lines")
    assert (paid.loc[paid["move_id"].isin(changes.paid), "amount_residual_currency"] == 0).all()


def test_a_cancelled_move_loses_its_lines(tmp_path):
    from dunning_pipeline_tests.odoo.conftest import make_sandbox

    with make_sandbox("17.0") as sb:
        wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
        wh.ensure_schema()
        night(sb, wh, datetime(2026, 3, 2, 1))
        move = next(m for m in sb.data.moves if m["move_type"] == "out_invoice" and m["state"] == "posted"
                    and m["payment_state"] == "not_paid")
        assert (wh.read("odoo_receivable_lines")["move_id"] == move["id"]).any()
        move["state"] = "cancel"
        move["write_date"] = sd.odoo_datetime(sb.data.now)
        night(sb, wh, datetime(2026, 3, 3, 1))
        assert not (wh.read("odoo_receivable_lines")["move_id"] == move["id"]).any()


@pytest.mark.parametrize("version", ["16.0", "18.0"])
def test_the_sandbox_serves_lines_filtered_by_related_paths(version):
    from dunning_pipeline_tests.odoo.conftest import make_sandbox

    with make_sandbox(version) as sb, client_for(sb) as client:
        move = next(m for m in sb.data.moves if m["invoice_payment_term_id"]
                    and m["invoice_payment_term_id"][0] in sd.INSTALMENT_TERMS and m["state"] == "posted")
        rows = client.search_read(parse.LINE_MODEL, [*parse.LINE_DOMAIN, ["move_id", "in", [move["id"]]]],
                                  parse.LINE_FIELDS)
        assert len(rows) == len(sd.INSTALMENT_TERMS[move["invoice_payment_term_id"][0]][2]) >= 2
        assert rows[-1]["date_maturity"] == move["invoice_date_due"]  # Odoo: the last instalment's date
        assert sum(units(r["amount_residual_currency"]) for r in rows) == units(move["amount_residual"])
        assert not client.search_read(parse.LINE_MODEL, [["account_id.account_type", "=", "liability_payable"]],
                                      ["id"])

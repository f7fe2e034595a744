"""Incremental extraction into the warehouse (SQLite and PostgreSQL) from the sandbox's Odoo:
full first run, nothing changed on a second run, the next night's changes picked up, no change
missed at the one-second boundary or during a run, and a failure that leaves everything whole."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from dunning_pipeline import money
from dunning_pipeline.odoo import extract
from dunning_pipeline.odoo.client import OdooDataError, OdooUnavailableError
from dunning_pipeline_tests.odoo.conftest import client_for, make_sandbox, odoo_calls, out_moves

EXTRACTED_AT = datetime(2026, 3, 3, 1, 0)
FMT = "%Y-%m-%d %H:%M:%S"
MONEY = ("amount_total", "amount_residual", "amount_total_signed", "amount_residual_signed")


@pytest.fixture
def sb():
    with make_sandbox("17.0") as sandbox:
        yield sandbox


def run_invoices(sb, wh, *, page_size=40, overlap=300, log=None, **client_kw):
    lines = [] if log is None else log
    with client_for(sb, **client_kw) as client:
        result = extract.extract_invoices(client, wh, page_size=page_size, overlap_seconds=overlap,
                                          extracted_at=EXTRACTED_AT, log=lines.append)
    return result, lines


def run_customers(sb, wh, *, page_size=40, overlap=300):
    lines: list[str] = []
    with client_for(sb) as client:
        result = extract.extract_customers(client, wh, page_size=page_size, overlap_seconds=overlap,
                                           extracted_at=EXTRACTED_AT, log=lines.append)
    return result, lines


def units(value) -> int | None:
    """A sandbox amount (a JSON float) as the exact units Odoo's JSON text denotes."""
    return None if value is False else money.to_units(Decimal(repr(value)))


def assert_warehouse_equals_sandbox(wh, sb):
    """Every customer invoice / credit note of the sandbox, field for field, money to the cent."""
    rows = wh.read("odoo_invoices", order_by=["id"])
    moves = out_moves(sb.data)
    assert rows["id"].tolist() == [m["id"] for m in moves]
    for col in ("name", "move_type", "state"):
        assert rows[col].tolist() == [m[col] for m in moves], col
    assert values(rows["payment_state"]) == [m["payment_state"] or None for m in moves]
    assert values(rows["ref"]) == [m["ref"] or None for m in moves]
    assert values(rows["payment_term"]) == [(m["invoice_payment_term_id"] or [None, None])[1] for m in moves]
    assert rows["currency"].tolist() == [m["currency_id"][1] for m in moves]
    assert rows["write_date"].dt.strftime(FMT).tolist() == [m["write_date"] for m in moves]
    for col in MONEY:
        assert rows[col].tolist() == [units(m[col]) for m in moves], col
    # and the totals per currency, exactly
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for m in moves:
        expected[m["currency_id"][1]] += Decimal(repr(m["amount_residual"]))
    got = rows.groupby("currency")["amount_residual"].sum()
    assert {c: money.to_decimal(v) for c, v in got.items()} == dict(expected)


def newest_write_date(sb) -> str:
    return max(m["write_date"] for m in out_moves(sb.data))


# -- full, then incremental --------------------------------------------------------------------------
def test_first_run_is_full_and_equals_the_sandbox(sb, warehouse):
    result, logs = run_invoices(sb, warehouse, page_size=40)
    n = len(out_moves(sb.data))
    assert result.mode == "full" and result.fetched_since is None
    assert result.fetched == result.changed == result.total_rows == n
    assert result.pages == -(-n // 40)
    assert_warehouse_equals_sandbox(warehouse, sb)
    assert result.high_water_mark == newest_write_date(sb)
    assert warehouse.get_state(extract.INVOICES_STATE_KEY) == newest_write_date(sb)
    assert logs[1] == "page 1: 40 invoices (40 so far)"
    assert "page 2: 40 invoices (80 so far)" in logs
    assert warehouse.count("odoo_invoices", where=None) == n


def test_second_run_without_changes_fetches_only_the_overlap_and_changes_nothing(sb, warehouse):
    first, _ = run_invoices(sb, warehouse)
    before = warehouse.read("odoo_invoices", order_by=["id"]).drop(columns="extracted_at")
    sb.requests["odoo"].clear()

    second, _ = run_invoices(sb, warehouse, overlap=300)
    mark = datetime.strptime(first.high_water_mark, FMT)
    since = (mark - timedelta(seconds=300)).strftime(FMT)
    expected_refetch = [m for m in out_moves(sb.data) if m["write_date"] >= since]
    assert second.mode == "incremental" and second.fetched_since == since
    assert second.fetched == len(expected_refetch) >= 1  # the records at the mark itself
    assert second.changed == 0
    assert second.high_water_mark == first.high_water_mark
    pd.testing.assert_frame_equal(
        warehouse.read("odoo_invoices", order_by=["id"]).drop(columns="extracted_at"), before)
    calls = [c for c in odoo_calls(sb, "account.move") if c["call"].get("order") == "id asc"]
    pages = [c for c in calls if c["call"]["fields"] == list(extract.INVOICES.fields)]
    assert pages and all(["write_date", ">=", since] in c["call"]["domain"] for c in pages)
    # the open moves are re-read (few fields, by id), nothing else is fetched in full
    assert second.open_verified == sum(1 for m in out_moves(sb.data) if m["state"] == "draft" or (
        m["state"] == "posted" and m["payment_state"] not in extract.SETTLED_PAYMENT_STATES))
    assert second.late_changes == 0

    third, _ = run_invoices(sb, warehouse, overlap=0)
    assert third.fetched == len([m for m in out_moves(sb.data) if m["write_date"] >= first.high_water_mark])
    assert third.changed == 0


def test_next_nights_changes_are_picked_up(sb, warehouse):
    first, _ = run_invoices(sb, warehouse)
    for _night in range(2):
        mark = warehouse.get_state(extract.INVOICES_STATE_KEY)
        night = sb.advance_night()
        changed_out = {m["id"] for m in out_moves(sb.data) if m["write_date"] > mark}
        assert changed_out, "advance_night should change some customer invoices"
        assert set(night.moves_changed) & changed_out
        result, _ = run_invoices(sb, warehouse)
        assert result.mode == "incremental"
        assert result.changed == len(changed_out)
        assert result.total_rows == len(out_moves(sb.data))
        assert result.high_water_mark == newest_write_date(sb) > mark
        assert_warehouse_equals_sandbox(warehouse, sb)
    assert first.total_rows < result.total_rows  # new invoices arrived


def test_a_change_in_the_same_second_as_the_mark_is_not_missed(sb, warehouse):
    first, _ = run_invoices(sb, warehouse, overlap=0)
    mark = first.high_water_mark
    # An invoice paid in the very second of the mark, after the first run read that second.
    move = next(m for m in out_moves(sb.data) if m["write_date"] < mark
                and m["state"] == "posted" and m["payment_state"] == "not_paid")
    move.update(payment_state="paid", amount_residual=0.0, amount_residual_signed=0.0, write_date=mark)
    sb.data.changed()
    second, _ = run_invoices(sb, warehouse, overlap=0)
    assert second.changed == 1
    row = warehouse.read("odoo_invoices", where=warehouse.table("odoo_invoices").c.id == move["id"])
    assert row.loc[0, "payment_state"] == "paid" and row.loc[0, "amount_residual"] == 0
    assert_warehouse_equals_sandbox(warehouse, sb)


def test_a_change_made_while_the_run_pages_is_picked_up_next_run(sb, warehouse):
    newest = datetime.strptime(newest_write_date(sb), FMT)
    outs = out_moves(sb.data)
    early = next(m for m in outs[:20] if m["payment_state"] == "not_paid")  # on page 1
    late = outs[-1]

    def during_run(line: str) -> None:
        if line.startswith("page 1:"):
            # after page 1 (which held `early`): someone pays `early`, a bit later edits `late`
            early.update(payment_state="paid", amount_residual=0.0, amount_residual_signed=0.0,
                         write_date=(newest + timedelta(seconds=1)).strftime(FMT))
            late.update(ref="edited later", write_date=(newest + timedelta(hours=1)).strftime(FMT))
            sb.data.changed()

    first, _ = run_invoices(sb, warehouse, page_size=20, overlap=0, log=_Hook(during_run))
    # The mark is what was newest when the run started, not the newest record it happened to see.
    assert first.high_water_mark == newest.strftime(FMT)
    stale = warehouse.read("odoo_invoices", where=warehouse.table("odoo_invoices").c.id == early["id"])
    assert stale.loc[0, "payment_state"] != "paid"  # the run had passed it

    second, _ = run_invoices(sb, warehouse, overlap=0)
    # `early` is new to the warehouse; `late` was already read with its edit by the first run
    assert second.changed == 1
    assert second.high_water_mark == late["write_date"]
    assert_warehouse_equals_sandbox(warehouse, sb)


class _Hook(list):
    """A log sink that also calls a function on each line."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def append(self, line):
        super().append(line)
        self.fn(line)


# -- failures leave the previous state whole ----------------------------------------------------------
def test_a_failure_half_way_leaves_rows_and_mark_as_they_were(sb, warehouse, retry_sleeps):
    run_invoices(sb, warehouse)
    before = warehouse.read("odoo_invoices", order_by=["id"])
    mark = warehouse.get_state(extract.INVOICES_STATE_KEY)
    sb.advance_night()

    def fail_after_first_page(line: str) -> None:
        if line.startswith("page 1:"):
            sb.faults.set("odoo", "server_error", count=5, status=502)

    with pytest.raises(OdooUnavailableError, match="HTTP 502"):
        run_invoices(sb, warehouse, page_size=5, overlap=86_400 * 3, max_retries=1,
                     log=_Hook(fail_after_first_page))
    pd.testing.assert_frame_equal(warehouse.read("odoo_invoices", order_by=["id"]), before)
    assert warehouse.get_state(extract.INVOICES_STATE_KEY) == mark

    sb.faults.clear()
    result, _ = run_invoices(sb, warehouse)
    assert result.changed > 0
    assert_warehouse_equals_sandbox(warehouse, sb)


def test_a_failure_in_the_first_run_leaves_nothing(sb, warehouse, retry_sleeps):
    def fail(line: str) -> None:
        if line.startswith("page 2:"):
            sb.faults.set("odoo", "drop", count=5)

    with pytest.raises(OdooUnavailableError):
        run_invoices(sb, warehouse, page_size=10, max_retries=1, log=_Hook(fail))
    assert warehouse.count("odoo_invoices") == 0
    assert warehouse.get_state(extract.INVOICES_STATE_KEY) is None


def test_a_malformed_value_is_stored_empty_and_named_the_rest_written(sb, warehouse):
    run_invoices(sb, warehouse)
    before = warehouse.read("odoo_invoices", order_by=["id"])
    move = out_moves(sb.data)[3]
    move.update(invoice_date_due="2026-02-30", write_date=(datetime.strptime(newest_write_date(sb), FMT)
                                                            + timedelta(minutes=5)).strftime(FMT))
    sb.data.changed()
    run_invoices(sb, warehouse)
    after = warehouse.read("odoo_invoices", order_by=["id"])
    row = after[after["id"] == move["id"]].iloc[0]
    assert pd.isna(row["invoice_date_due"])
    assert row["parse_error"] == (f"account.move {move['id']} ({move['name']}): field invoice_date_due: "
                                  "'2026-02-30' is not a date (YYYY-MM-DD)")
    others = ["id", "name", "amount_residual", "invoice_date_due", "parse_error"]
    pd.testing.assert_frame_equal(after.loc[after["id"] != move["id"], others].reset_index(drop=True),
                                  before.loc[before["id"] != move["id"], others].reset_index(drop=True))


def test_an_unstorable_record_is_named_and_nothing_is_written(sb, warehouse):
    run_invoices(sb, warehouse)
    before = warehouse.read("odoo_invoices", order_by=["id"])
    move = out_moves(sb.data)[3]
    move.update(state=False, write_date=(datetime.strptime(newest_write_date(sb), FMT)
                                         + timedelta(minutes=5)).strftime(FMT))
    sb.data.changed()
    with pytest.raises(OdooDataError) as err:
        run_invoices(sb, warehouse)
    assert f"account.move {move['id']}" in str(err.value) and "field state: is required" in str(err.value)
    pd.testing.assert_frame_equal(warehouse.read("odoo_invoices", order_by=["id"]), before)


# -- customers --------------------------------------------------------------------------------------
def test_customers_full_incremental_archived_and_tags(sb, warehouse):
    first, logs = run_customers(sb, warehouse)
    partners = sb.data.partners
    rows = warehouse.read("odoo_customers", order_by=["id"])
    assert first.mode == "full" and first.fetched == first.total_rows == len(partners)
    assert rows["id"].tolist() == [p["id"] for p in partners]
    assert (~rows["active"].astype(bool)).sum() == sum(1 for p in partners if not p["active"]) > 0
    names = {c["id"]: c["name"] for c in sb.data.partner_categories}
    assert [json.loads(t) for t in rows["tags"]] == [[names[i] for i in p["category_id"]] for p in partners]
    assert rows["commercial_partner_id"].tolist() == [p["commercial_partner_id"][0] for p in partners]
    assert logs[-1].startswith(f"customers: {len(partners)} fetched, {len(partners)} new or changed")

    second, _ = run_customers(sb, warehouse)
    assert second.mode == "incremental" and second.changed == 0

    # Renaming a tag changes no partner's write_date: every customer is refreshed.
    tag = next(c for c in sb.data.partner_categories if any(c["id"] in p["category_id"] for p in partners))
    tag["name"] = "Strategic Account"
    sb.data.changed()
    third, _ = run_customers(sb, warehouse)
    tagged = [p for p in partners if tag["id"] in p["category_id"]]
    assert third.mode == "full" and third.notes
    assert third.changed == len(tagged)
    rows = warehouse.read("odoo_customers", order_by=["id"])
    by_id = dict(zip(rows["id"], rows["tags"], strict=True))
    assert all("Strategic Account" in json.loads(by_id[p["id"]]) for p in tagged)

    fourth, _ = run_customers(sb, warehouse)
    assert fourth.mode == "incremental" and fourth.changed == 0


def test_customers_changed_over_night_are_picked_up(sb, warehouse):
    run_customers(sb, warehouse)
    mark = warehouse.get_state(extract.CUSTOMERS_STATE_KEY)
    sb.advance_night()
    changed = {p["id"] for p in sb.data.partners if p["write_date"] > mark}
    result, _ = run_customers(sb, warehouse)
    assert result.changed == len(changed)
    rows = warehouse.read("odoo_customers", order_by=["id"])
    assert values(rows["name"]) == [p["name"] or None for p in sb.data.partners]
    assert values(rows["email"]) == [p["email"] or None for p in sb.data.partners]
    assert values(rows["phone"]) == [p["phone"] or None for p in sb.data.partners]


def values(column: pd.Series) -> list:
    """A column as plain Python values, None for null."""
    return [None if pd.isna(v) else v for v in column]

"""A change committed late is never missed: a payment stamped (write_date) before the last
high-water mark is fetched the next night by re-reading the open moves; companies the API user
can no longer read are reported, not silently frozen."""

from __future__ import annotations

import pytest

from dunning_pipeline.odoo import extract
from dunning_pipeline_tests.odoo.conftest import make_sandbox, odoo_calls, out_moves
from dunning_pipeline_tests.odoo.test_extract import assert_warehouse_equals_sandbox, run_invoices

pytestmark = pytest.mark.faults


@pytest.fixture(params=["17.0", "19.0"], ids=["jsonrpc", "json2"])
def sb(request):
    with make_sandbox(request.param) as sandbox:
        yield sandbox


def stored(wh, move_id: int):
    t = wh.table("odoo_invoices")
    return wh.read("odoo_invoices", where=t.c.id == move_id).iloc[0]


def test_a_payment_committed_after_the_mark_passed_its_write_date_is_fetched_next_night(sb, warehouse):
    first, _ = run_invoices(sb, warehouse, overlap=300)
    late = sb.late_commit(seconds_before_mark=3600)  # far beyond the 300 s overlap
    assert late.write_date < extract._minus(first.high_water_mark, 300)
    assert stored(warehouse, late.move_id)["payment_state"] in ("not_paid", "partial")

    sb.requests["odoo"].clear()
    second, lines = run_invoices(sb, warehouse, overlap=300)
    assert second.late_changes == 1 and second.open_verified > 1
    row = stored(warehouse, late.move_id)
    assert row["payment_state"] == "paid" and row["amount_residual"] == 0
    assert row["write_date"].strftime(extract.WRITE_DATE_FORMAT) == late.write_date
    assert second.changed == 1  # counted like any fetched change
    assert_warehouse_equals_sandbox(warehouse, sb)
    # the open moves were re-read in bulk (few fields, id batches), the late one fetched in full
    verify = [c for c in odoo_calls(sb, "account.move")
              if c["call"].get("fields") == list(extract.RECONCILE_FIELDS)]
    assert 1 <= len(verify) <= second.open_verified // 40 + 1
    full = [c for c in odoo_calls(sb, "account.move") if ["id", "in", [late.move_id]] in c["call"]["domain"]]
    assert len(full) == 1 and "amount_total" in full[0]["call"]["fields"]
    assert any("1 changed before the window" in line for line in lines)

    third, _ = run_invoices(sb, warehouse, overlap=300)
    assert third.late_changes == 0 and third.changed == 0


def test_late_commit_after_an_ordinary_night(sb, warehouse):
    run_invoices(sb, warehouse)
    sb.advance_night()
    late = sb.late_commit(seconds_before_mark=2 * 86400)
    result, _ = run_invoices(sb, warehouse)
    assert result.late_changes == 1
    assert stored(warehouse, late.move_id)["payment_state"] == "paid"
    assert_warehouse_equals_sandbox(warehouse, sb)


def test_a_company_the_api_user_can_no_longer_read_is_reported(sb, warehouse):
    run_invoices(sb, warehouse)
    company = sb.data.companies[-1]
    held = [m for m in out_moves(sb.data) if m["company_id"][0] == company["id"]]
    assert held, "the sandbox should have invoices in its second company"
    sb.revoke_company(company["id"])
    result, _ = run_invoices(sb, warehouse)
    assert result.unreadable_companies == [f"{company['name']} (id {company['id']})"]
    (warning,) = result.warnings
    assert f"company {company['name']} (id {company['id']})" in warning
    assert f"{len(held)} invoices" in warning and "'admin'" in warning
    assert any("not returned by Odoo" in note for note in result.notes)
    # the rows are kept as they were, not dropped
    assert warehouse.count("odoo_invoices") == len(out_moves(sb.data))


def test_a_new_invoice_committed_late_is_fetched_next_night(sb, warehouse):
    run_invoices(sb, warehouse)
    late = sb.late_new_invoice(seconds_before_mark=3600)
    result, lines = run_invoices(sb, warehouse)
    assert result.late_changes == 1
    assert stored(warehouse, late.move_id)["write_date"].strftime(extract.WRITE_DATE_FORMAT) == late.write_date
    assert any("1 invoices never held" in line for line in lines)
    assert_warehouse_equals_sandbox(warehouse, sb)


def test_a_move_below_the_highest_id_held_that_was_never_fetched_is_found_by_the_count(sb, warehouse):
    """A late import can take ids below moves committed before the last run: the count finds it.
    (Dropping a row from the warehouse makes the same situation without rewriting Odoo's ids.)"""
    run_invoices(sb, warehouse)
    t = warehouse.table("odoo_invoices")
    lost = next(m for m in out_moves(sb.data)[5:] if m["state"] == "posted" and m["payment_state"] == "paid")
    with warehouse.begin() as conn:
        conn.execute(t.delete().where(t.c.id == lost["id"]))
    result, _ = run_invoices(sb, warehouse)
    assert result.late_changes == 1
    assert_warehouse_equals_sandbox(warehouse, sb)
    sb.requests["odoo"].clear()
    again, _ = run_invoices(sb, warehouse)
    assert again.late_changes == 0
    # nothing is missing, so the ids are not listed: one count, one look above the highest id
    scans = [c for c in odoo_calls(sb, "account.move")
             if c["call"].get("fields") == ["write_date"] and ["write_date", "<", again.fetched_since]
             in c["call"]["domain"]]
    assert len(scans) == 1 and any(t[:2] == ["id", ">"] for t in scans[0]["call"]["domain"])

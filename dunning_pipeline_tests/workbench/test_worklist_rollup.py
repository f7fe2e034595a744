"""The worklist reads a rollup of the aging snapshot: it must give what summing the invoices
gives, follow a new snapshot (another night, or a rerun of the day), and count a customer
handled today out of the unfiltered totals (kept per snapshot)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from dunning_pipeline.workbench.queries import Filters, Reader
from dunning_pipeline_tests.workbench.conftest import aged_warehouse, csrf_of, login, make_client

AS_OF = date(2026, 3, 2)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path, monkeypatch, pg_server_url):
    url, drop = aged_warehouse(request.param, tmp_path, monkeypatch)
    yield url
    drop()


def _expected(engine, where: str) -> dict:
    """Per customer and company currency, straight from the invoices: invoices, open units."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select customer_id, company_currency, count(*) as n, sum(amount_residual_company) as amount "
            f"from invoice_aging where {where} group by customer_id, company_currency")).all()
    return {(r[0], r[1]): (r[2], round(float(r[3]) * 10_000)) for r in rows}


def _got(reader, engine, params) -> tuple[dict, dict]:
    reader.refresh_worklist()
    with engine.connect() as conn:
        data = reader.worklist(conn, Filters.parse({**params, "handled": "1"}), AS_OF, 1000)
    rows = {(r["customer_id"], r["company_currency"]): (int(r["invoices"]), int(r["amount_units"]))
            for g in data["groups"] for r in g["rows"]}
    totals = {g["key"]: g["customers"] for g in data["groups"]}
    totals["_all"] = data["total_customers"]  # with customers of no action group (not listed)
    return rows, totals


@pytest.mark.parametrize("params, where", [
    ({}, "dunning_status = 'dunned'"),
    ({"hold": "any"}, "dunning_status in ('dunned', 'on_hold')"),
    ({"hold": "promise"}, "dunning_status = 'on_hold' and hold_reason = 'promise'"),
    ({"currency": "USD"}, "dunning_status = 'dunned' and currency = 'USD'"),
    ({"stage": "call"}, "dunning_status = 'dunned' and stage = 'call'"),
])
def test_the_rollup_gives_what_summing_the_invoices_gives(fresh_url, params, where):
    engine = sa.create_engine(fresh_url)
    rows, totals = _got(Reader(engine), engine, params)
    expected = _expected(engine, where)
    assert rows and rows == {k: v for k, v in expected.items() if k in rows}
    assert totals["_all"] == len(expected)
    engine.dispose()


def test_a_new_snapshot_rebuilds_the_rollup(fresh_url):
    engine = sa.create_engine(fresh_url)
    reader = Reader(engine)
    before, _ = _got(reader, engine, {})
    with engine.begin() as conn:  # the day run again: a new run id, other amounts
        conn.execute(sa.text("update invoice_aging set run_id = 'rerun', "
                             "amount_residual_company = amount_residual_company * 2"))
    after, _ = _got(reader, engine, {})
    assert after == {k: (n, 2 * units) for k, (n, units) in before.items()}
    engine.dispose()


def test_the_counts_leave_out_a_customer_handled_today(fresh_url, users_file):
    client = make_client(fresh_url, users_file)
    assert login(client, "alice").status_code == 303
    engine = sa.create_engine(fresh_url)
    reader = Reader(engine)
    _, before = _got(reader, engine, {})
    with engine.connect() as conn:
        data = reader.worklist(conn, Filters.parse({}), AS_OF, 1000)
    assert "/customers/30" in client.get("/").text
    token = csrf_of(client.get("/customers/30").text)
    assert client.post("/customers/30/call", data={"csrf_token": token, "outcome": "no_answer"}).status_code == 303
    with engine.connect() as conn:
        reader.refresh_worklist()
        now = reader.worklist(conn, Filters.parse({}), AS_OF, 1000)
    group = next(g["key"] for g in data["groups"] if any(r["customer_id"] == 30 for r in g["rows"]))
    counts = {g["key"]: g["customers"] for g in now["groups"]}
    assert counts[group] == before[group] - 1 and now["total_customers"] == data["total_customers"] - 1
    assert {g["key"]: g["customers"] for g in data["groups"]} == {k: v for k, v in before.items() if k != "_all"}
    html = client.get("/").text
    assert "/customers/30" not in html
    engine.dispose()

"""The workbench benchmark at a tiny size: it fills a fresh PostgreSQL warehouse, serves the
pages and reports a figure for each (no timing is asserted: only that it runs and reports)."""

from __future__ import annotations

import sqlalchemy as sa

from benchmarks import workbench as bench
from dunning_pipeline_tests.conftest import _admin_engine


def test_the_workbench_benchmark_runs_and_reports_each_page(pg_server_url, capsys):
    def databases() -> set[str]:
        with _admin_engine().connect() as conn:
            return set(conn.execute(sa.text(  # others' tests create databases meanwhile: only ours
                "select datname from pg_database where datname like 'dunning_bench_wb_%'")).scalars())

    before = databases()
    bench.main(["--customers", "40", "--invoices", "300", "--requests", "2"])
    table = capsys.readouterr().out
    assert table.startswith("40 customers, 300 open invoices (PostgreSQL)")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "requests" not in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| worklist, first page", "| worklist, stage and currency filter", "| worklist, segment filter, page 3",
        "| customer page (2 different customers)", rows[4].split(" | ")[0]]
    assert rows[4].startswith("| customer page (the biggest customer: ")
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert cells[1] == "2" and all(c.isdigit() for c in cells[2:]), r
    assert databases() == before  # its database is dropped


def test_the_fill_loads_the_tables_the_workbench_reads(pg_database):
    counts = bench.fill(pg_database, 30, 200, lambda m: None)
    assert counts["odoo_customers"] == 30 and counts["invoice_aging"] == 200
    assert {"dunning_history", "customer_timeline", "reminder_drafts", "instalment_aging", "dunning_holds",
            "workbench_actions"} <= set(counts)
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        per_customer = conn.execute(sa.text("select count(distinct customer_id) from invoice_aging")).scalar()
        statuses = set(conn.execute(sa.text("select distinct dunning_status from invoice_aging")).scalars())
    engine.dispose()
    assert per_customer == 30  # every customer has an invoice
    assert {"dunned", "on_hold", "not_in_dunning"} <= statuses

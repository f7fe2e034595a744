"""The four dunning assets materialized by Dagster against a warehouse pre-filled with raw rows,
on two consecutive as-of days and a replay, on SQLite and PostgreSQL."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline.dunning.assets import ASSET_CHECKS, ASSETS
from dunning_pipeline.dunning.definitions import defs
from dunning_pipeline.warehouse.resource import WarehouseResource

from . import dataset as D


@pytest.fixture
def filled(warehouse, monkeypatch):
    monkeypatch.delenv("DUNNING_POLICY_FILE", raising=False)
    monkeypatch.setenv("DUNNING_TIMEZONE", "UTC")
    D.fill(warehouse)
    return warehouse


def _materialize(warehouse, day: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize([*ASSETS, *ASSET_CHECKS], resources={"warehouse": WarehouseResource(database_url=warehouse.url)},
                            partition_key=day)
    assert result.success
    return result


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert len(events) == 1
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def test_two_nights_and_a_rerun(filled):
    day1 = _materialize(filled, "2026-03-02")
    checks = day1.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("invoice_aging_reconciles", True)]

    recv = _metadata(day1, "receivables")
    assert recv["dagster/row_count"] == 17 and recv["excluded_count"] == 2
    assert "INV/2026/00602" in recv["excluded"] and "customer held back by a data-quality check" in recv["excluded"]
    assert [c.name for c in recv["dagster/column_schema"].columns][:3] == ["invoice_id", "invoice_number", "move_type"]

    aging_md = _metadata(day1, "invoice_aging")
    assert aging_md["dagster/row_count"] == 17 and aging_md["reconciles"] is True
    assert "| EUR | 130.02 | 5,500.50 | 1,129.99 | 0.00 | 40.00 | 6,800.51 | 6,800.51 | yes |" in aging_md["bucket_totals"]
    assert "| USD | 0.00 | 1,000.00 | 0.00 | 0.00 | 0.00 | 1,000.00 | 1,000.00 | yes |" in aging_md["bucket_totals"]
    assert aging_md["on_hold"] == 8

    comms = _metadata(day1, "customer_communications")
    assert comms["open_disputes"] == 3 and comms["unmatched_tickets"] == 1

    hist = _metadata(day1, "dunning_history")
    assert hist["rows_appended"] == 12 and hist["dagster/row_count"] == 12 and hist["entered"] == 12
    table = hist["transitions_by_stage"]
    assert "reminder_1   | days_overdue |       1 | 250.50 EUR" in table
    assert "call         | days_overdue |       1 | 1,000.00 USD" in table

    aging = filled.read("invoice_aging").set_index("invoice_id")
    assert (aging["as_of_date"] == pd.Timestamp("2026-03-02")).all()
    assert aging.loc[106, ["due_stage", "stage", "hold_reason"]].tolist() == ["collection", "final_notice", "dispute"]
    assert aging.loc[104, "amount_residual"] == 10_000_000 and aging.loc[104, "amount_residual_company"] == 9_000_000

    # Next night: 102 was paid, 9006 (created 03-03) disputes 101.
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    filled.upsert("odoo_invoices", invoices[invoices["id"] == 102])
    day2 = _materialize(filled, "2026-03-03")
    hist2 = _metadata(day2, "dunning_history")
    assert hist2["rows_appended"] == 2 and hist2["dagster/row_count"] == 14 and hist2["closed"] == 1
    assert "| reminder_1   | closed     | paid     |       1 | 0.00 EUR" in hist2["transitions_by_stage"]
    assert "| pre_due      | pre_due    | hold     |       1 | 100.00 EUR" in hist2["transitions_by_stage"]
    stored = filled.read("dunning_history", order_by=["id"])
    assert stored["as_of_date"].tolist() == [pd.Timestamp("2026-03-02")] * 12 + [pd.Timestamp("2026-03-03")] * 2
    assert stored["run_id"].tolist()[-1] == day2.run_id

    # The same night again: nothing new. An earlier night: nothing recorded, said so.
    again = _metadata(_materialize(filled, "2026-03-03"), "dunning_history")
    assert again["rows_appended"] == 0 and again["dagster/row_count"] == 14
    # The UI shows the table's typed columns whether or not the run appended rows.
    schema = {c.name: c.type for c in again["dagster/column_schema"].columns}
    assert list(schema)[:4] == ["id", "invoice_id", "invoice_number", "move_type"]
    assert (schema["invoice_id"], schema["as_of_date"], schema["amount_residual"]) == ("bigint", "date", "numeric(19,4)")
    assert [c.name for c in hist2["dagster/column_schema"].columns] == list(schema)
    replay = _materialize(filled, "2026-03-01")
    past = _metadata(replay, "dunning_history")
    assert past["skipped_before_latest"] is True and past["rows_appended"] == 0
    assert past["latest_recorded_before_run"] == "2026-03-03"
    assert past["history_not_rewritten"] == "2026-03-01 is before the last recorded day 2026-03-03"
    assert "history_not_rewritten" not in hist2
    assert filled.count("dunning_history") == 14
    assert (filled.read("invoice_aging")["as_of_date"] == pd.Timestamp("2026-03-01")).all()


def test_history_refuses_an_aging_table_of_another_day(filled):
    _materialize(filled, "2026-03-02")
    only_history = [a for a in ASSETS if a.key == dg.AssetKey("dunning_history")]
    result = dg.materialize(only_history, resources={"warehouse": WarehouseResource(database_url=filled.url)},
                            partition_key="2026-03-04", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "invoice_aging holds as-of 2026-03-02, this run's as-of is 2026-03-04" in str(failure.event_specific_data.error)
    assert filled.count("dunning_history") == 12


def test_definitions_declare_group_owners_kinds_and_lineage():
    repo = dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": WarehouseResource()})).get_repository_def()
    graph = repo.asset_graph
    for name in ("receivables", "customer_communications", "invoice_aging", "dunning_history"):
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "dunning" and node.owners == ["team:finance-data"]
        assert {"pandas", "sql"} <= set(node.kinds) and node.description
    assert dg.AssetKey("invoice_aging") in graph.get(dg.AssetKey("dunning_history")).parent_keys
    assert {dg.AssetKey("receivables"), dg.AssetKey("customer_communications"), dg.AssetKey("dunning_holds")} <= \
        graph.get(dg.AssetKey("invoice_aging")).parent_keys
    assert {dg.AssetKey(k) for k in ("odoo_invoices", "odoo_customers")} <= graph.get(dg.AssetKey("receivables")).parent_keys


def test_a_fresh_warehouse_materializes_empty_tables(sqlite_url, monkeypatch):
    monkeypatch.delenv("DUNNING_POLICY_FILE", raising=False)
    result = dg.materialize([*ASSETS, *ASSET_CHECKS], resources={"warehouse": WarehouseResource(database_url=sqlite_url)},
                            partition_key="2026-03-02")
    assert result.success
    assert _metadata(result, "invoice_aging")["dagster/row_count"] == 0
    assert _metadata(result, "dunning_history")["rows_appended"] == 0


def test_a_broken_policy_file_fails_the_run_naming_file_and_line(filled, tmp_path, monkeypatch):
    bad = tmp_path / "policy.yaml"
    bad.write_text("policies:\n  default:\n    stages:\n      - {name: a, days: 1, action: fax, tone: firm}\n")
    monkeypatch.setenv("DUNNING_POLICY_FILE", str(bad))
    result = dg.materialize(ASSETS[:1], resources={"warehouse": WarehouseResource(database_url=filled.url)},
                            partition_key="2026-03-02", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"{bad}, line 4, policies.default.stages[0].action" in str(failure.event_specific_data.error)
    assert filled.count("receivables") == 0


def test_reconciliation_check_fails_when_an_invoice_is_missing_from_the_aging(filled):
    _materialize(filled, "2026-03-02")
    filled.delete("invoice_aging", filled.table("invoice_aging").c.invoice_id == 104)  # 1,000.00 USD
    check = ASSET_CHECKS[0](warehouse=WarehouseResource(database_url=filled.url))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["invoices_not_matching"].value == 1
    assert check.metadata["sample_invoice_ids"].value == "104"
    assert "| USD | 0.00 | 1,000.00 | -1,000.00 |" in check.metadata["totals"].value

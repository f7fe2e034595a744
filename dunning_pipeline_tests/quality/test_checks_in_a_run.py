"""The checks in real Dagster runs, on SQLite and PostgreSQL: stand-in assets with the keys
odoo_invoices and odoo_customers write raw rows (the clean sandbox tables, one record spoilt),
the quality checks run, and a stand-in for the dunning engine reads what it may use.

A blocking (ERROR) failure keeps the downstream asset from running; a WARN failure quarantines
exactly the bad rows while the good rows flow on unchanged; the next night, with the record
fixed in the source, it returns."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline import settings
from dunning_pipeline.quality import frames, quarantine
from dunning_pipeline.quality.checks import build_asset_checks
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline_tests.quality.conftest import AS_OF

pytestmark = pytest.mark.slow  # whole Dagster runs

SOURCES = ("odoo_invoices", "odoo_customers")


@pytest.fixture(scope="module")
def source_tables(clean_run) -> dict[str, pd.DataFrame]:
    return {a: frames.read_table(clean_run.warehouse, a)[0] for a in SOURCES}


def _source(name: str, tables: dict, corrupt=None):
    @dg.asset(name=name, group_name="odoo")
    def _write(warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get_warehouse()
        wh.replace(name, tables[name])
        if corrupt is not None:
            corrupt(wh)
        return dg.MaterializeResult(metadata={"dagster/row_count": len(tables[name])})

    return _write


@dg.asset(deps=list(SOURCES), group_name="dunning")
def receivables_stand_in(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Reads the invoices the way the engine does: the quarantined ones left out."""
    wh = warehouse.get_warehouse()
    held = quarantine.quarantined_ids(wh, "odoo_invoices")
    ids = sorted(int(i) for i in wh.read("odoo_invoices", columns=["id"])["id"] if int(i) not in held)
    return dg.MaterializeResult(metadata={"invoice_ids": dg.MetadataValue.json(ids)})


def run_night(url: str, tables: dict, *, corrupt=None, run_config=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [_source("odoo_invoices", tables, corrupt), _source("odoo_customers", tables), receivables_stand_in,
         *build_asset_checks("odoo_invoices"), *build_asset_checks("odoo_customers")],
        resources={"warehouse": WarehouseResource(database_url=url)},
        tags={settings.AS_OF_TAG: AS_OF.isoformat()},
        run_config=run_config,
        raise_on_error=False,
    )


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _evaluation(result, asset: str, check: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations()
                if e.asset_key.to_user_string() == asset and e.check_name == check)


def _used_ids(result) -> list[int]:
    mat = next(e for e in result.get_asset_materialization_events()
               if e.asset_key.to_user_string() == "receivables_stand_in")
    return mat.materialization.metadata["invoice_ids"].value


def _spoil(tables: dict, column: str, value, dtype=None) -> tuple[dict, int]:
    inv = tables["odoo_invoices"].copy()
    i = int(inv.index[(inv["state"] == "posted") & (inv["move_type"] == "out_invoice")][0])
    if dtype:
        inv[column] = inv[column].astype(dtype)
    inv.loc[i, column] = value
    return {**tables, "odoo_invoices": inv}, int(inv.loc[i, "id"])


def test_blocking_failure_stops_the_downstream_assets(warehouse, source_tables):
    tables, bad_id = _spoil(source_tables, "payment_state", "frozen")
    result = run_night(warehouse.url, tables)
    assert not result.success
    assert _materialized(result) == {"odoo_invoices", "odoo_customers"}
    ev = _evaluation(result, "odoo_invoices", "known_payment_states")
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert f"id {bad_id}, field payment_state = 'frozen'" in ev.description
    assert "'frozen' (1 row)" in ev.metadata["unknown_values"].value
    assert f"| {bad_id} | payment_state | frozen |" in ev.metadata["failures"].value
    # the other checks of the run still report
    assert _evaluation(result, "odoo_invoices", "amounts_consistent").passed
    assert _evaluation(result, "odoo_customers", "emails_well_formed").passed


def test_warn_failures_quarantine_exactly_the_bad_rows_and_the_rest_flows_on(warehouse, source_tables):
    tables, residual_id = _spoil(source_tables, "amount_residual", 10**12)
    ghost = int(source_tables["odoo_customers"]["id"].max()) + 500
    inv = tables["odoo_invoices"]
    partner_row = int(inv.index[(inv["state"] == "posted") & (inv["id"] != residual_id)][0])
    partner_id_bad = int(inv.loc[partner_row, "id"])
    inv["partner_id"] = inv["partner_id"].astype("Int64")
    inv.loc[partner_row, "partner_id"] = ghost

    night1 = run_night(warehouse.url, tables)
    assert night1.success
    assert "receivables_stand_in" in _materialized(night1)
    amounts = _evaluation(night1, "odoo_invoices", "amounts_consistent")
    assert not amounts.passed and amounts.severity == dg.AssetCheckSeverity.WARN
    assert f"| {residual_id} | amount_residual | 100000000.0000 |" in amounts.metadata["failures"].value
    assert amounts.metadata["quarantined_records"].value == 1
    refs = _evaluation(night1, "odoo_invoices", "partner_references")
    assert not refs.passed and refs.severity == dg.AssetCheckSeverity.WARN

    held = quarantine.read_quarantine(warehouse, "odoo_invoices")
    assert sorted(zip(held["record_id"].astype(int), held["check_name"], held["field"])) == sorted(
        [(residual_id, "amounts_consistent", "amount_residual"), (partner_id_bad, "partner_references", "partner_id")])
    assert quarantine.quarantined_ids(warehouse, "odoo_invoices") == {residual_id, partner_id_bad}
    assert held["run_id"].eq(night1.run_id).all()

    all_ids = set(inv["id"].astype(int))
    assert set(_used_ids(night1)) == all_ids - {residual_id, partner_id_bad}
    stored = warehouse.read("odoo_invoices").set_index("id").sort_index()
    written = inv.set_index("id").sort_index()
    good = sorted(all_ids - {residual_id, partner_id_bad})
    pd.testing.assert_frame_equal(stored.loc[good], written.loc[good], check_dtype=False)

    # the accountant fixes both records in Odoo; the next night they are back
    night2 = run_night(warehouse.url, source_tables)
    assert night2.success
    assert quarantine.read_quarantine(warehouse, "odoo_invoices").empty
    assert set(_used_ids(night2)) == set(source_tables["odoo_invoices"]["id"].astype(int))


def test_reference_share_is_configurable_per_run(sqlite_url, source_tables):
    ghost = int(source_tables["odoo_customers"]["id"].max()) + 500
    tables, bad_id = _spoil(source_tables, "commercial_partner_id", ghost, "Int64")
    strict = run_night(sqlite_url, tables, run_config={
        "ops": {"odoo_invoices_references": {"config": {"max_broken_reference_share": 0.0}}}})
    assert not strict.success and "receivables_stand_in" not in _materialized(strict)
    ev = _evaluation(strict, "odoo_invoices", "partner_references")
    assert ev.severity == dg.AssetCheckSeverity.ERROR
    assert ev.metadata["broken_reference_share"].value > 0
    assert f"id {bad_id}, field commercial_partner_id" in ev.description


def test_a_stored_date_that_is_not_a_date_blocks_and_is_named(sqlite_url, source_tables):
    """Only SQLite can hold one (PostgreSQL refuses it); every reader of the table would fail."""
    inv = source_tables["odoo_invoices"]
    bad_id = int(inv["id"].iloc[4])

    def corrupt(wh):
        with wh.begin() as conn:
            conn.execute(sa.text("UPDATE odoo_invoices SET invoice_date_due = '2026-02-30' WHERE id = :i"),
                         {"i": bad_id})

    result = run_night(sqlite_url, source_tables, corrupt=corrupt)
    assert not result.success and "receivables_stand_in" not in _materialized(result)
    ev = _evaluation(result, "odoo_invoices", "dates_parse")
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert f"| {bad_id} | invoice_date_due | 2026-02-30 |" in ev.metadata["failures"].value
    assert _evaluation(result, "odoo_invoices", "known_states").passed  # the rest was still checked


def test_a_blocking_failure_keeps_the_nightly_jobs_dunning_assets_from_running(tmp_path, monkeypatch):
    """The real nightly job of the code location, against the sandbox with one unknown payment state."""
    from dunning_pipeline import definitions as top
    from dunning_pipeline.sandbox import Sandbox, data_faults

    with Sandbox(seed=7, customers=20, invoices=160, as_of=AS_OF) as sb:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv(settings.DATABASE_URL_VAR, f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
        [fault] = data_faults.inject(sb.data, ["unknown_payment_state"])
        defs = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs,
            dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        job = defs.resolve_job_def("nightly_dunning")
        result = job.execute_in_process(
            partition_key=AS_OF.isoformat(), raise_on_error=False,
            instance=dg.DagsterInstance.ephemeral())

    assert not result.success
    ev = _evaluation(result, "odoo_invoices", "known_payment_states")
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    assert f"id {fault.record_id}, field payment_state = 'frozen'" in ev.description
    graph = defs.resolve_asset_graph()
    dunning = {k.to_user_string() for k in graph.get_all_asset_keys()
               if graph.get(k).group_name == "dunning" and graph.get(k).is_materializable}
    assert dunning and not dunning & _materialized(result)
    assert dunning <= {node.name for node in job.nodes}  # each is its own step
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert not started & dunning, "the dunning assets must not even start"
    assert {"odoo_invoices", "odoo_customers", "zendesk_tickets"} <= _materialized(result)

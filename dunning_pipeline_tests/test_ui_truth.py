"""What the UI shows is true: every asset's column schema is its warehouse table as PostgreSQL
holds it (type, nullability, the column's comment), and every check states its severity rule
and is blocking only if it can fail with ERROR."""

from __future__ import annotations

from datetime import date

import dagster as dg
import sqlalchemy as sa

from dunning_pipeline_tests.conftest import point_at_sandbox

# Assets that are not a warehouse table (the Slack message): no column schema to show.
NOT_TABLES = {"weekly_slack_alert"}

_CATALOG = sa.text("""
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum),
           NOT a.attnotnull
    FROM pg_attribute a
    WHERE a.attrelid = CAST(:table AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum""")


def test_every_check_states_its_severity_rule_and_blocks_only_if_it_can_fail_with_error():
    from dunning_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    assert len(graph.asset_check_keys) > 20
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        rule = spec.metadata.get("severity_rule")
        assert rule and rule.startswith("Severity: ") and spec.description.endswith(rule), key
        can_error = spec.metadata["can_fail_with_error"]
        assert can_error == ("ERROR when" in rule), key
        if spec.blocking:
            assert can_error, f"{key.to_user_string()} is blocking but can only warn"


def test_every_asset_shows_its_warehouse_columns_as_postgresql_holds_them(tmp_path, monkeypatch, pg_database):
    """One night on a small sandbox into PostgreSQL: the schema each materialization (or, for the
    table accountants fill, the definition) shows is the table in PostgreSQL's own catalog."""
    from dunning_pipeline import definitions as top
    from dunning_pipeline import settings
    from dunning_pipeline.sandbox import Sandbox

    defs = top.defs
    with Sandbox(seed=7, customers=12, invoices=60, as_of=date(2026, 3, 2)) as sb:
        point_at_sandbox(sb, tmp_path, monkeypatch)
        monkeypatch.setenv(settings.DATABASE_URL_VAR, pg_database)
        # The resources bind the environment when built: built again, now that it points here.
        night = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs, dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        result = night.resolve_job_def("nightly_dunning").execute_in_process(
            partition_key="2026-03-02", instance=dg.DagsterInstance.ephemeral())
    assert result.success
    shown = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        shown[materialization.asset_key.to_user_string()] = materialization.metadata.get("dagster/column_schema")
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for key in keys - set(shown):  # not materialized by the night: what the definition shows
        shown[key] = graph.get(dg.AssetKey(key)).metadata.get("dagster/column_schema")
    assert NOT_TABLES < keys and {k for k, s in shown.items() if s is None} == NOT_TABLES

    engine = sa.create_engine(pg_database)
    try:
        with engine.connect() as conn:
            for key in sorted(keys - NOT_TABLES):
                schema = shown[key].schema if hasattr(shown[key], "schema") else shown[key]
                columns = [(c.name, c.type, c.description, c.constraints.nullable) for c in schema.columns]
                assert columns == [tuple(r) for r in conn.execute(_CATALOG, {"table": key})], key
                assert all(c[2] and c[2].strip() for c in columns), key
    finally:
        engine.dispose()
    assert "numeric(19,4)" in {c.type for c in shown["invoice_aging"].schema.columns}


def test_an_existing_warehouse_gets_the_column_descriptions_of_the_code(pg_database):
    from dunning_pipeline.warehouse.store import Warehouse

    wh = Warehouse(pg_database)
    try:
        wh.ensure_schema()
        with wh.begin() as conn:  # a warehouse created before the column had its description
            conn.execute(sa.text("COMMENT ON COLUMN receivables.customer_id IS NULL"))
        assert wh.ensure_schema() == ["described column receivables.customer_id"]
        with wh.begin() as conn:
            stored = conn.execute(sa.text(
                "SELECT col_description('receivables'::regclass, attnum) FROM pg_attribute "
                "WHERE attrelid = 'receivables'::regclass AND attname = 'customer_id'")).scalar_one()
        assert stored == wh.table("receivables").c.customer_id.comment
        assert wh.ensure_schema() == []
    finally:
        wh.dispose()

"""An incremental timeline equals a full rebuild (issue 12 §3): the night after a full build writes
only the customers whose events, name or view changed and carries the others over, and what it
leaves equals, row for row, the timeline built from scratch from the same inputs in a fresh
warehouse. The same day again writes nothing and changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline import settings
from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.warehouse.store import Warehouse

pytestmark = pytest.mark.slow  # two nights on the sandbox and one rebuild, per backend: about a minute each

FIRST = date(2026, 3, 2)
TIMELINE_TABLES = ("customer_timeline", "customer_timeline_views")


def _defs():
    from dunning_pipeline import definitions as top

    night = dg.define_asset_job(
        "night", selection=dg.AssetSelection.groups("odoo", "zendesk", "dunning").without_checks(),
        executor_def=dg.in_process_executor)
    timeline = dg.define_asset_job("timeline", selection=dg.AssetSelection.assets("customer_timeline"),
                                   executor_def=dg.in_process_executor)
    return dg.Definitions.merge(
        top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
        top.reporting_part.defs, dg.Definitions(jobs=[night, timeline], resources=top.build_resources()))


def _run(defs, job: str, day: date, instance) -> dict:
    """Run `job` for `day`; the timeline's materialization metadata when it ran."""
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False)
    assert result.success, f"{job} of {day} failed"
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey("customer_timeline")]
    return {k: v.value for k, v in events[0].materialization.metadata.items()} if events else {}


def _rows(wh: Warehouse, table: str) -> pd.DataFrame:
    frame = wh.read(table)
    return frame.sort_values(["customer_id", "seq"] if "seq" in frame else ["customer_id"]).reset_index(drop=True)


def test_the_night_after_writes_only_what_changed_and_equals_a_full_rebuild(tmp_path, monkeypatch, warehouse_url):
    monkeypatch.setenv(settings.DATABASE_URL_VAR, warehouse_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    second = FIRST + timedelta(days=1)
    with Sandbox(seed=7, customers=30, invoices=300, as_of=FIRST, zendesk_export_limit_per_minute=None) as sb:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        _run(defs, "night", FIRST, instance)
        first = _run(defs, "timeline", FIRST, instance)
        assert first["customers_written"] == first["customers"] > 0  # nothing to carry over yet

        sb.advance_night()  # payments, new invoices, ticket updates: new comments and stage changes
        _run(defs, "night", second, instance)
        wh = Warehouse(warehouse_url)
        # ...and an accountant renames a customer in Odoo: only its view changes.
        held = wh.read("customer_timeline_views", columns=["customer_id"])
        renamed = int(held["customer_id"].iloc[0])
        c = wh.table("odoo_customers").c
        with wh.begin() as conn:
            conn.execute(wh.table("odoo_customers").update().where(c.id == renamed).values(name="Renamed GmbH"))
        night = _run(defs, "timeline", second, instance)
        assert 0 < night["customers_written"] < night["customers"]
        incremental = {t: _rows(wh, t) for t in TIMELINE_TABLES}
        views = incremental["customer_timeline_views"].set_index("customer_id")
        assert views.loc[renamed, "customer_name"] == "Renamed GmbH" and "Renamed GmbH" in views.loc[renamed, "html"]
        for frame in incremental.values():
            assert (frame["as_of_date"] == pd.Timestamp(second)).all()

        again = _run(defs, "timeline", second, instance)  # the same day again: nothing changed
        assert again["customers_written"] == 0 and again["customers"] == night["customers"]
        for table, frame in incremental.items():
            pd.testing.assert_frame_equal(_rows(wh, table), frame, obj=f"{table} of the same day again")
        inputs = {t.name: wh.read(t.name) for t in wh.metadata.sorted_tables
                  if t.name not in TIMELINE_TABLES and sa.inspect(wh.engine).has_table(t.name)}
        wh.dispose()

    # From scratch: a fresh warehouse with every other table as it is now, the timeline never built.
    fresh_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    fresh = Warehouse(fresh_url)
    fresh.ensure_schema()
    builds = inputs.pop("warehouse_builds")
    inputs["warehouse_builds"] = builds[~builds["table_name"].isin(TIMELINE_TABLES)]
    for table, frame in inputs.items():  # extract_state has the marks ensure_schema wrote already
        (fresh.upsert if table == "extract_state" else fresh.append)(table, frame)
    monkeypatch.setenv(settings.DATABASE_URL_VAR, fresh_url)
    rebuilt = _run(_defs(), "timeline", second, dg.DagsterInstance.ephemeral())
    assert rebuilt["customers_written"] == rebuilt["customers"] == night["customers"]
    for table, frame in incremental.items():
        pd.testing.assert_frame_equal(_rows(fresh, table), frame, check_dtype=False, obj=f"{table}, full rebuild")
    fresh.dispose()

"""The nightly asset `workbench_worklist` builds the worklist's rollup after the aging: the
first worklist request of the day then reads it without rebuilding, and what the asset built is
what the workbench's fallback rebuild builds from the same snapshot."""

from __future__ import annotations

import logging
from datetime import date

import dagster as dg
import pytest
import sqlalchemy as sa

from dunning_pipeline.workbench import rollup
from dunning_pipeline.workbench.queries import Reader
from dunning_pipeline_tests.conftest import point_at_sandbox
from dunning_pipeline_tests.workbench.conftest import login, make_client

TABLES = ("workbench_worklist", "workbench_worklist_customers")


def _night(day: str):
    from dunning_pipeline import definitions as top

    defs = dg.Definitions.merge(
        top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
        top.reporting_part.defs, dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
    result = defs.resolve_job_def("nightly_dunning").execute_in_process(
        partition_key=day, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def _contents(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t: sorted((tuple(r) for r in conn.execute(sa.text(f"select * from {t}"))), key=repr) for t in TABLES}


def _marks(engine) -> tuple[str | None, str | None]:
    with engine.connect() as conn:
        return rollup.current_snapshot(conn), rollup.built_snapshot(conn)


@pytest.mark.slow
def test_after_a_night_the_first_worklist_request_does_not_rebuild_and_the_rollup_is_the_lazy_ones(
        tmp_path, monkeypatch, users_file, caplog):
    from dunning_pipeline.sandbox import Sandbox

    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2)) as sb:
        url = point_at_sandbox(sb, tmp_path, monkeypatch)
        result = _night("2026-03-02")
    engine = sa.create_engine(url)
    current, built = _marks(engine)
    assert current is not None and current.startswith("2026-03-02|") and built == current
    nightly = _contents(engine)
    assert nightly["workbench_worklist"] and nightly["workbench_worklist_customers"]
    [materialization] = [e.step_materialization_data.materialization for e in result.get_asset_materialization_events()
                         if e.asset_key == dg.AssetKey("workbench_worklist")]
    assert materialization.metadata["dagster/row_count"].value == len(nightly["workbench_worklist"])
    assert materialization.metadata["customers_rows"].value == len(nightly["workbench_worklist_customers"])
    with engine.connect() as conn:
        recorded = dict(conn.execute(sa.text(
            "select table_name, run_id from warehouse_builds where table_name like 'workbench_worklist%'")).all())
    assert recorded == dict.fromkeys(TABLES, result.run_id)

    # The first request of the day: served from the nightly rollup, nothing rebuilt.
    caplog.set_level(logging.INFO, logger="dunning_pipeline.workbench")
    client = make_client(url, users_file)
    assert login(client, "alice").status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    assert not [r for r in caplog.records if "rebuilding" in r.getMessage()]
    reader = Reader(engine)
    assert reader.refresh_worklist() is False and reader.rebuilds == 0
    assert _marks(engine) == (current, built) and _contents(engine) == nightly

    # The fallback (a stale mark) rebuilds, says so, and builds the very rows the asset built.
    with engine.begin() as conn:
        conn.execute(sa.text("update extract_state set value = 'stale' where key = :k"), {"k": rollup.WORKLIST_STATE})
        conn.execute(sa.text("delete from workbench_worklist"))
    assert reader.refresh_worklist() is True and reader.rebuilds == 1
    assert [r for r in caplog.records if "rebuilding" in r.getMessage() and r.levelno == logging.WARNING]
    assert _marks(engine) == (current, current) and _contents(engine) == nightly
    engine.dispose()


def test_the_asset_refuses_an_aging_of_another_day(tmp_path, monkeypatch):
    """An aging snapshot of another day is not rolled up for this one (and the old rollup stays)."""
    from dunning_pipeline.reporting.worklist_assets import workbench_worklist
    from dunning_pipeline.warehouse.resource import WarehouseResource
    from dunning_pipeline_tests.workbench.conftest import aged_warehouse

    url, drop = aged_warehouse("sqlite", tmp_path, monkeypatch)
    try:
        engine = sa.create_engine(url)
        Reader(engine).refresh_worklist()  # the workbench's rollup of the aged day (2026-03-02)
        before, marks = _contents(engine), _marks(engine)
        result = dg.materialize([workbench_worklist], partition_key="2026-03-05",
                                resources={"warehouse": WarehouseResource(database_url=url)},
                                raise_on_error=False)
        assert not result.success
        failure = result.failure_data_for_node("workbench_worklist")
        assert "materialize invoice_aging in this run first" in str(failure.error)
        assert _contents(engine) == before and _marks(engine) == marks
        engine.dispose()
    finally:
        drop()

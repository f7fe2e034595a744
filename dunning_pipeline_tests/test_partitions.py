"""The as-of day as a daily partition: its definition, how a run's day is read, and one asset
materialized for one day from the command line as the UI does it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dunning_pipeline import partitions, settings
from dunning_pipeline.dunning.assets import receivables
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse

from .dunning import dataset as D

REPO = Path(__file__).resolve().parents[1]


def test_the_partitions_start_comes_from_the_environment_and_a_bad_value_names_the_variable():
    assert partitions.partitions_start({}) == "2025-01-01"
    assert partitions.partitions_start({"DUNNING_PARTITIONS_START": " 2026-01-15 "}) == "2026-01-15"
    with pytest.raises(settings.SettingsError, match=r"DUNNING_PARTITIONS_START='15.01.2026' is not a date"):
        partitions.partitions_start({"DUNNING_PARTITIONS_START": "15.01.2026"})


def test_each_day_in_the_business_time_zone_is_a_partition_up_to_today():
    days = partitions.build_daily_partitions("2026-03-01", "Europe/Berlin")
    # 23:30 UTC on 2 March is already 3 March in Berlin: the current day is a partition too.
    now = datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("UTC"))
    assert days.get_partition_keys(current_time=now) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert days.timezone == "Europe/Berlin"
    from dunning_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    assert partitioned == {"receivables", "customer_communications", "invoice_aging", "dunning_history",
                           "ar_aging_report", "collection_kpis", "customer_timeline", "late_payment_charges",
                           "reminder_drafts", "workbench_worklist"}
    assert {graph.get(dg.AssetKey(k)).partitions_def for k in partitioned} == {partitions.as_of_days}


@pytest.fixture
def filled(sqlite_url, monkeypatch):
    monkeypatch.delenv("DUNNING_POLICY_FILE", raising=False)
    monkeypatch.setenv("DUNNING_TIMEZONE", "UTC")
    wh = Warehouse(sqlite_url)
    wh.ensure_schema()
    D.fill(wh)
    yield wh
    wh.dispose()


def _failure(result) -> str:
    return str(next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)


def test_a_run_reads_its_day_from_its_partition_and_refuses_two_days(filled):
    resources = {"warehouse": WarehouseResource(database_url=filled.url)}
    ok = dg.materialize([receivables], resources=resources, partition_key="2026-03-03",
                        tags={settings.AS_OF_TAG: "2026-03-03"})
    assert ok.success
    assert {str(d)[:10] for d in filled.read("receivables")["as_of_date"]} == {"2026-03-03"}

    both = dg.materialize([receivables], resources=resources, partition_key="2026-03-03",
                          tags={settings.AS_OF_TAG: "2026-03-02"}, raise_on_error=False)
    assert not both.success
    assert "is for partition 2026-03-03 but its tag dunning/as_of says 2026-03-02" in _failure(both)

    untagged = dg.materialize([receivables], resources=resources, tags={settings.AS_OF_TAG: "2026-03-02"},
                              raise_on_error=False)
    assert not untagged.success
    assert ("receivables is partitioned by as-of day and this run has no partition" in _failure(untagged)
            and "--partition 2026-03-02" in _failure(untagged))
    assert {str(d)[:10] for d in filled.read("receivables")["as_of_date"]} == {"2026-03-03"}  # untouched


@pytest.mark.slow
def test_one_asset_for_one_day_from_the_command_line(filled, tmp_path):
    """`dagster asset materialize --partition`, the command-line twin of the UI's partition picker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DUNNING_"))}
    env.update({"DAGSTER_HOME": str(tmp_path), settings.DATABASE_URL_VAR: filled.url, "DUNNING_TIMEZONE": "UTC",
                "GX_ANALYTICS_ENABLED": "False"})
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "dunning_pipeline.definitions",
         "--select", "receivables", "--partition", "2026-03-04"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {str(d)[:10] for d in filled.read("receivables")["as_of_date"]} == {"2026-03-04"}

"""The production dagster.yaml: a Dagster instance on real PostgreSQL from DAGSTER_PG_* variables."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from dagster._core.test_utils import environ

from dunning_pipeline_tests.conftest import production_instance_env

REPO = Path(__file__).resolve().parents[1]


@dg.asset
def probe() -> int:
    return 1


def test_dagster_yaml_puts_runs_events_and_schedules_on_postgres(tmp_path, pg_database):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = production_instance_env(home, pg_database)
    with environ(env):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert type(instance.compute_log_manager).__name__ == "LocalComputeLogManager"
            assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
            result = dg.materialize([probe], instance=instance)
            assert result.success
            run_id = result.run_id
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select run_id, status from runs")).all()
    engine.dispose()
    assert (run_id, "SUCCESS") in [tuple(r) for r in stored]


def test_every_run_concurrency_limit_matches_a_tag_a_run_really_carries():
    """A limit on a tag no run carries limits nothing (Dagster sets no job-name tag): each limit
    is on a tag the nightly job sets itself, or on the partition tag that the nightly schedule's
    runs carry (backfill runs carry it too: tests/test_daemon.py sees them queue one at a time)."""
    import yaml

    from dunning_pipeline.definitions import defs

    config = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
    assert "config" not in config["run_coordinator"], "run limits belong under `concurrency: runs:`"
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits
    job_tags = {name: defs.resolve_job_def(name).tags for name in ("nightly_dunning", "weekly_slack_alert")}
    tick = datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("UTC"))
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(scheduled_execution_time=tick, instance=instance,
                                            repository_def=defs.get_repository_def())
        [request] = defs.resolve_schedule_def("nightly_dunning_schedule").evaluate_tick(context).run_requests
    scheduled = {**job_tags["nightly_dunning"], **request.tags}
    for limit in limits:
        if "value" in limit:
            carriers = [name for name, tags in job_tags.items() if tags.get(limit["key"]) == limit["value"]]
            assert carriers, f"tag_concurrency_limits {limit} matches no job's tags: {job_tags}"
        else:
            assert limit["key"] in scheduled, f"tag_concurrency_limits {limit} matches no nightly run: {scheduled}"
    assert {"key": "dagster/partition", "limit": 1} in limits
    assert job_tags["nightly_dunning"]["dagster/retry_strategy"] == "FROM_FAILURE"


def test_every_asset_that_writes_the_warehouse_holds_its_writer_lock():
    """The run queue's limits hold only for runs that carry the tags; the step's own lock holds for
    every run, however launched. The weekly alert is the exception: its delivery ledger claims each
    part (exactly once across instances), which a lock per step would not add to."""
    from dunning_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    writers = {}
    for asset in graph.assets_defs:
        if not asset.keys or not asset.is_executable or "warehouse" not in asset.required_resource_keys:
            continue
        fn = asset.op.compute_fn.decorated_fn
        writers[asset.node_def.name] = getattr(fn, "holds_writer_lock", False)
    assert {"odoo_reconciliations", "invoice_aging", "dunning_history", "customer_timeline"} <= writers.keys()
    unlocked = sorted(name for name, locked in writers.items() if not locked)
    assert unlocked == ["post_weekly_slack_alert"], unlocked


def test_pools_of_the_extracts_are_limited_by_the_instance(tmp_path, pg_database):
    """The odoo and zendesk pools that the extract assets name get a limit from dagster.yaml."""
    from dunning_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    assert pools["odoo_invoices"] == pools["odoo_receivable_lines"] == pools["odoo_reconciliations"] == {"odoo"}
    assert pools["zendesk_tickets"] == pools["zendesk_comments"] == {"zendesk"}
    assert not pools["receivables"]
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with environ(production_instance_env(home, pg_database)):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
            # A killed run's slot is given back by run monitoring, not held until someone frees it.
            assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
            assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2

"""The production dagster.yaml: a Dagster instance on real PostgreSQL from DAGSTER_PG_* variables."""

from __future__ import annotations

import shutil
from pathlib import Path

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


def test_every_run_concurrency_limit_matches_a_tag_a_job_really_sets():
    """A limit on a tag no run carries limits nothing (Dagster sets no job-name tag)."""
    import yaml

    from dunning_pipeline.definitions import defs

    config = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert limits
    job_tags = {name: defs.resolve_job_def(name).tags for name in ("nightly_dunning", "weekly_slack_alert")}
    for limit in limits:
        carriers = [name for name, tags in job_tags.items() if tags.get(limit["key"]) == limit["value"]]
        assert carriers, f"tag_concurrency_limits {limit} matches no job's tags: {job_tags}"
    assert job_tags["nightly_dunning"]["dagster/retry_strategy"] == "FROM_FAILURE"

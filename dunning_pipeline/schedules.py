"""The nightly job and its schedule: 02:00 in DUNNING_TIMEZONE (DUNNING_NIGHTLY_CRON), each run for
the partition of its as-of day."""

from __future__ import annotations

import os

import dagster as dg

from dunning_pipeline import settings
from dunning_pipeline.as_of import as_of_for_tick
from dunning_pipeline.partitions import as_of_days

# Everything but the weekly Slack alert, which has its own job and schedule.
NIGHTLY_GROUPS = ("odoo", "zendesk", "dunning", "reporting")
JOB_TAG = "dunning/job"
NIGHTLY_CRON_VAR = "DUNNING_NIGHTLY_CRON"
DEFAULT_NIGHTLY_CRON = "0 2 * * *"


def nightly_cron() -> str:
    """When the nightly run starts, in DUNNING_TIMEZONE: `DUNNING_NIGHTLY_CRON`, default 02:00."""
    return (os.environ.get(NIGHTLY_CRON_VAR) or DEFAULT_NIGHTLY_CRON).strip()

# In one process: the steps hand data over through the warehouse, not memory, so separate
# processes would only add a code-location load (and a Great Expectations import) per step.
nightly_dunning = dg.define_asset_job(
    "nightly_dunning",
    selection=dg.AssetSelection.groups(*NIGHTLY_GROUPS),
    executor_def=dg.in_process_executor,
    # The extracts are unpartitioned (current state); every other asset is one as-of day.
    partitions_def=as_of_days,
    description="Extract Odoo and Zendesk, validate, age the receivables and record stage changes.",
    # Every run carries it, however launched: dagster.yaml limits it to one run at a time, and a
    # retried run re-executes only what failed.
    tags={JOB_TAG: "nightly_dunning", "dagster/retry_strategy": "FROM_FAILURE"},
)


# Not `build_schedule_from_partitioned_job`: that fills the day that has just ended, while the
# night of 2 March at 02:00 computes as-of 2 March (`as_of_days` holds the current day).
def _nightly_run_request(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # One run per as-of day (the run key): a cron that ticks more often starts no second night.
    as_of = as_of_for_tick(context.scheduled_execution_time, settings.timezone()).isoformat()
    return dg.RunRequest(run_key=f"nightly-{as_of}", partition_key=as_of, tags={settings.AS_OF_TAG: as_of})


def _nightly_schedule() -> dg.ScheduleDefinition:
    cron = nightly_cron()
    try:
        return dg.schedule(
            job=nightly_dunning,
            cron_schedule=cron,
            execution_timezone=settings.timezone_name(),
            name="nightly_dunning_schedule",
            description=f"On the cron {cron!r} ({NIGHTLY_CRON_VAR}, default 02:00 every night) in DUNNING_TIMEZONE;"
            " the run's partition (as-of date) is the tick's day.",
        )(_nightly_run_request)
    except dg.DagsterInvalidDefinitionError as exc:
        raise settings.SettingsError(f"{NIGHTLY_CRON_VAR}={cron!r} is not a cron expression with five fields"
                                     f" (e.g. {DEFAULT_NIGHTLY_CRON!r}, 02:00 every day): {exc}") from exc


nightly_dunning_schedule = _nightly_schedule()

"""The slack part of the code location; merged by dunning_pipeline.definitions.

The weekly alert has its own job and schedule (Monday 08:00 in DUNNING_TIMEZONE unless
DUNNING_ALERT_CRON says otherwise); each tick's run is tagged with the tick's business day, which
is the alert's period end, and keyed by it so a duplicate tick does not start a second run.
"""

from __future__ import annotations

import os

import dagster as dg

from dunning_pipeline import settings
from dunning_pipeline.as_of import as_of_for_tick
from dunning_pipeline.slack.assets import ALERT_JOB, weekly_slack_alert
from dunning_pipeline.slack.sensors import run_failure_to_slack

ALERT_CRON_VAR = "DUNNING_ALERT_CRON"
DEFAULT_ALERT_CRON = "0 8 * * 1"  # Monday 08:00

weekly_slack_alert_job = dg.define_asset_job(
    ALERT_JOB,
    selection=dg.AssetSelection.assets("weekly_slack_alert"),
    description="Post the week's dunning stage changes to Slack, exactly once.",
    # In the launching process: a killed `dagster job execute` leaves no step process behind
    # that would go on posting.
    executor_def=dg.in_process_executor,
)


def alert_cron(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(ALERT_CRON_VAR) or DEFAULT_ALERT_CRON).strip()


def build_weekly_schedule(cron: str, timezone_name: str) -> dg.ScheduleDefinition:
    def weekly_slack_alert_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        as_of = as_of_for_tick(context.scheduled_execution_time, settings.timezone())
        return dg.RunRequest(run_key=f"weekly-slack-{as_of.isoformat()}",
                             tags={settings.AS_OF_TAG: as_of.isoformat()})

    try:
        return dg.schedule(
            job=weekly_slack_alert_job,
            cron_schedule=cron,
            execution_timezone=timezone_name,
            name="weekly_slack_alert_schedule",
            description=f"The weekly Slack alert at '{cron}' in {timezone_name} ({ALERT_CRON_VAR});"
            " the run's as-of date (the alert's period end) is the tick's day.",
        )(weekly_slack_alert_schedule)
    except dg.DagsterInvalidDefinitionError as exc:
        raise settings.SettingsError(
            f"{ALERT_CRON_VAR}={cron!r} is not a cron expression such as '0 8 * * 1' (Monday 08:00)"
        ) from exc


weekly_slack_alert_schedule = build_weekly_schedule(alert_cron(), settings.timezone_name())

defs = dg.Definitions(
    assets=[weekly_slack_alert],
    jobs=[weekly_slack_alert_job],
    schedules=[weekly_slack_alert_schedule],
    sensors=[run_failure_to_slack],
)

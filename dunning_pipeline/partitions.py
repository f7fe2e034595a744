"""The business day as a Dagster partition: one `DailyPartitionsDefinition` for every asset whose
content depends on the as-of day (receivables, communications, aging, history, reports).

A partition key is an as-of date (`YYYY-MM-DD`) in `DUNNING_TIMEZONE`. The current day is a valid
partition (`end_offset=1`): the night of 2 March computes 2 March at 02:00, before the day is over.
The first day is `DUNNING_PARTITIONS_START` (default 2025-01-01): the UI's partition bar and
backfills start there. The extracts stay unpartitioned: they hold Odoo's and Zendesk's current state.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

from dunning_pipeline import settings

PARTITIONS_START_VAR = "DUNNING_PARTITIONS_START"
DEFAULT_PARTITIONS_START = "2025-01-01"


def partitions_start(environ: dict[str, str] | None = None) -> str:
    """The first as-of day that has a partition (`DUNNING_PARTITIONS_START`), validated."""
    env = os.environ if environ is None else environ
    value = (env.get(PARTITIONS_START_VAR) or DEFAULT_PARTITIONS_START).strip()
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise settings.SettingsError(
            f"{PARTITIONS_START_VAR}={value!r} is not a date in YYYY-MM-DD form (the first as-of day)"
        ) from exc


def build_daily_partitions(start: str, timezone_name: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start, timezone=timezone_name, end_offset=1)


as_of_days = build_daily_partitions(partitions_start(), settings.timezone_name())

# The run tag in which Dagster keeps a run's partition key (`dagster job execute` has no
# --partition option: `--tags '{"dagster/partition": "2026-03-02"}'` launches that day).
PARTITION_TAG = "dagster/partition"


def day_tags(job_is_partitioned: bool, as_of: date) -> dict[str, str]:
    """The run tags that select an as-of day: the partition of a partitioned job, else the
    `dunning/as_of` tag (the weekly alert's job is not partitioned)."""
    return {PARTITION_TAG if job_is_partitioned else settings.AS_OF_TAG: as_of.isoformat()}

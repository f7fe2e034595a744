"""The run's as-of date: the business day a run computes, in the configured time zone.

It is the run's partition (a day of `partitions.as_of_days`: the nightly schedule, backfills, the
UI's partition picker), else the run tag `dunning/as_of` (the weekly alert's schedule sets it),
else the run's creation time in `DUNNING_TIMEZONE` (`runtime.run_as_of` decides). Nothing deeper
in the logic reads a clock: it receives this date.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from dunning_pipeline.settings import AS_OF_TAG, SettingsError


def parse_as_of(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError) as exc:
        raise SettingsError(f"run tag {AS_OF_TAG}={value!r} is not a date in YYYY-MM-DD form") from exc


def resolve_as_of(tag_value: str | None, run_created_at: datetime, tz: ZoneInfo) -> date:
    """The tag when present, else the calendar date of the run's creation in `tz`."""
    if tag_value:
        return parse_as_of(tag_value)
    if run_created_at.tzinfo is None:
        raise ValueError("run_created_at must be time-zone aware")
    return run_created_at.astimezone(tz).date()


def as_of_for_tick(scheduled_execution_time: datetime, tz: ZoneInfo) -> date:
    """The business day of a schedule tick, in the configured zone."""
    return scheduled_execution_time.astimezone(tz).date()

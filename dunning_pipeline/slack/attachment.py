"""A file attached to a delivered alert (the aging chart in part 1's thread), exactly once.

Tied to the delivery ledger: the file hangs off a posted part (`alert_delivery_files`, keyed by
alert, period and part). As with the parts, a row is claimed (`posting`) in its own transaction
before the upload, recorded `posted` with Slack's file id as soon as Slack answers, and released
(`pending`) if Slack refuses. A re-run of the weekly alert finds the row posted and uploads
nothing; a row left `posting` by a run that ended without an answer is uploaded again, with a
warning (Slack may or may not have it). No Dagster import.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa

from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.delivery import SlackDeliveryError, Uploader
from dunning_pipeline.slack.tables import alert_delivery_files
from dunning_pipeline.warehouse.store import Warehouse

CHART = "aging_chart"


@dataclass(frozen=True)
class AttachOutcome:
    status: str  # uploaded, already_uploaded, in_progress, no_message
    file_id: str | None = None


def _row(conn, alert: str, period_end: date, part: int, name: str):
    f = alert_delivery_files.c
    return conn.execute(sa.select(alert_delivery_files).where(
        f.alert == alert, f.period_end == period_end, f.part == part, f.name == name)).first()


def _claim(wh: Warehouse, alert: str, period_end: date, part: int, name: str, run_id: str, title: str,
           is_run_active, log) -> tuple[bool, object]:
    """Claim the file for this run: (claimed, current row)."""
    f = alert_delivery_files.c
    try:
        with wh.begin() as conn:
            conn.execute(alert_delivery_files.insert().values(
                alert=alert, period_end=period_end, part=part, name=name, status=ledger.POSTING,
                claimed_by_run_id=run_id, attempts=1, title=title))
        return True, None
    except sa.exc.IntegrityError:
        pass
    with wh.begin() as conn:
        row = _row(conn, alert, period_end, part, name)
    if row.status == ledger.POSTED:
        return False, row
    claimable = f.status == ledger.PENDING
    if row.status == ledger.POSTING:
        if row.claimed_by_run_id != run_id and is_run_active(row.claimed_by_run_id):
            return False, row
        log.warning(f"The {name} of the alert for {period_end} was being uploaded by run {row.claimed_by_run_id},"
                    " which ended without recording Slack's answer; uploading it again (check the thread"
                    " for a duplicate).")
        claimable = sa.and_(f.status == ledger.POSTING, f.claimed_by_run_id == row.claimed_by_run_id)
    with wh.begin() as conn:
        done = conn.execute(alert_delivery_files.update().where(
            f.alert == alert, f.period_end == period_end, f.part == part, f.name == name, claimable,
        ).values(status=ledger.POSTING, claimed_by_run_id=run_id, attempts=f.attempts + 1)).rowcount
    return done == 1, row


def attach_file(wh: Warehouse, uploader: Uploader, *, alert: str, period_end: date, content: bytes,
                filename: str, title: str, run_id: str, is_run_active, log, name: str = CHART,
                initial_comment: str | None = None) -> AttachOutcome:
    """Upload `content` into the thread of part 1 of the delivered alert, unless done before."""
    delivery = ledger.get_delivery(wh, alert, period_end)
    top = delivery.parts[0] if delivery is not None and delivery.parts else None
    if top is None or top.status != ledger.POSTED:
        return AttachOutcome("no_message")
    claimed, row = _claim(wh, alert, period_end, top.part, name, run_id, title, is_run_active, log)
    if not claimed:
        if row is not None and row.status == ledger.POSTED:
            return AttachOutcome("already_uploaded", row.file_id)
        return AttachOutcome("in_progress")
    f = alert_delivery_files.c
    where = sa.and_(f.alert == alert, f.period_end == period_end, f.part == top.part, f.name == name,
                    f.claimed_by_run_id == run_id)
    try:
        file_id = uploader.upload(content, filename=filename, title=title, channel_id=top.channel_id,
                                  thread_ts=top.ts, initial_comment=initial_comment)
    except SlackDeliveryError as exc:
        with wh.begin() as conn:
            conn.execute(alert_delivery_files.update().where(where).values(status=ledger.PENDING, last_error=exc.code))
        raise
    except BaseException:
        with wh.begin() as conn:
            conn.execute(alert_delivery_files.update().where(where).values(status=ledger.PENDING, last_error="error"))
        raise
    with wh.begin() as conn:
        conn.execute(alert_delivery_files.update().where(where).values(
            status=ledger.POSTED, file_id=file_id, size=len(content), uploaded_at=datetime.now(UTC).replace(tzinfo=None), last_error=None))
    log.info(f"Attached {filename} ({len(content)} bytes) to the alert for {period_end} (file {file_id})")
    return AttachOutcome("uploaded", file_id)

"""The delivery ledger: which history an alert covers, and which of its messages reached Slack.

Every state change is its own short transaction, so what is committed is always what Slack
has: an alert and all its rendered parts are created together; a part is claimed (`posting`)
before it is sent, recorded (`posted`, with its `ts`) the moment Slack accepts it, and released
(`pending`) if Slack refuses it. A retried run, a duplicate tick or a manual re-run reads the
ledger and posts only parts that are not `posted`. Claims are conditional updates, so two
concurrent runs cannot both post the same part.

Coverage: an alert for `period_end` covers the `dunning_history` rows dated up to `period_end`
and with an id up to `history_id_max` (the highest id at render time) that no delivered alert
covered before: dated after the previous alert's `period_end`, or dated earlier but recorded
after it (`id` above its `history_id_max`: a late row is never lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from dunning_pipeline.dunning.tables import dunning_history
from dunning_pipeline.slack.tables import alert_deliveries, alert_delivery_parts
from dunning_pipeline.warehouse.store import Warehouse

PENDING, POSTING, POSTED = "pending", "posting", "posted"
DELIVERED, SUPERSEDED = "delivered", "superseded"


def utc_now() -> datetime:
    """Naive UTC, as the warehouse stores DateTime; a record time, not a business date."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Part:
    part: int
    text: str
    blocks: list
    status: str
    ts: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    claimed_by_run_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    claimed_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    alert: str
    period_end: date
    period_start: date | None
    status: str
    channel: str
    history_rows: int
    invoices: int
    customers: int
    history_id_max: int | None
    parts: list[Part] = field(default_factory=list)
    created_at: datetime | None = None

    @property
    def posted(self) -> list[Part]:
        return [p for p in self.parts if p.status == POSTED]

    @property
    def touched(self) -> bool:
        """Whether any part may have reached Slack (posted, or claimed by a run)."""
        return any(p.status != PENDING for p in self.parts)


@dataclass(frozen=True)
class Coverage:
    """What the next alert up to `period_end` covers (see the module docstring)."""

    period_end: date
    after_period_end: date | None = None
    after_history_id: int | None = None

    @property
    def period_start(self) -> date | None:
        return None if self.after_period_end is None else self.after_period_end + timedelta(days=1)

    def where(self, history_id_max: int | None) -> sa.ColumnElement:
        h = dunning_history.c
        clause = h.as_of_date <= self.period_end
        if history_id_max is not None:
            clause = sa.and_(clause, h.id <= history_id_max)
        if self.after_period_end is not None:
            clause = sa.and_(clause, sa.or_(h.as_of_date > self.after_period_end, self.late()))
        return clause

    def late(self) -> sa.ColumnElement:
        """Rows of the coverage dated before its start (recorded after the previous alert)."""
        h = dunning_history.c
        if self.after_period_end is None:
            return sa.false()
        late = h.as_of_date <= self.after_period_end
        if self.after_history_id is not None:  # None: the previous alert saw no history at all
            late = sa.and_(late, h.id > self.after_history_id)
        return late


# -- reading ------------------------------------------------------------------------------------
def _delivery(conn: sa.Connection, row) -> Delivery:
    p = alert_delivery_parts.c
    parts = conn.execute(
        sa.select(alert_delivery_parts)
        .where(p.alert == row.alert, p.period_end == row.period_end)
        .order_by(p.part)
    ).all()
    return Delivery(
        alert=row.alert, period_end=row.period_end, period_start=row.period_start,
        status=row.status, channel=row.channel, history_rows=row.history_rows,
        invoices=row.invoices, customers=row.customers, history_id_max=row.history_id_max,
        created_at=row.created_at,
        parts=[Part(part=r.part, text=r.text, blocks=r.blocks, status=r.status, ts=r.ts,
                    channel_id=r.channel_id, thread_ts=r.thread_ts, claimed_by_run_id=r.claimed_by_run_id,
                    attempts=r.attempts or 0, last_error=r.last_error, claimed_at=r.claimed_at)
               for r in parts],
    )


def get_delivery(wh: Warehouse, alert: str, period_end: date) -> Delivery | None:
    d = alert_deliveries.c
    with wh.begin() as conn:
        row = conn.execute(
            sa.select(alert_deliveries).where(d.alert == alert, d.period_end == period_end)
        ).first()
        return _delivery(conn, row) if row is not None else None


def incomplete_deliveries(wh: Warehouse, alert: str) -> list[Delivery]:
    """Alerts with parts not yet posted, oldest first."""
    d = alert_deliveries.c
    with wh.begin() as conn:
        rows = conn.execute(
            sa.select(alert_deliveries).where(d.alert == alert, d.status == PENDING).order_by(d.period_end)
        ).all()
        return [_delivery(conn, r) for r in rows]


def last_delivered(wh: Warehouse, alert: str) -> Delivery | None:
    d = alert_deliveries.c
    with wh.begin() as conn:
        row = conn.execute(
            sa.select(alert_deliveries).where(d.alert == alert, d.status == DELIVERED)
            .order_by(d.period_end.desc()).limit(1)
        ).first()
        return _delivery(conn, row) if row is not None else None


def coverage(wh: Warehouse, alert: str, period_end: date) -> Coverage:
    """Everything not covered by the last delivered alert, up to `period_end`."""
    last = last_delivered(wh, alert)
    if last is None:
        return Coverage(period_end)
    return Coverage(period_end, last.period_end, last.history_id_max)


def history_id_max(wh: Warehouse, period_end: date) -> int | None:
    h = dunning_history.c
    with wh.begin() as conn:
        return conn.execute(sa.select(sa.func.max(h.id)).where(h.as_of_date <= period_end)).scalar()


# -- writing ------------------------------------------------------------------------------------
def create_delivery(
    wh: Warehouse,
    *,
    alert: str,
    cover: Coverage,
    period_start: date | None,
    id_max: int | None,
    history_rows: int,
    invoices: int,
    customers: int,
    channel: str,
    messages: Sequence[dict],
    run_id: str,
) -> Delivery:
    """Record a rendered alert and its parts in one transaction. If another run recorded the same
    alert and period first, its record wins and is returned (so both post the same parts)."""
    now = utc_now()
    try:
        with wh.begin() as conn:
            conn.execute(alert_deliveries.insert().values(
                alert=alert, period_end=cover.period_end, period_start=period_start,
                after_period_end=cover.after_period_end, after_history_id=cover.after_history_id,
                history_id_max=id_max, history_rows=history_rows, invoices=invoices,
                customers=customers, channel=channel, parts=len(messages), status=PENDING,
                created_run_id=run_id, created_at=now,
            ))
            conn.execute(alert_delivery_parts.insert(), [
                {"alert": alert, "period_end": cover.period_end, "part": i, "text": m["text"],
                 "blocks": m["blocks"], "status": PENDING, "attempts": 0}
                for i, m in enumerate(messages, start=1)
            ])
    except sa.exc.IntegrityError:
        existing = get_delivery(wh, alert, cover.period_end)
        if existing is None:
            raise
        return existing
    created = get_delivery(wh, alert, cover.period_end)
    assert created is not None
    return created


def supersede(wh: Warehouse, alert: str, period_end: date) -> bool:
    """Retire a pending alert none of whose parts was ever claimed: a later alert covers its
    history instead. Returns False (and changes nothing) if a part was claimed meanwhile."""
    d, p = alert_deliveries.c, alert_delivery_parts.c
    with wh.begin() as conn:
        touched = conn.execute(
            sa.select(sa.func.count()).select_from(alert_delivery_parts)
            .where(p.alert == alert, p.period_end == period_end, p.status != PENDING)
        ).scalar_one()
        if touched:
            return False
        done = conn.execute(
            alert_deliveries.update()
            .where(d.alert == alert, d.period_end == period_end, d.status == PENDING)
            .values(status=SUPERSEDED)
        ).rowcount
        return done == 1


def claim_part(wh: Warehouse, alert: str, period_end: date, part: int, run_id: str,
               *, take_over_from: str | None = None) -> bool:
    """Mark a part `posting` for this run, if it is pending (or still claimed by the finished run
    `take_over_from`). False: another run holds it or it is posted."""
    p = alert_delivery_parts.c
    claimable = p.status == PENDING
    if take_over_from is not None:
        claimable = sa.or_(claimable, sa.and_(p.status == POSTING, p.claimed_by_run_id == take_over_from))
    with wh.begin() as conn:
        done = conn.execute(
            alert_delivery_parts.update()
            .where(p.alert == alert, p.period_end == period_end, p.part == part, claimable)
            .values(status=POSTING, claimed_by_run_id=run_id, claimed_at=utc_now(), attempts=p.attempts + 1)
        ).rowcount
    return done == 1


def known_channel_id(wh: Warehouse, channel: str) -> str | None:
    """The Slack channel id an earlier post to the configured `channel` was answered with."""
    d, p = alert_deliveries.c, alert_delivery_parts.c
    with wh.begin() as conn:
        return conn.execute(
            sa.select(p.channel_id).select_from(alert_delivery_parts.join(
                alert_deliveries, sa.and_(d.alert == p.alert, d.period_end == p.period_end)))
            .where(d.channel == channel, p.channel_id.is_not(None))
            .order_by(p.posted_at.desc()).limit(1)
        ).scalar()


def _update_own_claim(wh: Warehouse, alert: str, period_end: date, part: int, run_id: str, **values) -> None:
    """Change a part this run still holds (`posting`, claimed by `run_id`); nothing otherwise."""
    p = alert_delivery_parts.c
    with wh.begin() as conn:
        conn.execute(
            alert_delivery_parts.update()
            .where(p.alert == alert, p.period_end == period_end, p.part == part,
                   p.status == POSTING, p.claimed_by_run_id == run_id)
            .values(**values)
        )


def release_part(wh: Warehouse, alert: str, period_end: date, part: int, run_id: str,
                 error: str) -> None:
    """Slack refused the part: it is pending again, with the error code, for the next run."""
    _update_own_claim(wh, alert, period_end, part, run_id, status=PENDING, last_error=error)


def note_outcome_unknown(wh: Warehouse, alert: str, period_end: date, part: int, run_id: str) -> None:
    """Slack's answer was lost: the part stays `posting` (it may be in the channel), marked so
    that whoever takes it over looks it up before posting."""
    _update_own_claim(wh, alert, period_end, part, run_id, last_error="outcome_unknown")


def mark_posted(wh: Warehouse, alert: str, period_end: date, part: int, *, run_id: str,
                ts: str, channel_id: str, thread_ts: str | None) -> bool:
    """Record Slack's `ts` for a part; when it was the last one, the alert is delivered.
    Returns whether the whole alert is now delivered."""
    d, p = alert_deliveries.c, alert_delivery_parts.c
    now = utc_now()
    with wh.begin() as conn:
        conn.execute(
            alert_delivery_parts.update()
            .where(p.alert == alert, p.period_end == period_end, p.part == part)
            .values(status=POSTED, ts=ts, channel_id=channel_id, thread_ts=thread_ts,
                    posted_at=now, claimed_by_run_id=run_id, last_error=None)
        )
        remaining = conn.execute(
            sa.select(sa.func.count()).select_from(alert_delivery_parts)
            .where(p.alert == alert, p.period_end == period_end, p.status != POSTED)
        ).scalar_one()
        if remaining == 0:
            conn.execute(
                alert_deliveries.update()
                .where(d.alert == alert, d.period_end == period_end)
                .values(status=DELIVERED, delivered_run_id=run_id, delivered_at=now)
            )
    return remaining == 0

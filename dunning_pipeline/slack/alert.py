"""The weekly alert from start to end, without Dagster: read what the ledger says is not yet
covered, render it, record it, post what is missing.

The order of things is what makes it exactly-once:
1. An earlier alert that reached Slack only in part is finished first (its stored parts, in its
   thread); one that reached Slack not at all is superseded, and this alert covers its history.
2. An alert already recorded for this as-of date is resumed, never rendered again: a retried run,
   a duplicate tick and a manual re-run all find it and post only the parts not yet posted.
3. Otherwise the history since the last delivered alert is rendered, recorded with all its
   parts in one transaction, and posted part by part, each `ts` committed as soon as Slack
   answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

import sqlalchemy as sa

from dunning_pipeline import lazy
from dunning_pipeline.dunning.tables import dunning_history
from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.delivery import (
    HISTORY_SCOPES,
    OUTCOME_UNKNOWN,
    Poster,
    PostedMessage,
    SlackDeliveryError,
)
from dunning_pipeline.slack.digest import (
    FIRST_ALERT,
    LONG_GAP,
    RESOLVED_REASONS,
    AlertMessage,
    Period,
)
from dunning_pipeline.warehouse.store import Warehouse

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

WEEKLY_ALERT = "weekly_dunning"
_CHUNK = 1000


class Log(Protocol):
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


class AlertInProgressError(RuntimeError):
    """Another run is posting this alert right now."""


@dataclass
class AlertOutcome:
    """What a run did: `status` is posted, already_delivered, already_covered or dry_run."""

    status: str
    period: Period
    messages: list[AlertMessage] = field(default_factory=list)
    posted_now: list[tuple[int, str]] = field(default_factory=list)  # (part, ts)
    posted_before: int = 0
    finished_earlier: list[date] = field(default_factory=list)
    superseded: list[date] = field(default_factory=list)
    history_rows: int = 0
    invoices: int = 0
    customers: int = 0


# -- reading the history -------------------------------------------------------------------------
# An alert after more than this many days without a delivered one opens with a summary.
LONG_GAP_DAYS = 14


def read_history(wh: Warehouse, cover: ledger.Coverage, id_max: int | None) -> pd.DataFrame:
    """The covered `dunning_history` rows, plus:
    - `prior_amount_residual` / `prior_amount_residual_company`: for an invoice with a zero
      residual in the period (closed, or paid and not yet reconciled), its last non-zero amounts
      from before the period (what was settled);
    - the invoice's current state (`digest.NOW_COLUMNS`) from `invoice_aging` and `receivables`,
      so the alert shows what is owed as of the alert, not as of the change."""
    frame = wh.read("dunning_history", where=cover.where(id_max), order_by=["as_of_date", "id"])
    zero = frame["amount_residual_company"].fillna(0).eq(0)
    closed = frame["reason"].isin(RESOLVED_REASONS) | frame["to_stage"].eq("closed") | zero
    ids = sorted({int(i) for i in frame.loc[closed, "invoice_id"]})
    prior = []
    h = dunning_history.c
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        where = sa.and_(h.invoice_id.in_(chunk), h.amount_residual_company != 0)
        if id_max is not None:
            where = sa.and_(where, h.id <= id_max)
        prior.append(wh.read("dunning_history", columns=["id", "invoice_id", "amount_residual",
                                                         "amount_residual_company"],
                             where=where, order_by=["id"]))
    for col in ("prior_amount_residual", "prior_amount_residual_company"):
        frame[col] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    if prior:
        earlier = pd.concat(prior, ignore_index=True)
        earlier = earlier[~earlier["id"].isin(frame["id"])]
        last = earlier.groupby("invoice_id")[["amount_residual", "amount_residual_company"]].last()
        for col in ("amount_residual", "amount_residual_company"):
            frame[f"prior_{col}"] = frame["invoice_id"].map(last[col]).astype("Int64")
    return _with_current_state(wh, frame)


# invoice_aging column -> the digest's name; the instalment columns (contract C5) are optional.
_AGING = {"as_of_date": "now_as_of_date", "currency": "now_currency",
          "company_currency": "now_company_currency", "amount_residual": "now_amount_residual",
          "amount_residual_company": "now_amount_residual_company",
          "days_overdue": "now_days_overdue", "due_date": "now_due_date",
          "instalment_number": "now_instalment_number", "instalments_total": "now_instalments_total"}
_RECEIVABLES = {"amount_total": "now_amount_total", "amount_total_company": "now_amount_total_company"}


def _read_current(wh: Warehouse, table: str, wanted: dict[str, str], ids: list[int]) -> pd.DataFrame | None:
    inspector = sa.inspect(wh.engine)
    if not inspector.has_table(table):
        return None
    names = {c["name"] for c in inspector.get_columns(table)}
    columns = [c for c in wanted if c in names]
    if "invoice_id" not in names or not columns:
        return None
    parts = [wh.read(table, columns=["invoice_id", *columns],
                     where=sa.column("invoice_id").in_(ids[start:start + _CHUNK]))
             for start in range(0, len(ids), _CHUNK)]
    return pd.concat(parts, ignore_index=True).rename(columns=wanted).set_index("invoice_id")


def _with_current_state(wh: Warehouse, frame: pd.DataFrame) -> pd.DataFrame:
    ids = sorted({int(i) for i in frame["invoice_id"]})
    if not ids:
        return frame
    for table, wanted in (("invoice_aging", _AGING), ("receivables", _RECEIVABLES)):
        current = _read_current(wh, table, wanted, ids)
        if current is None or current.empty:
            continue
        aligned = current[~current.index.duplicated()].reindex(frame["invoice_id"].astype("int64"))
        for col in aligned.columns:
            frame[col] = aligned[col].to_numpy()
    return frame


# Per customer first (the engine's customer_communications), then per ticket, then generic names.
_CONTACT_COLUMNS = ("customer_last_inbound_at", "customer_last_outbound_at", "last_inbound_at",
                    "last_outbound_at", "last_contact_at")


def read_last_contact(wh: Warehouse, period_end: date) -> dict[int, date] | None:
    """Customer id -> day of the last contact up to `period_end`, from the engine's
    `customer_communications` table; None when there is no such table or no contact column."""
    inspector = sa.inspect(wh.engine)
    if not inspector.has_table("customer_communications"):
        return None
    names = {c["name"] for c in inspector.get_columns("customer_communications")}
    found = [c for c in _CONTACT_COLUMNS if c in names]
    if "customer_id" not in names or not found:
        return None
    raw = wh.query(sa.select(*[sa.column(c) for c in ["customer_id", *found]])
                   .select_from(sa.table("customer_communications"))
                   .where(sa.column("customer_id").is_not(None)))  # null: ticket not matched
    if raw.empty:
        return {}
    stamps = pd.concat([pd.to_datetime(raw[c], errors="coerce", format="mixed") for c in found], axis=1)
    day = stamps.max(axis=1).dt.normalize()
    day = day.where(day <= pd.Timestamp(period_end))
    latest = day.groupby(raw["customer_id"].astype("int64")).max().dropna()
    return {int(k): v.date() for k, v in latest.items()}


# -- posting -------------------------------------------------------------------------------------
EVENT_TYPE = "dunning_alert_part"
# A claim older than this is taken over even if its run looks alive: a killed process never
# finishes its run, and a run of another Dagster instance is unknown here.
DEFAULT_LEASE = timedelta(minutes=10)


def part_key(delivery: ledger.Delivery, part: ledger.Part) -> str:
    """What identifies a part in the channel: the alert, its period, the part and its content."""
    digest = hashlib.sha256(json.dumps([part.text, part.blocks], sort_keys=True).encode()).hexdigest()[:16]
    return f"{delivery.alert}/{delivery.period_end.isoformat()}/{part.part}/{digest}"


def part_metadata(delivery: ledger.Delivery, part: ledger.Part) -> dict:
    """Slack message metadata carried by each part, so a post whose answer was lost can be found."""
    return {"event_type": EVENT_TYPE, "event_payload": {
        "key": part_key(delivery, part), "alert": delivery.alert,
        "period_end": delivery.period_end.isoformat(), "part": part.part, "parts": len(delivery.parts)}}


@dataclass
class _Lookup:
    """Finds a part already in the channel; without a history scope it can only say 'unknown'."""

    poster: Poster
    delivery: ledger.Delivery
    channel: str
    log: Log
    available: bool = True

    def __call__(self, part: ledger.Part, thread_ts: str | None) -> PostedMessage | None:
        if not self.available:
            return None
        try:  # newest first: the part looked for is among the channel's latest messages
            return self.poster.find(self.channel, EVENT_TYPE, part_key(self.delivery, part),
                                    thread_ts=thread_ts if part.part > 1 else None)
        except SlackDeliveryError as exc:
            if exc.code != "missing_scope":
                raise
            self.available = False
            self.log.warning(
                "The bot token lacks channels:history (groups:history for a private channel), so a"
                " post whose answer was lost cannot be looked up: it is posted again, and the channel"
                " may show it twice. Add the scope to make the alert exactly-once.")
            return None


def _post_missing(wh: Warehouse, poster: Poster, delivery: ledger.Delivery, *, channel: str,
                  run_id: str, is_run_active: Callable[[str], bool], log: Log,
                  lease: timedelta = DEFAULT_LEASE) -> list[tuple[int, str]]:
    """Post the parts of `delivery` not yet posted, in order; replies go in part 1's thread.

    A part whose outcome is unknown (claimed by a run that died or is elsewhere, or whose answer
    was lost) is first looked up in the channel by its metadata, and posted only if absent."""
    posted: list[tuple[int, str]] = []
    top = delivery.parts[0]
    thread_ts = top.ts if top.status == ledger.POSTED else None
    target = top.channel_id if top.status == ledger.POSTED else channel
    lookup = _Lookup(poster, delivery, _channel_id(wh, poster, channel, target), log)
    total = len(delivery.parts)
    for part in delivery.parts:
        if part.status == ledger.POSTED:
            continue
        take_over = None
        if part.status == ledger.POSTING:
            holder = part.claimed_by_run_id
            expired = part.claimed_at is None or ledger.utc_now() - part.claimed_at > lease
            if holder and holder != run_id and not expired and is_run_active(holder):
                raise AlertInProgressError(
                    f"Run {holder} is posting part {part.part} of the alert for"
                    f" {delivery.period_end}; this run posts nothing (its claim expires"
                    f" {lease} after it was taken).")
            take_over = holder
        if not ledger.claim_part(wh, delivery.alert, delivery.period_end, part.part, run_id,
                                 take_over_from=take_over):
            raise AlertInProgressError(
                f"Part {part.part} of the alert for {delivery.period_end} was claimed by another"
                " run; this run posts nothing more.")
        result = None
        if take_over is not None or part.last_error == OUTCOME_UNKNOWN:
            result = lookup(part, thread_ts)
            log.warning(f"Part {part.part}/{total} of the alert for {delivery.period_end} was being"
                        f" posted by run {take_over}, which ended without recording Slack's answer: "
                        + ("found in the channel, not posted again." if result else
                           "not in the channel, posting it." if lookup.available else
                           "cannot look it up, posting it again (check the channel for a duplicate)."))
        if result is None:
            result = _post_once(wh, poster, delivery, part, lookup, channel=target,
                                thread_ts=thread_ts, run_id=run_id, log=log)
        ledger.mark_posted(wh, delivery.alert, delivery.period_end, part.part, run_id=run_id,
                           ts=result.ts, channel_id=result.channel_id,
                           thread_ts=thread_ts if part.part > 1 else None)
        if part.part == 1:
            thread_ts, target = result.ts, result.channel_id
            lookup.channel = result.channel_id
        posted.append((part.part, result.ts))
        log.info(f"Posted part {part.part}/{total} of the alert for {delivery.period_end} (ts {result.ts})")
    return posted


def _post_once(wh: Warehouse, poster: Poster, delivery: ledger.Delivery, part: ledger.Part,
               lookup: _Lookup, *, channel: str, thread_ts: str | None, run_id: str,
               log: Log) -> PostedMessage:
    """Post a claimed part. A lost answer is looked up, and posted again once if it is absent;
    still unknown, the part stays claimed for the next run to look up."""
    for attempt in (1, 2):
        try:
            return poster.post(part.text, part.blocks, channel=channel,
                               thread_ts=thread_ts if part.part > 1 else None,
                               metadata=part_metadata(delivery, part))
        except SlackDeliveryError as exc:
            if exc.code != OUTCOME_UNKNOWN:
                ledger.release_part(wh, delivery.alert, delivery.period_end, part.part, run_id, exc.code)
                raise
            found = lookup(part, thread_ts)
            if found is not None:
                log.warning(f"Slack's answer to part {part.part} was lost; the message is in the"
                            " channel, recorded without posting it again.")
                return found
            if attempt == 2:
                ledger.note_outcome_unknown(wh, delivery.alert, delivery.period_end, part.part, run_id)
                raise
            log.warning(f"Slack's answer to part {part.part} was lost and the message is "
                        + ("not in the channel" if lookup.available else "not verifiable")
                        + ": posting it again.")
        except BaseException:
            ledger.release_part(wh, delivery.alert, delivery.period_end, part.part, run_id, "error")
            raise
    raise AssertionError("unreachable")


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")


def _channel_id(wh: Warehouse, poster: Poster, channel: str, target: str) -> str:
    """The channel id the history lookups need (Slack's history API takes no names)."""
    if _CHANNEL_ID.match(target):
        return target
    return ledger.known_channel_id(wh, channel) or target


def warn_without_history_scope(poster: Poster, log: Log) -> None:
    """Say at the start when exactly-once cannot hold (no history scope to look posts up)."""
    scopes = poster.scopes()
    if scopes is not None and HISTORY_SCOPES[0] not in scopes:
        log.warning(f"The Slack bot token has no {HISTORY_SCOPES[0]} scope ({HISTORY_SCOPES[1]} for a"
                    " private channel): if Slack's answer to a post is lost, the alert cannot check"
                    " the channel and posts that part again (a duplicate is possible). Add the scope"
                    " and reinstall the app.")


def _messages(delivery: ledger.Delivery) -> list[AlertMessage]:
    return [AlertMessage(p.text, p.blocks) for p in delivery.parts]


def _period(delivery: ledger.Delivery) -> Period:
    return Period(end=delivery.period_end, start=delivery.period_start)


def deliver(
    wh: Warehouse,
    poster: Poster | None,
    *,
    period_end: date,
    channel: str,
    run_id: str,
    render: Callable[[pd.DataFrame, Period], list[AlertMessage]],
    is_run_active: Callable[[str], bool],
    log: Log,
    dry_run: bool = False,
    alert: str = WEEKLY_ALERT,
    lease: timedelta = DEFAULT_LEASE,
) -> AlertOutcome:
    """Deliver the alert for `period_end` exactly once (see the module docstring). With
    `dry_run`, nothing is written or posted: the outcome holds the messages it would post."""
    finished, superseded = [], []
    if poster is not None and not dry_run:
        warn_without_history_scope(poster, log)
    for earlier in ledger.incomplete_deliveries(wh, alert):
        if earlier.period_end == period_end:
            continue
        if earlier.touched:
            if dry_run:
                log.info(f"Dry run: would finish the alert for {earlier.period_end}"
                         f" ({len(earlier.posted)}/{len(earlier.parts)} parts posted)")
                continue
            log.info(f"Finishing the alert for {earlier.period_end}: {len(earlier.posted)} of"
                     f" {len(earlier.parts)} parts were posted before")
            _post_missing(wh, poster, earlier, channel=channel, run_id=run_id,
                          is_run_active=is_run_active, log=log, lease=lease)
            finished.append(earlier.period_end)
        elif earlier.period_end < period_end and not dry_run:
            if ledger.supersede(wh, alert, earlier.period_end):
                log.info(f"The alert for {earlier.period_end} never reached Slack; this alert"
                         " covers its history instead")
                superseded.append(earlier.period_end)

    existing = ledger.get_delivery(wh, alert, period_end)
    if existing is not None:
        outcome = AlertOutcome("already_delivered", _period(existing), _messages(existing),
                               posted_before=len(existing.posted), finished_earlier=finished,
                               superseded=superseded, history_rows=existing.history_rows,
                               invoices=existing.invoices, customers=existing.customers)
        if existing.status == ledger.DELIVERED:
            log.info(f"The alert for {period_end} was already delivered"
                     f" ({len(existing.parts)} message(s)); nothing to post")
            return outcome
        if dry_run:
            outcome.status = "dry_run"
            return outcome
        log.info(f"Resuming the alert for {period_end}: {len(existing.posted)} of"
                 f" {len(existing.parts)} parts were posted before")
        outcome.posted_now = _post_missing(wh, poster, existing, channel=channel, run_id=run_id,
                                           is_run_active=is_run_active, log=log, lease=lease)
        outcome.status = "posted"
        return outcome

    last = ledger.last_delivered(wh, alert)
    if last is not None and last.period_end >= period_end:
        log.info(f"History up to {period_end} was covered by the alert for {last.period_end};"
                 " nothing to post")
        return AlertOutcome("already_covered", Period(end=period_end), finished_earlier=finished,
                            superseded=superseded)

    cover = ledger.coverage(wh, alert, period_end)
    id_max = ledger.history_id_max(wh, period_end)
    history = read_history(wh, cover, id_max)
    late = 0
    if cover.after_period_end is not None and not history.empty:
        late = int((history["as_of_date"] <= pd.Timestamp(cover.after_period_end)).sum())
    start = cover.period_start
    if start is None and not history.empty:
        start = history["as_of_date"].min().date()
    summary = None
    if cover.after_period_end is None:
        summary = FIRST_ALERT
    elif (period_end - cover.after_period_end).days > LONG_GAP_DAYS:
        summary = LONG_GAP
    period = Period(end=period_end, start=start, late_rows=late, summary=summary)
    log.info(f"Alert for {period.describe()}: {len(history)} history rows"
             + (f" ({late} recorded late)" if late else ""))
    messages = render(history, period)
    invoices = int(history["invoice_id"].nunique())
    customers = int(history["customer_id"].nunique())
    if dry_run:
        return AlertOutcome("dry_run", period, messages, finished_earlier=finished,
                            history_rows=len(history), invoices=invoices, customers=customers)

    delivery = ledger.create_delivery(
        wh, alert=alert, cover=cover, period_start=start, id_max=id_max,
        history_rows=len(history), invoices=invoices, customers=customers, channel=channel,
        messages=[m.to_dict() for m in messages], run_id=run_id,
    )
    posted = _post_missing(wh, poster, delivery, channel=channel, run_id=run_id,
                           is_run_active=is_run_active, log=log, lease=lease)
    return AlertOutcome("posted", period, _messages(delivery), posted_now=posted,
                        posted_before=len(delivery.posted), finished_earlier=finished,
                        superseded=superseded, history_rows=delivery.history_rows,
                        invoices=delivery.invoices, customers=delivery.customers)

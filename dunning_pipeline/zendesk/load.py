"""Zendesk extraction runs: export pages to de-duplicated frames, written with their cursors.

No Dagster here (the assets wire it). Each run writes in ONE warehouse transaction: the rows
and the cursor that describes them, so a crash leaves the previous state and cursor whole and
the next run resumes from where the last committed one ended. Upserts are "newest wins": a row
whose stored `updated_at` is newer than the incoming copy is kept.

Where the next night starts: the export's last `after_cursor`; when the last page carries none
(Zendesk may send `after_cursor: null` with `end_of_stream: true`), the highest
`generated_timestamp` seen, as a `start_time`. A cursor Zendesk refuses (422: expired or not
valid) restarts the export from that time-based mark, with a warning.

The nightly comment pull is the ticket event export (`extract_comment_events`): one time-based
stream for the whole account, resumed from its stored mark, written page by page. The per-ticket
pull (`extract_comments`: the tickets whose `updated_at` is newer than the one their stored
comments belong to, `comments_updated_at`; a failing ticket stays due) remains for a one-off
full reload, and the event path fetches single tickets whose comments were redacted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline import lazy
from dunning_pipeline.warehouse import as_known
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.zendesk import parse
from dunning_pipeline.zendesk.client import (
    ZendeskAuthError,
    ZendeskClient,
    ZendeskError,
    ZendeskInvalidCursorError,
    ZendeskNotFoundError,
)

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

TICKETS_CURSOR_KEY = "zendesk.tickets.cursor"
USERS_CURSOR_KEY = "zendesk.users.cursor"
# Unix seconds to resume from when there is no cursor (the highest generated_timestamp seen).
TICKETS_MARK_KEY = "zendesk.tickets.start_time"
USERS_MARK_KEY = "zendesk.users.start_time"
# Before `comments_updated_at` existed: extracted_at of the newest ticket rows whose comments
# were fetched (still honoured for rows written then, so an upgrade refetches nothing).
COMMENTS_MARK_KEY = "zendesk.comments.tickets_extracted_at"
# Tickets whose comments failed in the last run (JSON list), to report them as retried.
COMMENTS_FAILED_KEY = "zendesk.comments.failed_tickets"
# The ticket event export (the nightly comment pull): the Unix second the next run starts at,
# and the tickets whose comments must be fetched one by one (a redaction) but could not be yet.
COMMENT_EVENTS_MARK_KEY = "zendesk.comment_events.start_time"
COMMENT_EVENTS_REFETCH_KEY = "zendesk.comment_events.refetch_tickets"
_PREVIEW_ROWS = 20

_ID_CHUNK = 5_000
# After this many tickets in a row fail, Zendesk is likely down: the rest waits for tomorrow.
MAX_CONSECUTIVE_COMMENT_FAILURES = 10
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportOutcome:
    """What one tickets+users run fetched and wrote."""

    tickets: pd.DataFrame  # fetched this run, one row per id (newest copy)
    users: pd.DataFrame
    tickets_written: int  # rows inserted or replaced by a newer copy
    users_written: int
    ticket_pages: int
    user_pages: int
    tickets_cursor: str | None  # where the next run resumes (None: from tickets_start_time)
    users_cursor: str | None
    resumed: bool  # True when the run started from a stored cursor or mark
    tickets_start_time: int | None = None  # the time-based mark stored for the next run
    users_start_time: int | None = None
    cursor_restarted: bool = False  # a refused cursor made the run restart from the mark
    unstorable: list[str] = field(default_factory=list)  # records left out (no id, no status)


@dataclass(frozen=True)
class CommentsOutcome:
    comments: pd.DataFrame  # fetched this run
    tickets: int  # tickets whose comments were due
    pages: int
    skipped_tickets: list[int]  # deleted in Zendesk since they were exported (404)
    written: int
    failed_tickets: dict[int, str] = field(default_factory=dict)  # id -> error; retried next run
    retried_tickets: list[int] = field(default_factory=list)  # failed last run, fetched now
    deferred_tickets: list[int] = field(default_factory=list)  # not tried (Zendesk kept failing)
    unstorable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CommentEventsOutcome:
    """What one run of the ticket event export fetched and wrote (the rows went to the
    warehouse page by page: only a preview is kept)."""

    preview: pd.DataFrame  # the first comments fetched, with the table's columns
    fetched: int  # comments of customer tickets in the export (boundary seconds count again)
    written: int
    pages: int
    events: int
    start_time: int  # where this run started
    next_start_time: int  # the mark stored for the next run
    resumed: bool
    parse_errors: int = 0
    stream_error: str | None = None  # the export broke off: the next run resumes from the mark
    refetched_tickets: list[int] = field(default_factory=list)  # redactions, fetched per ticket
    refetch_failed: dict[int, str] = field(default_factory=dict)  # retried next run
    unstorable: list[str] = field(default_factory=list)


@dataclass
class _Stream:
    """One export (tickets or users) in progress: its frames and where the next run starts."""

    key: str
    cursor_key: str
    mark_key: str
    frames: list[pd.DataFrame] = field(default_factory=list)
    user_frames: list[pd.DataFrame] = field(default_factory=list)
    pages: int = 0
    fetched: int = 0
    cursor: str | None = None
    mark: int | None = None
    resumed: bool = False
    restarted: bool = False


def _stored_mark(warehouse: Warehouse, key: str) -> int | None:
    value = warehouse.get_state(key)
    return int(value) if value else None


def _newest_stamp(records: list, key: str) -> int | None:
    """The highest `generated_timestamp` (int) or `updated_at` (ISO text) of a page, in Unix s."""
    best = None
    for rec in records:
        value = rec.get(key) if isinstance(rec, dict) else None
        if key == "updated_at" and isinstance(value, str):
            try:
                value = int(pd.Timestamp(value).timestamp())
            except ValueError:
                continue
        if isinstance(value, int) and not isinstance(value, bool):
            best = value if best is None else max(best, value)
    return best


def _run_stream(stream: _Stream, export, warehouse: Warehouse, *, start_time: int, stamp_key: str,
                parse_page, fallback_mark, log: Log, warn: Log) -> None:
    """Page through one export from the stored cursor (or mark, or `start_time`), restarting
    from the time-based mark once if Zendesk refuses the cursor."""
    stream.cursor = warehouse.get_state(stream.cursor_key) or None
    stream.mark = _stored_mark(warehouse, stream.mark_key)
    stream.resumed = stream.cursor is not None or stream.mark is not None
    begin = stream.mark if stream.mark is not None else start_time
    if stream.cursor:
        log(f"Zendesk {stream.key}: resuming from the stored cursor {stream.cursor}")
    elif stream.mark is not None:
        log(f"Zendesk {stream.key}: resuming from start_time={stream.mark} (the newest change seen)")
    else:
        log(f"Zendesk {stream.key}: first run, full export from start_time={start_time}")
    while True:
        try:
            for page in export(cursor=stream.cursor, start_time=begin):
                stream.pages += 1
                stream.fetched += len(page.records)
                parse_page(page)
                newest = _newest_stamp(page.records, stamp_key)
                if newest is not None:
                    stream.mark = newest if stream.mark is None else max(stream.mark, newest)
                # The final page may carry no cursor: the next run then starts from the mark.
                stream.cursor = page.after_cursor
            return
        except ZendeskInvalidCursorError as exc:
            if stream.restarted or not stream.cursor:
                raise
            stream.restarted = True
            begin = stream.mark if stream.mark is not None else fallback_mark()
            if begin is None:
                begin = start_time
            warn(f"{exc}; restarting the {stream.key} export from start_time={begin}"
                 f" (the newest change already stored)")
            stream.cursor = None


def extract_tickets_and_users(
    client: ZendeskClient,
    warehouse: Warehouse,
    *,
    extracted_at: datetime,
    start_time: int = 0,
    log: Log = lambda _msg: None,
    warn: Log | None = None,
    known_on: date | None = None,
    run_id: str | None = None,
) -> ExportOutcome:
    """Tickets (with side-loaded users) and users changed since the stored cursors or marks."""
    warn = warn or log
    unstorable: list[str] = []
    tickets = _Stream("tickets", TICKETS_CURSOR_KEY, TICKETS_MARK_KEY)
    users = _Stream("users", USERS_CURSOR_KEY, USERS_MARK_KEY)

    def ticket_page(page) -> None:
        tickets.frames.append(parse.tickets_frame(page.records, extracted_at, unstorable))
        tickets.user_frames.append(parse.users_frame(page.users, extracted_at, unstorable))
        log(f"Zendesk tickets page {tickets.pages}: {len(page.records)} tickets,"
            f" {len(page.users)} side-loaded users ({tickets.fetched} tickets so far)")

    def user_page(page) -> None:
        users.frames.append(parse.users_frame(page.records, extracted_at, unstorable))
        log(f"Zendesk users page {users.pages}: {len(page.records)} users ({users.fetched} so far)")

    _run_stream(tickets, client.export_tickets, warehouse, start_time=start_time,
                stamp_key="generated_timestamp", parse_page=ticket_page,
                fallback_mark=lambda: _max_epoch(warehouse, "zendesk_tickets"), log=log, warn=warn)
    _run_stream(users, client.export_users, warehouse, start_time=start_time, stamp_key="updated_at",
                parse_page=user_page, fallback_mark=lambda: _max_epoch(warehouse, "zendesk_users"),
                log=log, warn=warn)
    for problem in unstorable:
        warn(f"Zendesk record left out (it cannot be stored): {problem}")

    ticket_rows = parse.newest_by_id(_concat(tickets.frames, parse.tickets_frame([], extracted_at)))
    user_rows = parse.newest_by_id(
        _concat(tickets.user_frames + users.frames, parse.users_frame([], extracted_at)))

    with warehouse.begin() as conn:
        tickets_written = upsert_newest(warehouse, "zendesk_tickets", ticket_rows, conn=conn)
        users_written = upsert_newest(warehouse, "zendesk_users", user_rows, conn=conn)
        # The versions of what changed, with the rows (see warehouse/as_known.py).
        stamp = as_known.Stamp.of(extracted_at, known_on, run_id)
        as_known.record_versions(warehouse, "zendesk_tickets", conn=conn, stamp=stamp, values=ticket_rows["id"])
        as_known.record_versions(warehouse, "zendesk_users", conn=conn, stamp=stamp, values=user_rows["id"])
        for stream in (tickets, users):
            warehouse.set_state(stream.cursor_key, stream.cursor or "", conn=conn)
            if stream.mark is not None:
                warehouse.set_state(stream.mark_key, str(stream.mark), conn=conn)
    log(f"Zendesk: wrote {tickets_written} of {len(ticket_rows)} tickets and {users_written} of"
        f" {len(user_rows)} users (the others were not newer than the stored copies)")
    return ExportOutcome(
        tickets=ticket_rows, users=user_rows, tickets_written=tickets_written,
        users_written=users_written, ticket_pages=tickets.pages, user_pages=users.pages,
        tickets_cursor=tickets.cursor, users_cursor=users.cursor, resumed=tickets.resumed,
        tickets_start_time=tickets.mark, users_start_time=users.mark,
        cursor_restarted=tickets.restarted or users.restarted, unstorable=unstorable,
    )


def _max_epoch(warehouse: Warehouse, table: str) -> int | None:
    """The newest stored `updated_at`, in Unix seconds (a restart point when no mark is kept)."""
    t = warehouse.table(table)
    with warehouse.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(t.c.updated_at))).scalar_one_or_none()
    if newest is None:
        return None
    stamp = pd.Timestamp(newest)  # naive UTC
    return int((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp())


def upsert_newest(warehouse: Warehouse, table: str, frame: pd.DataFrame, *,
                  conn: Connection) -> int:
    """Upsert `frame` (one row per id) except rows older than the stored copy; returns the
    number of rows written. A stored row with a newer `updated_at` wins, so a late re-emission
    of an old version can never overwrite a newer one. An incoming row whose `updated_at` did not
    parse is this export's news (its parse_error quarantines it), so it is written."""
    if frame.empty:
        return 0
    stored = _stored_updated_at(warehouse, table, frame["id"], conn)
    incoming = frame.merge(stored, on="id", how="left")
    newer = (
        incoming["stored_updated_at"].isna()
        | incoming["updated_at"].isna()
        | (incoming["updated_at"] >= incoming["stored_updated_at"])
    ).to_numpy()
    keep = frame.loc[newer]
    return warehouse.upsert(table, keep, conn=conn)


def _stored_updated_at(warehouse: Warehouse, table: str, ids: pd.Series, conn: Connection) -> pd.DataFrame:
    t = warehouse.table(table)
    parts = []
    values = [int(v) for v in ids.unique()]
    for start in range(0, len(values), _ID_CHUNK):
        chunk = values[start:start + _ID_CHUNK]
        parts.append(warehouse.read(table, columns=["id", "updated_at"],
                                    where=t.c.id.in_(chunk), conn=conn))
    stored = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["id", "updated_at"])
    stored = stored.rename(columns={"updated_at": "stored_updated_at"})
    stored["id"] = stored["id"].astype("int64")
    stored["stored_updated_at"] = stored["stored_updated_at"].astype("datetime64[us]")
    return stored


def tickets_needing_comments(warehouse: Warehouse) -> pd.DataFrame:
    """Tickets whose comments are due: not deleted, changed (`updated_at`) since the comments
    stored for them, and customer correspondence. A ticket requested by a Zendesk agent or admin
    counts when it names an outside party: a sender (`from_address`, a mail an agent forwarded)
    or people in CC / collaborators. A requester not (yet) among the users counts as a customer:
    missing a customer's reply costs more than one extra request."""
    t = warehouse.table("zendesk_tickets")
    due = sa.or_(t.c.comments_updated_at.is_(None), t.c.updated_at > t.c.comments_updated_at)
    where = sa.and_(t.c.status != parse.DELETED, due, sa.not_(_staff_only(warehouse)))
    mark = warehouse.get_state(COMMENTS_MARK_KEY)
    if mark:  # rows written before comments_updated_at existed, whose comments were fetched
        fetched_before = sa.and_(t.c.comments_updated_at.is_(None),
                                 t.c.extracted_at <= datetime.fromisoformat(mark))
        where = sa.and_(where, sa.not_(fetched_before))
    return warehouse.read("zendesk_tickets", columns=["id", "requester_id", "updated_at", "extracted_at"],
                          where=where, order_by=["id"])


def _staff_only(warehouse: Warehouse) -> sa.ColumnElement[bool]:
    """SQL: a ticket requested by a Zendesk agent or admin that names no outside party (no
    sender address, nobody in CC, no collaborator): not customer correspondence."""
    t, u = warehouse.table("zendesk_tickets"), warehouse.table("zendesk_users")
    staff = sa.select(u.c.id).where(u.c.role.in_(sorted(parse.STAFF_ROLES)))

    def no_ids(column):
        return sa.func.coalesce(column, "[]").in_(["", "[]"])

    return sa.and_(t.c.requester_id.is_not(None), t.c.requester_id.in_(staff), t.c.from_address.is_(None),
                   no_ids(t.c.email_cc_ids), no_ids(t.c.collaborator_ids))


def tickets_without_correspondence(warehouse: Warehouse) -> set[int]:
    """Tickets whose comments are not stored: deleted ones and agents' own (see `_staff_only`).
    A ticket not (yet) in the warehouse is not among them: its comments are kept."""
    t = warehouse.table("zendesk_tickets")
    where = sa.or_(t.c.status == parse.DELETED, _staff_only(warehouse))
    with warehouse.begin() as conn:
        return {int(v) for v in conn.execute(sa.select(t.c.id).where(where)).scalars()}


def extract_comments(
    client: ZendeskClient,
    warehouse: Warehouse,
    *,
    extracted_at: datetime,
    log: Log = lambda _msg: None,
    warn: Log | None = None,
    progress_every: int = 100,
    concurrency: int = 1,
    known_on: date | None = None,
    run_id: str | None = None,
) -> CommentsOutcome:
    """Comments of the tickets whose comments are due (see `tickets_needing_comments`), written
    with their `comments_updated_at` in one transaction.

    One ticket whose comments keep failing (5xx after the retries, a rate limit beyond the
    budget, a broken answer) does not cost the others: what was fetched is written, that ticket
    stays due (retried next run) and is named in `failed_tickets`. A refused token (401) still
    fails the run: no ticket could succeed. Comments cost one request per ticket, so
    `concurrency` requests may be in flight at once."""
    warn = warn or log
    tickets = tickets_needing_comments(warehouse)
    log(f"Zendesk comments: {len(tickets)} customer tickets new or changed since their comments were fetched")
    previously_failed = set(json.loads(warehouse.get_state(COMMENTS_FAILED_KEY) or "[]"))
    frames: list[pd.DataFrame] = []
    skipped: list[int] = []
    failed: dict[int, str] = {}
    done: list[int] = []
    unstorable: list[str] = []
    pages = 0
    count = 0
    streak = {"failures": 0, "stop": False}
    lock = threading.Lock()

    def fetch(ticket_id: int):
        if streak["stop"]:
            return "deferred"
        try:
            result = list(client.ticket_comments(ticket_id))
        except ZendeskNotFoundError:
            result = None
        except ZendeskAuthError:
            raise
        except ZendeskError as exc:
            with lock:
                streak["failures"] += 1
                streak["stop"] = streak["failures"] >= MAX_CONSECUTIVE_COMMENT_FAILURES
            return exc
        with lock:
            streak["failures"] = 0
        return result

    ids = [int(t) for t in tickets["id"].tolist()]
    deferred: list[int] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        # map() keeps ticket order, so the log and the frames are the same at any concurrency.
        for n, (ticket_id, result) in enumerate(zip(ids, pool.map(fetch, ids)), start=1):
            if isinstance(result, str):
                deferred.append(ticket_id)
                continue
            if isinstance(result, ZendeskError):
                failed[ticket_id] = str(result)
                warn(f"Zendesk comments of ticket {ticket_id} could not be fetched ({result});"
                     f" the ticket is retried next run")
                continue
            done.append(ticket_id)
            if result is None:
                # Deleted after the export; its "deleted" status arrives with the next export.
                skipped.append(ticket_id)
                log(f"Zendesk ticket {ticket_id} no longer exists; its comments are skipped")
            for page_no, page in enumerate(result or [], start=1):
                pages += 1
                frames.append(parse.comments_frame(ticket_id, page, extracted_at, unstorable))
                count += len(page)
                if page_no > 1:
                    log(f"Zendesk comments of ticket {ticket_id}: page {page_no} ({len(page)} comments)")
            if n % progress_every == 0 or n == len(ids):
                log(f"Zendesk comments: {n}/{len(ids)} tickets, {pages} pages, {count} comments")
    if deferred:
        warn(f"Zendesk comments: {MAX_CONSECUTIVE_COMMENT_FAILURES} tickets in a row failed; the other"
             f" {len(deferred)} tickets were not tried and wait for the next run")
    for problem in unstorable:
        warn(f"Zendesk comment left out (it cannot be stored): {problem}")
    comments = _concat(frames, parse.comments_frame(0, [], extracted_at))
    comments = comments.drop_duplicates("id", keep="last").reset_index(drop=True)
    synced = tickets.loc[tickets["id"].isin(done), ["id", "updated_at"]]
    with warehouse.begin() as conn:
        written = warehouse.upsert("zendesk_comments", comments, conn=conn)
        as_known.record_versions(warehouse, "zendesk_comments", conn=conn,
                                 stamp=as_known.Stamp.of(extracted_at, known_on, run_id), values=comments["id"])
        _mark_comments_synced(warehouse, synced, conn)
        warehouse.set_state(COMMENTS_FAILED_KEY, json.dumps(sorted(failed)), conn=conn)
    return CommentsOutcome(comments=comments, tickets=len(tickets), pages=pages,
                           skipped_tickets=skipped, written=written, failed_tickets=failed,
                           retried_tickets=sorted(previously_failed & set(done)),
                           deferred_tickets=deferred, unstorable=unstorable)


def extract_comment_events(
    client: ZendeskClient,
    warehouse: Warehouse,
    *,
    extracted_at: datetime,
    start_time: int = 0,
    log: Log = lambda _msg: None,
    warn: Log | None = None,
    known_on: date | None = None,
    run_id: str | None = None,
) -> CommentEventsOutcome:
    """The comments added since the stored time mark, from the ticket event export: one stream
    for the whole account (up to 1,000 events a page), not one request per ticket. Each page is
    parsed into one frame and written as it arrives, in the transaction that also stores the
    new mark, so a crash leaves the last night's rows and mark whole.

    Comments of deleted tickets and of agents' own tickets are left out, as the per-ticket pull
    did. A redaction changes an old comment whose event lies before the mark: that ticket's
    comments are fetched one by one (the one thing the export cannot give), and retried next
    run when that fails. When the export breaks off (5xx after the retries, a rate limit beyond
    the budget, a broken page), what was fetched is kept, the mark stays at the last page
    written, and the error is reported instead of failing the night; a refused token (401)
    still fails the run."""
    warn = warn or log
    mark = _stored_mark(warehouse, COMMENT_EVENTS_MARK_KEY)
    begin = mark if mark is not None else int(start_time)
    log(f"Zendesk comments: ticket event export from start_time={begin}"
        + (" (the stored mark)" if mark is not None else " (first run)"))
    excluded = tickets_without_correspondence(warehouse)
    refetch = {int(t) for t in json.loads(warehouse.get_state(COMMENT_EVENTS_REFETCH_KEY) or "[]")}
    unstorable: list[str] = []
    preview: list[pd.DataFrame] = []
    end, pages, events, fetched, written, parse_errors = begin, 0, 0, 0, 0, 0
    stream_error = None
    seen_ids: list[pd.Series] = []  # every comment written, for its version (point-in-time reads)
    with warehouse.begin() as conn:
        try:
            for page in client.export_ticket_events(start_time=begin):
                pages += 1
                events += len(page.events)
                frame = parse.comment_events_frame(page.events, extracted_at, unstorable)
                frame = frame.loc[~frame["ticket_id"].isin(excluded)]
                frame = frame.drop_duplicates("id", keep="last").reset_index(drop=True)
                written += warehouse.upsert("zendesk_comments", frame, conn=conn)
                seen_ids.append(frame["id"])
                fetched += len(frame)
                parse_errors += int(frame["parse_error"].notna().sum())
                if sum(map(len, preview)) < _PREVIEW_ROWS and not frame.empty:
                    preview.append(frame.head(_PREVIEW_ROWS))
                refetch |= parse.redacted_tickets(page.events)
                end = max(end, page.end_time)
                log(f"Zendesk ticket events page {pages}: {len(page.events)} events, {len(frame)}"
                    f" customer comments ({fetched} so far), up to {page.end_time}")
        except ZendeskAuthError:
            raise
        except ZendeskError as exc:
            stream_error = str(exc)
            warn(f"Zendesk ticket event export broke off after {pages} pages ({exc}); what was"
                 f" fetched is kept and the next run resumes from start_time={end}")
        refetched, rewritten, failed = _refetch_comments(
            client, warehouse, sorted(refetch - excluded), extracted_at, conn, unstorable, log, warn, seen_ids)
        written += rewritten
        if seen_ids:
            as_known.record_versions(warehouse, "zendesk_comments", conn=conn,
                                     stamp=as_known.Stamp.of(extracted_at, known_on, run_id),
                                     values=pd.concat(seen_ids, ignore_index=True).drop_duplicates())
        warehouse.set_state(COMMENT_EVENTS_MARK_KEY, str(end), conn=conn)
        warehouse.set_state(COMMENT_EVENTS_REFETCH_KEY, json.dumps(sorted(failed)), conn=conn)
    for problem in unstorable:
        warn(f"Zendesk comment left out (it cannot be stored): {problem}")
    sample = _concat(preview, parse.comment_events_frame([], extracted_at)).head(_PREVIEW_ROWS)
    return CommentEventsOutcome(
        preview=sample, fetched=fetched, written=written, pages=pages, events=events,
        start_time=begin, next_start_time=end, resumed=mark is not None, parse_errors=parse_errors,
        stream_error=stream_error, refetched_tickets=refetched, refetch_failed=failed,
        unstorable=unstorable)


def _refetch_comments(client: ZendeskClient, warehouse: Warehouse, ticket_ids: list[int],
                      extracted_at: datetime, conn: Connection, unstorable: list[str], log: Log,
                      warn: Log, seen_ids: list[pd.Series]) -> tuple[list[int], int, dict[int, str]]:
    """Every comment of these tickets, from the per-ticket endpoint: (done, rows written, failed)."""
    done: list[int] = []
    failed: dict[int, str] = {}
    written = 0
    for ticket_id in ticket_ids:
        try:
            pages = list(client.ticket_comments(ticket_id))
        except ZendeskNotFoundError:
            done.append(ticket_id)  # deleted since: its "deleted" status comes with the export
            continue
        except ZendeskAuthError:
            raise
        except ZendeskError as exc:
            failed[ticket_id] = str(exc)
            warn(f"Zendesk comments of ticket {ticket_id} (a comment was redacted) could not be"
                 f" fetched ({exc}); the ticket is retried next run")
            continue
        frames = [parse.comments_frame(ticket_id, page, extracted_at, unstorable) for page in pages]
        frame = _concat(frames, parse.comments_frame(ticket_id, [], extracted_at))
        frame = frame.drop_duplicates("id", keep="last")
        written += warehouse.upsert("zendesk_comments", frame, conn=conn)
        seen_ids.append(frame["id"])
        done.append(ticket_id)
        log(f"Zendesk comments of ticket {ticket_id} fetched again: a comment was redacted")
    return done, written, failed


def _mark_comments_synced(warehouse: Warehouse, synced: pd.DataFrame, conn: Connection) -> None:
    """Record, per ticket, the `updated_at` its stored comments belong to."""
    if synced.empty:
        return
    t = warehouse.table("zendesk_tickets")
    stmt = (t.update().where(t.c.id == sa.bindparam("ticket_id"))
            .values(comments_updated_at=sa.bindparam("synced_at")))
    rows = [{"ticket_id": int(i), "synced_at": None if pd.isna(u) else pd.Timestamp(u).to_pydatetime()}
            for i, u in zip(synced["id"], synced["updated_at"])]
    for start in range(0, len(rows), _ID_CHUNK):
        conn.execute(stmt, rows[start:start + _ID_CHUNK])


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty
    return pd.concat(frames, ignore_index=True)

"""Zendesk extraction runs: export pages to de-duplicated frames, written with their cursors.

No Dagster here (the assets wire it). Each run writes in ONE warehouse transaction: the rows
and the cursor that describes them, so a crash leaves the previous state and cursor whole and
the next run resumes from where the last committed one ended. Upserts are "newest wins": a row
whose stored `updated_at` is newer than the incoming copy is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.zendesk import parse
from dunning_pipeline.zendesk.client import ZendeskClient, ZendeskNotFoundError

TICKETS_CURSOR_KEY = "zendesk.tickets.cursor"
USERS_CURSOR_KEY = "zendesk.users.cursor"
# extracted_at of the newest ticket rows whose comments were fetched.
COMMENTS_MARK_KEY = "zendesk.comments.tickets_extracted_at"

_ID_CHUNK = 5_000
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
    tickets_cursor: str | None
    users_cursor: str | None
    resumed: bool  # True when the run started from a stored cursor


@dataclass(frozen=True)
class CommentsOutcome:
    comments: pd.DataFrame  # fetched this run
    tickets: int  # tickets whose comments were fetched
    pages: int
    skipped_tickets: list[int]  # deleted in Zendesk since they were exported (404)
    written: int


def extract_tickets_and_users(
    client: ZendeskClient,
    warehouse: Warehouse,
    *,
    extracted_at: datetime,
    start_time: int = 0,
    log: Log = lambda _msg: None,
) -> ExportOutcome:
    """Tickets (with side-loaded users) and users changed since the stored cursors."""
    tickets_cursor = warehouse.get_state(TICKETS_CURSOR_KEY)
    users_cursor = warehouse.get_state(USERS_CURSOR_KEY)
    resumed = tickets_cursor is not None
    log(
        f"Zendesk tickets: resuming from the stored cursor {tickets_cursor}" if resumed
        else f"Zendesk tickets: first run, full export from start_time={start_time}"
    )

    ticket_frames: list[pd.DataFrame] = []
    user_frames: list[pd.DataFrame] = []
    ticket_pages = 0
    fetched = 0
    for page in client.export_tickets(cursor=tickets_cursor, start_time=start_time):
        ticket_pages += 1
        ticket_frames.append(parse.tickets_frame(page.records, extracted_at))
        user_frames.append(parse.users_frame(page.users, extracted_at))
        fetched += len(page.records)
        tickets_cursor = page.after_cursor or tickets_cursor
        log(f"Zendesk tickets page {ticket_pages}: {len(page.records)} tickets,"
            f" {len(page.users)} side-loaded users ({fetched} tickets so far)")

    user_pages = 0
    fetched_users = 0
    for page in client.export_users(cursor=users_cursor, start_time=start_time):
        user_pages += 1
        user_frames.append(parse.users_frame(page.records, extracted_at))
        fetched_users += len(page.records)
        users_cursor = page.after_cursor or users_cursor
        log(f"Zendesk users page {user_pages}: {len(page.records)} users ({fetched_users} so far)")

    tickets = parse.newest_by_id(_concat(ticket_frames, parse.tickets_frame([], extracted_at)))
    users = parse.newest_by_id(_concat(user_frames, parse.users_frame([], extracted_at)))

    with warehouse.begin() as conn:
        tickets_written = upsert_newest(warehouse, "zendesk_tickets", tickets, conn=conn)
        users_written = upsert_newest(warehouse, "zendesk_users", users, conn=conn)
        if tickets_cursor:
            warehouse.set_state(TICKETS_CURSOR_KEY, tickets_cursor, conn=conn)
        if users_cursor:
            warehouse.set_state(USERS_CURSOR_KEY, users_cursor, conn=conn)
    log(f"Zendesk: wrote {tickets_written} of {len(tickets)} tickets and {users_written} of"
        f" {len(users)} users (the others were not newer than the stored copies)")
    return ExportOutcome(
        tickets=tickets, users=users, tickets_written=tickets_written, users_written=users_written,
        ticket_pages=ticket_pages, user_pages=user_pages, tickets_cursor=tickets_cursor,
        users_cursor=users_cursor, resumed=resumed,
    )


def upsert_newest(warehouse: Warehouse, table: str, frame: pd.DataFrame, *,
                  conn: Connection) -> int:
    """Upsert `frame` (one row per id) except rows older than the stored copy; returns the
    number of rows written. A stored row with a newer `updated_at` wins, so a late re-emission
    of an old version can never overwrite a newer one."""
    if frame.empty:
        return 0
    stored = _stored_updated_at(warehouse, table, frame["id"], conn)
    incoming = frame.merge(stored, on="id", how="left")
    newer = (
        incoming["stored_updated_at"].isna()
        | (incoming["updated_at"].notna() & (incoming["updated_at"] >= incoming["stored_updated_at"]))
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
    """Tickets written since the comments were last fetched, that are customer correspondence:
    not deleted, and not requested by a Zendesk agent or admin. A requester not (yet) among the
    users counts as a customer: missing a customer's reply costs more than one extra request."""
    t = warehouse.table("zendesk_tickets")
    mark = warehouse.get_state(COMMENTS_MARK_KEY)
    where = t.c.status != parse.DELETED
    if mark:
        where = sa.and_(where, t.c.extracted_at > datetime.fromisoformat(mark))
    tickets = warehouse.read("zendesk_tickets", columns=["id", "requester_id", "extracted_at"],
                             where=where, order_by=["id"])
    if tickets.empty:
        return tickets
    u = warehouse.table("zendesk_users")
    requesters = [int(v) for v in tickets["requester_id"].dropna().unique()]
    staff: set[int] = set()
    for start in range(0, len(requesters), _ID_CHUNK):
        chunk = requesters[start:start + _ID_CHUNK]
        users = warehouse.read("zendesk_users", columns=["id", "role"],
                               where=sa.and_(u.c.id.in_(chunk), u.c.role.in_(sorted(parse.STAFF_ROLES))))
        staff.update(int(v) for v in users["id"])
    is_staff = tickets["requester_id"].isin(staff).fillna(False).astype(bool)
    return tickets.loc[~is_staff.to_numpy()].reset_index(drop=True)


def extract_comments(
    client: ZendeskClient,
    warehouse: Warehouse,
    *,
    extracted_at: datetime,
    log: Log = lambda _msg: None,
    progress_every: int = 100,
    concurrency: int = 1,
) -> CommentsOutcome:
    """Comments of the tickets that changed since the last comments run (see
    `tickets_needing_comments`), written with the new mark in one transaction.

    Comments cost one request per ticket, so `concurrency` requests may be in flight at once
    (the account's rate limit still applies: a 429 is retried after its Retry-After)."""
    tickets = tickets_needing_comments(warehouse)
    log(f"Zendesk comments: {len(tickets)} customer tickets new or changed since the last comments run")
    frames: list[pd.DataFrame] = []
    skipped: list[int] = []
    pages = 0
    count = 0

    def fetch(ticket_id: int) -> list[list[dict]] | None:
        try:
            return list(client.ticket_comments(ticket_id))
        except ZendeskNotFoundError:
            return None

    ids = [int(t) for t in tickets["id"].tolist()]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        # map() keeps ticket order, so the log and the frames are the same at any concurrency.
        for n, (ticket_id, ticket_pages) in enumerate(zip(ids, pool.map(fetch, ids)), start=1):
            if ticket_pages is None:
                # Deleted after the export; its "deleted" status arrives with the next export.
                skipped.append(ticket_id)
                log(f"Zendesk ticket {ticket_id} no longer exists; its comments are skipped")
            for page_no, page in enumerate(ticket_pages or [], start=1):
                pages += 1
                frames.append(parse.comments_frame(ticket_id, page, extracted_at))
                count += len(page)
                if page_no > 1:
                    log(f"Zendesk comments of ticket {ticket_id}: page {page_no} ({len(page)} comments)")
            if n % progress_every == 0 or n == len(ids):
                log(f"Zendesk comments: {n}/{len(ids)} tickets, {pages} pages, {count} comments")
    comments = _concat(frames, parse.comments_frame(0, [], extracted_at))
    comments = comments.drop_duplicates("id", keep="last").reset_index(drop=True)
    with warehouse.begin() as conn:
        written = warehouse.upsert("zendesk_comments", comments, conn=conn)
        if not tickets.empty:
            newest = pd.Timestamp(tickets["extracted_at"].max()).isoformat()
            warehouse.set_state(COMMENTS_MARK_KEY, newest, conn=conn)
    return CommentsOutcome(comments=comments, tickets=len(tickets), pages=pages,
                           skipped_tickets=skipped, written=written)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty
    return pd.concat(frames, ignore_index=True)

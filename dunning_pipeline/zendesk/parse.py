"""Zendesk JSON records to typed frames with exactly the columns of the warehouse tables.

Pure: no I/O, no clock (the extraction time is passed in). One odd record never fails a page:
a field that does not fit (a list where text is expected, a timestamp that does not parse, a
`via.channel` that is neither a name nor a via id) becomes null and the record keeps the reason
in `parse_error`, which the data-quality rule `fields_parse` quarantines; text holding a lone
surrogate or NUL is stored with U+FFFD instead (`safe_text`) and noted the same way. A record that cannot
be stored at all (no integer id, a ticket without a status) is left out and described in the
caller's `unstorable` list (or raises `ZendeskDataError` when no list is given). Values the
rules may not know (a new ticket status) pass through unchanged for the checks to judge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dunning_pipeline import lazy, safe_text
from dunning_pipeline.warehouse import schema

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

# comments_updated_at belongs to the comments extraction: the tickets upsert leaves it alone.
COMMENTS_SYNC_COLUMN = "comments_updated_at"
TICKET_COLUMNS = [c.name for c in schema.zendesk_tickets.columns if c.name != COMMENTS_SYNC_COLUMN]
USER_COLUMNS = [c.name for c in schema.zendesk_users.columns]
COMMENT_COLUMNS = [c.name for c in schema.zendesk_comments.columns]

DELETED = "deleted"
# Roles of Zendesk staff: their own tickets are not customer correspondence.
STAFF_ROLES = frozenset({"agent", "admin"})

# `via.channel` may be a via id (an integer): the channel name the ticket API uses for it, else
# the via type (Zendesk's "Via types reference"). An id not listed is kept as its number.
VIA_CHANNELS = {
    0: "web", 4: "email", 5: "api", 8: "rule", 9: "linked_problem", 10: "group_deletion",
    11: "user_change", 12: "user_deletion", 13: "group_change", 14: "resource_push", 15: "iphone",
    16: "get_satisfaction", 17: "web", 19: "merge", 20: "web", 21: "recovered_from_suspended_tickets",
    22: "automatic_solution_suggestions", 23: "twitter", 24: "forum", 25: "user_merge", 26: "twitter",
    27: "web", 28: "logmein_rescue", 29: "chat", 30: "twitter", 31: "api", 32: "macro_reference",
    33: "voice", 34: "voice", 35: "voice", 36: "api", 37: "text_message", 38: "facebook", 39: "api",
    40: "api", 41: "facebook", 44: "voice", 45: "voice", 46: "voice",
}


class ZendeskDataError(ValueError):
    """A Zendesk record that cannot be stored; the message names the record and the field."""


class _Fields:
    """Reads the fields of one record: a field that does not fit is null, its problem noted."""

    def __init__(self, what: str):
        self.what = what
        self.errors: list[str] = []

    def read(self, reader, *args, **kwargs):
        try:
            return reader(*args, **kwargs)
        except ZendeskDataError as exc:
            self.errors.append(str(exc))
            return None

    def text(self, rec: Mapping[str, Any], key: str, label: str | None = None, *,
             allow_number: bool = False) -> str | None:
        """A text field; one a database cannot store as sent is stored with U+FFFD, and noted."""
        value = self.read(_text, rec, key, self.what, label, allow_number=allow_number)
        return self.storable(value, label or key) if isinstance(value, str) else value

    def storable(self, value: str, label: str) -> str:
        problem = safe_text.text_problem(value)
        if problem is None:
            return value
        self.errors.append(f"{self.what}: field {label!r} {problem}")
        return safe_text.clean(value)

    def mapping(self, rec: Mapping[str, Any], key: str, label: str | None = None) -> Mapping[str, Any]:
        return self.read(_mapping, rec, key, self.what, label) or {}

    def error_text(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


def _storable_id(rec: Any, kind: str, unstorable: list[str] | None) -> int | None:
    try:
        return _id(rec, "id", kind)
    except ZendeskDataError as exc:
        if unstorable is None:
            raise
        unstorable.append(str(exc))
        return None


def tickets_frame(records: Iterable[Mapping[str, Any]], extracted_at: datetime,
                  unstorable: list[str] | None = None) -> pd.DataFrame:
    """Tickets of the incremental export, one row per record (not yet de-duplicated)."""
    rows = []
    for rec in records:
        tid = _storable_id(rec, "ticket", unstorable)
        if tid is None:
            continue
        what = f"ticket {tid}"
        f = _Fields(what)
        status = f.text(rec, "status")
        if status is None:  # the table cannot hold a ticket without a status
            problem = f.error_text() or f"{what}: field 'status' is missing"
            if unstorable is None:
                raise ZendeskDataError(problem)
            unstorable.append(problem)
            continue
        via = f.mapping(rec, "via")
        source = f.mapping(via, "source", "via.source")
        sender = f.mapping(source, "from", "via.source.from")
        rows.append({
            "id": tid,
            "status": status,
            "subject": f.text(rec, "subject"),
            "description": f.text(rec, "description"),
            "requester_id": f.read(_id, rec, "requester_id", what, required=False),
            "organization_id": f.read(_id, rec, "organization_id", what, required=False),
            "tags": _storable_tags(f, f.read(_tags, rec, what)),
            "via_channel": f.read(_channel, via, what, "via.channel"),
            "from_address": f.text(sender, "address", "via.source.from.address"),
            "created_at": rec.get("created_at"),
            "updated_at": rec.get("updated_at"),
            "email_cc_ids": f.read(_id_list, rec, "email_cc_ids", what),
            "collaborator_ids": f.read(_id_list, rec, "collaborator_ids", what),
            "follower_ids": f.read(_id_list, rec, "follower_ids", what),
            "via_source_from_name": f.text(sender, "name", "via.source.from.name"),
            "parse_error": f.error_text(),
        })
    frame = _frame(rows, TICKET_COLUMNS, ("requester_id", "organization_id"))
    frame = _timestamps(frame, ("created_at", "updated_at"), "ticket", required=("updated_at",))
    return _finish(frame, TICKET_COLUMNS, extracted_at)


def users_frame(records: Iterable[Mapping[str, Any]], extracted_at: datetime,
                unstorable: list[str] | None = None) -> pd.DataFrame:
    """Users, from the users export or side-loaded with tickets (not yet de-duplicated)."""
    rows = []
    for rec in records:
        uid = _storable_id(rec, "user", unstorable)
        if uid is None:
            continue
        what = f"user {uid}"
        f = _Fields(what)
        rows.append({
            "id": uid,
            "email": f.text(rec, "email"),
            "name": f.text(rec, "name"),
            "organization_id": f.read(_id, rec, "organization_id", what, required=False),
            "role": f.text(rec, "role"),
            "external_id": f.text(rec, "external_id", allow_number=True),
            "updated_at": rec.get("updated_at"),
            "active": f.read(_bool, rec, "active", what),
            "suspended": f.read(_bool, rec, "suspended", what),
            "parse_error": f.error_text(),
        })
    frame = _frame(rows, USER_COLUMNS, ("organization_id",))
    for col in ("active", "suspended"):
        frame[col] = frame[col].astype("boolean")
    frame = _timestamps(frame, ("updated_at",), "user", required=())
    return _finish(frame, USER_COLUMNS, extracted_at)


def comments_frame(ticket_id: int, records: Iterable[Mapping[str, Any]], extracted_at: datetime,
                   unstorable: list[str] | None = None) -> pd.DataFrame:
    """Comments of one ticket; `body` is the plain text (plain_body, else body)."""
    rows = [row for rec in records if (row := _comment_row(ticket_id, rec, unstorable)) is not None]
    return _comments(rows, extracted_at)


def _comments(rows: list[dict], extracted_at: datetime) -> pd.DataFrame:
    frame = _frame(rows, COMMENT_COLUMNS, ("author_id",))
    frame["public"] = frame["public"].astype("boolean")
    frame = _timestamps(frame, ("created_at",), "comment", required=())
    return _finish(frame, COMMENT_COLUMNS, extracted_at)


COMMENT_EVENT = "Comment"
REDACTION_EVENTS = frozenset({"CommentRedactionEvent", "AttachmentRedactionEvent"})


def comment_events_frame(events: Iterable[Mapping[str, Any]], extracted_at: datetime,
                         unstorable: list[str] | None = None) -> pd.DataFrame:
    """The comments of one page of the ticket event export (`include=comment_events`), one
    frame for the whole page: each event's `child_events` of type Comment, with the ticket id of
    their event. Events without a comment (field changes, deletions) add nothing; a comment
    whose event names no ticket cannot be stored."""
    rows = []
    for event, child in _comment_children(events, unstorable):
        ticket_id = _storable_ticket_id(event, child, unstorable)
        if ticket_id is not None:
            row = _comment_row(ticket_id, child, unstorable)
            if row is not None:
                rows.append(row)
    return _comments(rows, extracted_at)


def redacted_tickets(events: Iterable[Mapping[str, Any]]) -> set[int]:
    """Tickets with a comment redacted in these events: the event export carries the redaction,
    not the comment's new text (that comment's own event lies in the past)."""
    found = set()
    for event in events:
        if not isinstance(event, Mapping) or not isinstance(event.get("child_events"), list):
            continue
        ticket_id = event.get("ticket_id")
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, int):
            continue
        if any(isinstance(c, Mapping) and c.get("event_type") in REDACTION_EVENTS for c in event["child_events"]):
            found.add(ticket_id)
    return found


def _comment_children(events: Iterable[Mapping[str, Any]], unstorable: list[str] | None):
    for event in events:
        children = event.get("child_events") if isinstance(event, Mapping) else None
        if children is None:
            continue
        if not isinstance(children, list):
            problem = f"ticket event {_short(event.get('id'))}: field 'child_events' is {_short(children)}, expected a list"
            if unstorable is None:
                raise ZendeskDataError(problem)
            unstorable.append(problem)
            continue
        for child in children:
            if isinstance(child, Mapping) and (child.get("event_type") or child.get("type")) == COMMENT_EVENT:
                yield event, child


def _storable_ticket_id(event: Mapping[str, Any], child: Mapping[str, Any],
                        unstorable: list[str] | None) -> int | None:
    try:
        return _id(event, "ticket_id", f"ticket event {_short(event.get('id'))} (comment {_short(child.get('id'))})")
    except ZendeskDataError as exc:
        if unstorable is None:
            raise
        unstorable.append(str(exc))
        return None


def _comment_row(ticket_id: int, rec: Mapping[str, Any], unstorable: list[str] | None) -> dict | None:
    """One comment as a row of zendesk_comments (the fields comments_frame reads)."""
    cid = _storable_id(rec, f"comment of ticket {ticket_id}", unstorable)
    if cid is None:
        return None
    what = f"comment {cid} of ticket {ticket_id}"
    f = _Fields(what)
    via = f.mapping(rec, "via")
    body = f.text(rec, "plain_body")
    return {
        "id": cid,
        "ticket_id": int(ticket_id),
        "author_id": f.read(_id, rec, "author_id", what, required=False),
        "public": f.read(_bool, rec, "public", what),
        "body": body if body is not None else f.text(rec, "body"),
        "via_channel": f.read(_channel, via, what, "via.channel"),
        "created_at": rec.get("created_at"),
        "parse_error": f.error_text(),
    }


def newest_by_id(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per id: the newest `updated_at`; among equals the one emitted last (a later page
    of the export carries the later change)."""
    if frame.empty:
        return frame
    order = frame.assign(_seq=range(len(frame))).sort_values(
        ["updated_at", "_seq"], kind="stable", na_position="first"
    )
    newest = order.drop_duplicates("id", keep="last").sort_values("_seq")
    return newest.drop(columns="_seq").reset_index(drop=True)


# -- field readers ---------------------------------------------------------------------------------
def _id(rec: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> int | None:
    """An integer id; for the record's own id, `what` is the kind and the record is described."""
    if not isinstance(rec, Mapping):
        raise ZendeskDataError(f"{what}: expected a JSON object, got {_short(rec)}")
    if key == "id":
        what = f"{what} {_peek(rec)}"
    value = rec.get(key)
    if value is None:
        if required:
            raise ZendeskDataError(f"{what}: field {key!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZendeskDataError(f"{what}: field {key!r} is {_short(value)}, expected an integer id")
    return int(value)


def _text(rec: Mapping[str, Any], key: str, what: str, label: str | None = None, *,
          allow_number: bool = False) -> str | None:
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if allow_number and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ZendeskDataError(f"{what}: field {label or key!r} is {_short(value)}, expected text")


def _channel(via: Mapping[str, Any], what: str, label: str) -> str | None:
    """A channel name, or a via id mapped to its name (both are documented)."""
    value = via.get("channel")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return VIA_CHANNELS.get(value, str(value))
    raise ZendeskDataError(f"{what}: field {label!r} is {_short(value)}, expected a channel name or a via id")


def _bool(rec: Mapping[str, Any], key: str, what: str) -> bool | None:
    value = rec.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ZendeskDataError(f"{what}: field {key!r} is {_short(value)}, expected true or false")


def _id_list(rec: Mapping[str, Any], key: str, what: str) -> str:
    """A list of user ids as JSON text ("[]" when absent)."""
    ids = rec.get(key)
    if ids is None:
        ids = []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ZendeskDataError(f"{what}: field {key!r} is {_short(ids)}, expected a list of user ids")
    return json.dumps(ids)


def _mapping(rec: Mapping[str, Any], key: str, what: str, label: str | None = None) -> Mapping[str, Any]:
    value = rec.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ZendeskDataError(f"{what}: field {label or key!r} is {_short(value)}, expected an object")
    return value


def _tags(rec: Mapping[str, Any], what: str) -> str:
    tags = rec.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ZendeskDataError(f"{what}: field 'tags' is {_short(tags)}, expected a list of strings")
    return json.dumps(tags, ensure_ascii=False)


def _storable_tags(f: _Fields, tags: str | None) -> str | None:
    # JSON text of the tags (ensure_ascii=False): a tag a database cannot store is replaced
    return tags if tags is None else f.storable(tags, "tags")


def _frame(rows: list[dict], columns: list[str], nullable_ids: tuple[str, ...]) -> pd.DataFrame:
    data_cols = [c for c in columns if c != "extracted_at"]
    frame = pd.DataFrame(rows, columns=data_cols)
    frame["id"] = frame["id"].astype("int64")
    if "ticket_id" in frame:
        frame["ticket_id"] = frame["ticket_id"].astype("int64")
    for col in nullable_ids:
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    for col in data_cols:
        if frame[col].dtype == object and col not in ("created_at", "updated_at", "public", "active",
                                                      "suspended"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _timestamps(frame: pd.DataFrame, cols: tuple[str, ...], kind: str, *,
                required: tuple[str, ...]) -> pd.DataFrame:
    """ISO 8601 text to naive UTC datetime64[us]; a value that does not parse (or a missing
    required one) is null, and `parse_error` names the record and the field."""
    for col in cols:
        raw = frame[col]
        missing = raw.isna()
        not_text = ~missing & ~raw.map(lambda v: isinstance(v, str))
        parsed = pd.to_datetime(raw.where(~not_text), utc=True, errors="coerce", format="ISO8601")
        bad_mask = not_text | (~missing & parsed.isna())
        for i in frame.index[bad_mask]:
            _note(frame, i, f"{kind} {frame.at[i, 'id']}: field {col!r} is {_short(raw[i])},"
                            f" expected an ISO 8601 timestamp")
        if col in required:
            for i in frame.index[missing]:
                _note(frame, i, f"{kind} {frame.at[i, 'id']}: field {col!r} is missing")
        frame[col] = parsed.dt.tz_convert(None).astype("datetime64[us]")
    return frame


def _note(frame: pd.DataFrame, i, problem: str) -> None:
    before = frame.at[i, "parse_error"]
    frame.at[i, "parse_error"] = f"{before}; {problem}" if isinstance(before, str) and before else problem


def _finish(frame: pd.DataFrame, columns: list[str], extracted_at: datetime) -> pd.DataFrame:
    stamp = pd.Timestamp(extracted_at)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    frame["extracted_at"] = pd.Series([stamp] * len(frame), index=frame.index, dtype="datetime64[us]")
    return frame[columns]


def _peek(rec: Mapping[str, Any]) -> str:
    """Something to find a record without an id by (its subject, email or first keys)."""
    if not isinstance(rec, Mapping):
        return ""
    for key in ("subject", "email", "name", "created_at"):
        if rec.get(key):
            return f"({key}={_short(rec[key])})"
    return f"(keys {sorted(rec)[:5]})"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."

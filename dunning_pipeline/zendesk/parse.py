"""Zendesk JSON records to typed frames with exactly the columns of the warehouse tables.

Pure: no I/O, no clock (the extraction time is passed in). A record that cannot be stored (no
id, a timestamp that does not parse, a list where text is expected) raises `ZendeskDataError`
naming the record and the field. Values the rules may not know (a new ticket status) pass
through unchanged for the data-quality checks to judge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from dunning_pipeline.warehouse import schema

TICKET_COLUMNS = [c.name for c in schema.zendesk_tickets.columns]
USER_COLUMNS = [c.name for c in schema.zendesk_users.columns]
COMMENT_COLUMNS = [c.name for c in schema.zendesk_comments.columns]

DELETED = "deleted"
# Roles of Zendesk staff: their own tickets are not customer correspondence.
STAFF_ROLES = frozenset({"agent", "admin"})


class ZendeskDataError(ValueError):
    """A Zendesk record that cannot be stored; the message names the record and the field."""


def tickets_frame(records: Iterable[Mapping[str, Any]], extracted_at: datetime) -> pd.DataFrame:
    """Tickets of the incremental export, one row per record (not yet de-duplicated)."""
    rows = []
    for rec in records:
        tid = _id(rec, "id", "ticket")
        what = f"ticket {tid}"
        via = _mapping(rec, "via", what)
        source = _mapping(via, "source", what, "via.source")
        sender = _mapping(source, "from", what, "via.source.from")
        status = _text(rec, "status", what)
        if status is None:
            raise ZendeskDataError(f"{what}: field 'status' is missing")
        rows.append({
            "id": tid,
            "status": status,
            "subject": _text(rec, "subject", what),
            "description": _text(rec, "description", what),
            "requester_id": _id(rec, "requester_id", what, required=False),
            "organization_id": _id(rec, "organization_id", what, required=False),
            "tags": _tags(rec, what),
            "via_channel": _text(via, "channel", what, "via.channel"),
            "from_address": _text(sender, "address", what, "via.source.from.address"),
            "created_at": rec.get("created_at"),
            "updated_at": rec.get("updated_at"),
        })
    frame = _frame(rows, TICKET_COLUMNS, ("requester_id", "organization_id"))
    frame = _timestamps(frame, ("created_at", "updated_at"), "ticket", required=("updated_at",))
    return _finish(frame, TICKET_COLUMNS, extracted_at)


def users_frame(records: Iterable[Mapping[str, Any]], extracted_at: datetime) -> pd.DataFrame:
    """Users, from the users export or side-loaded with tickets (not yet de-duplicated)."""
    rows = []
    for rec in records:
        uid = _id(rec, "id", "user")
        what = f"user {uid}"
        rows.append({
            "id": uid,
            "email": _text(rec, "email", what),
            "name": _text(rec, "name", what),
            "organization_id": _id(rec, "organization_id", what, required=False),
            "role": _text(rec, "role", what),
            "external_id": _text(rec, "external_id", what, allow_number=True),
            "updated_at": rec.get("updated_at"),
        })
    frame = _frame(rows, USER_COLUMNS, ("organization_id",))
    frame = _timestamps(frame, ("updated_at",), "user", required=())
    return _finish(frame, USER_COLUMNS, extracted_at)


def comments_frame(
    ticket_id: int, records: Iterable[Mapping[str, Any]], extracted_at: datetime
) -> pd.DataFrame:
    """Comments of one ticket; `body` is the plain text (plain_body, else body)."""
    rows = []
    for rec in records:
        cid = _id(rec, "id", f"comment of ticket {ticket_id}")
        what = f"comment {cid} of ticket {ticket_id}"
        via = _mapping(rec, "via", what)
        public = rec.get("public")
        if public is not None and not isinstance(public, bool):
            raise ZendeskDataError(f"{what}: field 'public' is {public!r}, expected true or false")
        body = _text(rec, "plain_body", what)
        rows.append({
            "id": cid,
            "ticket_id": int(ticket_id),
            "author_id": _id(rec, "author_id", what, required=False),
            "public": public,
            "body": body if body is not None else _text(rec, "body", what),
            "via_channel": _text(via, "channel", what, "via.channel"),
            "created_at": rec.get("created_at"),
        })
    frame = _frame(rows, COMMENT_COLUMNS, ("author_id",))
    frame["public"] = frame["public"].astype("boolean")
    frame = _timestamps(frame, ("created_at",), "comment", required=())
    return _finish(frame, COMMENT_COLUMNS, extracted_at)


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


def _frame(rows: list[dict], columns: list[str], nullable_ids: tuple[str, ...]) -> pd.DataFrame:
    data_cols = [c for c in columns if c != "extracted_at"]
    frame = pd.DataFrame(rows, columns=data_cols)
    frame["id"] = frame["id"].astype("int64")
    if "ticket_id" in frame:
        frame["ticket_id"] = frame["ticket_id"].astype("int64")
    for col in nullable_ids:
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    for col in data_cols:
        if frame[col].dtype == object and col not in ("created_at", "updated_at", "public"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _timestamps(frame: pd.DataFrame, cols: tuple[str, ...], kind: str, *,
                required: tuple[str, ...]) -> pd.DataFrame:
    """ISO 8601 text to naive UTC datetime64[us]; a value that does not parse names its record."""
    for col in cols:
        raw = frame[col]
        missing = raw.isna()
        if col in required and missing.any():
            bad = frame.loc[missing, "id"].iloc[0]
            raise ZendeskDataError(f"{kind} {bad}: field {col!r} is missing")
        not_text = ~missing & ~raw.map(lambda v: isinstance(v, str))
        parsed = pd.to_datetime(raw.where(~not_text), utc=True, errors="coerce", format="ISO8601")
        bad_mask = not_text | (~missing & parsed.isna())
        if bad_mask.any():
            row = frame.loc[bad_mask].iloc[0]
            raise ZendeskDataError(
                f"{kind} {row['id']}: field {col!r} is {_short(row[col])}, expected an ISO 8601 timestamp"
            )
        frame[col] = parsed.dt.tz_convert(None).astype("datetime64[us]")
    return frame


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

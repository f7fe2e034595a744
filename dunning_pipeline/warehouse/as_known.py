"""Point-in-time extracts: every version of a source record the warehouse has seen, and the
state "as known on day D" read from them.

Each extract table (`odoo_invoices`, `odoo_customers`, `odoo_receivable_lines`,
`zendesk_tickets`, `zendesk_users`, `zendesk_comments`) and the quarantine keep their current
state as before; beside each, `<table>_versions` holds one row per version of a record: its
columns, `valid_from` / `valid_to` (as-of days, `valid_to` exclusive, null while current), the
run that saw it (`run_id`, `seen_at` UTC) and a `content_hash`. The write paths call
`record_versions` after writing the current state, in the same transaction: a record whose
content (all columns but the bookkeeping ones, e.g. `extracted_at`) changed closes its open
version and opens a new one; a record gone from the current table (receivable lines replaced,
quarantine released) closes its version. Both are two SQL statements per batch (an UPDATE that
closes, an INSERT ... SELECT that opens), with the hash computed by the database: the rows never
travel through pandas.

Which day a version is known from: the as-of day of the run that extracted it (the run's
`dunning/as_of`, i.e. the business day of the night), not the wall clock, so a replay of night
D reads exactly what night D's extracts wrote whatever the time of the run. Versions move
forward only: a run whose as-of lies before the latest recorded day (a replay that re-extracts)
records what it sees as known from that latest day, never rewriting the past. Several runs of
one day: the last one's version is the day's (a version opened and closed on the same day has
`valid_from == valid_to` and is the state of no day's end, but is kept).

`read_as_known(wh, table, as_of)` reads the versions valid at the end of `as_of`; when `as_of`
is on or after the latest recorded day (tonight's run) that is the current table itself, read
from there. A day before the first recorded version cannot be known and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql import visitors

from dunning_pipeline import lazy
from dunning_pipeline.quality import tables as quality_tables
from dunning_pipeline.warehouse import schema, store

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER keys only
_CHUNK = 5_000


class AsKnownError(RuntimeError):
    """A day the versions cannot tell (before the first recorded one), or an unversioned table."""


@dataclass(frozen=True)
class Versioned:
    table: sa.Table
    versions: sa.Table
    ignored: frozenset[str]  # bookkeeping columns that are no change of the record
    # Before the first version nothing is known (an extract), or nothing was there (quarantine).
    empty_before_first: bool = False

    @property
    def key(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]


def _versions_table(current: sa.Table) -> sa.Table:
    """`<table>_versions`: the current table's columns (none unique) plus the version columns."""
    columns = [sa.Column("version_id", _ID, primary_key=True, autoincrement=True)]
    columns += [sa.Column(c.name, c.type, nullable=c.nullable and not c.primary_key, comment=c.comment)
                for c in current.columns]
    columns += [
        sa.Column("valid_from", sa.Date, nullable=False, comment="first as-of day this version is the known state"),
        sa.Column("valid_to", sa.Date, comment="first as-of day it no longer is (exclusive); null: current"),
        sa.Column("version_run_id", sa.Text, comment="the Dagster run that saw this version"),
        sa.Column("seen_at", sa.DateTime, comment="UTC; when that run wrote it"),
        sa.Column("content_hash", sa.Text, nullable=False, comment="md5 of the record's content (content_hash)"),
    ]
    versions = sa.Table(f"{current.name}_versions", schema.metadata, *columns,
                        comment=f"every version of the records of {current.name} (point-in-time reads)")
    key = [versions.c[c.name] for c in current.primary_key.columns]
    sa.Index(f"ix_{versions.name}_key", *key, versions.c.valid_to)
    sa.Index(f"ix_{versions.name}_valid_from", versions.c.valid_from)
    return versions


VERSIONED: dict[str, Versioned] = {}


def _register(current: sa.Table, ignored: Iterable[str] = (), empty_before_first: bool = False) -> None:
    VERSIONED[current.name] = Versioned(current, _versions_table(current), frozenset(ignored), empty_before_first)


for _table in (schema.odoo_invoices, schema.odoo_customers, schema.odoo_receivable_lines,
               schema.zendesk_users, schema.zendesk_comments):
    _register(_table, ignored=("extracted_at",))
# comments_updated_at only says which comments are stored: bookkeeping of the comments extract.
_register(schema.zendesk_tickets, ignored=("extracted_at", "comments_updated_at"))
# The quarantine is re-written each night: the same finding under a new run is no change.
_register(quality_tables.data_quality_quarantine, ignored=("run_id", "quarantined_at", "as_of_date"),
          empty_before_first=True)


def versioned(table: str) -> Versioned:
    try:
        return VERSIONED[table]
    except KeyError:
        raise AsKnownError(f"table {table!r} keeps no versions") from None


# -- the content hash ----------------------------------------------------------------------------
HASH_SCHEME = "md5-sql-1"  # extract_state `HASH_STATE`: how the open versions' hashes were made
HASH_STATE = "versions_content_hash"


def content_hash(source: sa.Table, spec: Versioned) -> sa.ColumnElement:
    """The content hash of a row of `source` (the current table or its versions: same column
    names) as SQL: md5 over "\x1fcolumn=value" of its non-null content columns, sorted by name,
    each value as the database casts it to text. A column added later (null) leaves a record's
    hash as it was; the bookkeeping columns (`spec.ignored`) are no part of it."""
    parts = [sa.func.coalesce(sa.literal(f"\x1f{name}=", sa.Text) + sa.cast(source.c[name], sa.Text), "")
             for name in sorted(c.name for c in spec.table.columns if c.name not in spec.ignored)]
    text = parts[0]
    for part in parts[1:]:
        text = text + part
    return sa.func.md5(text)


@store.on_schema
def _rehash_open_versions(warehouse, conn: Connection) -> None:
    """Open versions hashed by an earlier scheme (sha256 of pandas' text, before the hash moved
    into SQL) are rehashed once, so unchanged records are not all re-versioned the next night."""
    if warehouse.get_state(HASH_STATE, conn=conn) == HASH_SCHEME:
        return
    for spec in VERSIONED.values():
        v = spec.versions
        conn.execute(v.update().where(v.c.valid_to.is_(None)).values(content_hash=content_hash(v, spec)))
    warehouse.set_state(HASH_STATE, HASH_SCHEME, conn=conn)


# -- writing -------------------------------------------------------------------------------------
def latest_day(wh, table: str, conn: Connection | None = None) -> date | None:
    """The last day a version was opened or closed (the last day the known state changed)."""
    v = versioned(table).versions
    opened, closed = _day(wh, sa.func.max(v.c.valid_from), conn), _day(wh, sa.func.max(v.c.valid_to), conn)
    return max(d for d in (opened, closed) if d is not None) if opened is not None else None


def earliest_day(wh, table: str, conn: Connection | None = None) -> date | None:
    return _day(wh, sa.func.min(versioned(table).versions.c.valid_from), conn)


def _day(wh, expr, conn) -> date | None:
    value = wh.query(sa.select(expr.label("day")), conn=conn)["day"].iloc[0]
    if value is None or pd.isna(value):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class Stamp:
    """Who saw a version, and for which day: the extract run's as-of day, id and write time."""

    known_on: date
    run_id: str | None
    seen_at: datetime

    @classmethod
    def of(cls, extracted_at: datetime, known_on: date | None = None, run_id: str | None = None) -> "Stamp":
        """Outside a run (no as-of day given) a version is known from its extraction's UTC day."""
        return cls(known_on if known_on is not None else _naive_utc(extracted_at).date(), run_id, extracted_at)


def record_versions(
    wh,
    table: str,
    *,
    conn: Connection,
    stamp: Stamp,
    scope: str | None = None,
    values: Sequence | None = None,
) -> int:
    """Record the versions of the current rows of `table` whose `scope` column is in `values`
    (default: the primary key; `values=None`: the whole table), in the caller's transaction.

    Rows new or changed since their open version get a new version valid from `stamp.known_on` (or
    the latest recorded day, if later: versions move forward only); the open versions they
    replace, and those of rows no longer in the table, are closed on that day. Returns the
    number of versions opened. The first versions of a table (a new warehouse, or one upgraded
    to keep versions) cover all its rows."""
    spec = versioned(table)
    t, v = spec.table, spec.versions
    scope = scope or spec.key[0]
    latest = latest_day(wh, table, conn)
    day = max(stamp.known_on, latest) if latest is not None else stamp.known_on
    if values is None or latest is None:  # the first versions cover every row (an upgrade too)
        batches: list[list | None] = [None]
    else:
        distinct = sorted({x.item() if isinstance(x, np.generic) else x for x in values})
        batches = [distinct[i:i + _CHUNK] for i in range(0, len(distinct), _CHUNK)]
    same_key = sa.and_(*(t.c[k] == v.c[k] for k in spec.key))
    current_hash = content_hash(t, spec)
    content = [c.name for c in t.columns]
    # Close the open versions whose record is gone or no longer has their content ...
    close = v.update().where(v.c.valid_to.is_(None), ~sa.exists().where(same_key, current_hash == v.c.content_hash)
                             ).values(valid_to=day)
    # ... then open one for each current row left without an open version (new or changed).
    rows = sa.select(*(t.c[c] for c in content), sa.literal(day, sa.Date), sa.literal(stamp.run_id, sa.Text),
                     sa.literal(_naive_utc(stamp.seen_at).to_pydatetime(), sa.DateTime), current_hash
                     ).where(~sa.exists().where(same_key, v.c.valid_to.is_(None)))
    opened = 0
    for batch in batches:
        conn.execute(close if batch is None else close.where(v.c[scope].in_(batch)))
        batch_rows = rows if batch is None else rows.where(t.c[scope].in_(batch))
        opened += conn.execute(v.insert().from_select(
            [*content, "valid_from", "version_run_id", "seen_at", "content_hash"], batch_rows)).rowcount
    store.note_written(conn, v.name)
    return opened


def _naive_utc(moment: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(moment)
    return ts if ts.tzinfo is None else ts.tz_convert("UTC").tz_localize(None)


# -- reading -------------------------------------------------------------------------------------
def _on(clause, source: sa.Table, target: sa.Table):
    """`clause` written against `source`'s columns, rewritten against `target`'s (same names)."""
    def swap(element):
        if isinstance(element, sa.Column) and element.table is source:
            return target.c[element.name]
        return None
    return visitors.replacement_traverse(clause, {}, swap)


def read_as_known(
    wh,
    table: str,
    as_of: date,
    *,
    columns: Sequence[str] | None = None,
    where: sa.ColumnElement | None = None,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """The rows of extract `table` as known at the end of day `as_of`, like `Warehouse.read`
    (`where` is written against the current table), ordered by the primary key.

    On or after the latest recorded day (or with no versions yet: a warehouse filled by hand)
    that is the current table. Before the first recorded day nothing can be known: refused."""
    spec = versioned(table)
    order = spec.key if columns is None or set(spec.key) <= set(columns) else None
    latest = latest_day(wh, table, conn)
    if latest is None or as_of >= latest:
        return wh.read(table, columns=columns, where=where, order_by=order, conn=conn)
    earliest = earliest_day(wh, table, conn)
    if as_of < earliest and not spec.empty_before_first:
        raise AsKnownError(f"{table}: nothing is known as of {as_of}: its first recorded version is of"
                           f" {earliest} (the extracts keep versions from then on)")
    v = spec.versions
    valid = sa.and_(v.c.valid_from <= as_of, sa.or_(v.c.valid_to.is_(None), v.c.valid_to > as_of))
    if where is not None:
        valid = sa.and_(valid, _on(where, spec.table, v))
    frame = wh.read(v.name, columns=list(columns) if columns else [c.name for c in spec.table.columns],
                    where=valid, order_by=order, conn=conn)
    return frame.reset_index(drop=True)

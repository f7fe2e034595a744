"""The warehouse: typed pandas frames in and out of PostgreSQL (COPY) or SQLite, transactionally.

Every write of an asset goes through one transaction (`Warehouse.begin()`), so a crash half-way
leaves the previous state whole. On PostgreSQL rows are bulk-loaded with COPY into a temporary
table and merged with INSERT ... ON CONFLICT; on SQLite with executemany. Reads on PostgreSQL
stream through COPY TO STDOUT as CSV, which is several times faster than row fetching.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import json
import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline import lazy, money, safe_text
from dunning_pipeline.warehouse import schema

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

# Modules that declare tables on `schema.metadata`; imported before the schema is created.
TABLE_MODULES = (
    "dunning_pipeline.warehouse.schema",
    "dunning_pipeline.warehouse.builds",
    "dunning_pipeline.quality.tables",
    "dunning_pipeline.dunning.tables",
    "dunning_pipeline.slack.tables",
    "dunning_pipeline.reporting.draft_tables",
    "dunning_pipeline.reporting.report_tables",
    "dunning_pipeline.workbench.tables",
    "dunning_pipeline.warehouse.as_known",  # the extracts' version tables
)

_NULL = "\\N"
WRITE_CHUNK_ROWS = 100_000  # rows formatted and copied at a time (see Warehouse._write)
# pg_advisory_xact_lock key that serialises schema creation and migrations (any fixed bigint).
SCHEMA_LOCK_KEY = 0x64756E6E696E67  # "dunning"


class WarehouseError(RuntimeError):
    """A frame that does not fit its table, or a database that cannot be reached."""


def load_table_modules() -> sa.MetaData:
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return schema.metadata


def _kind(col: sa.Column) -> str:
    t = col.type
    if isinstance(t, schema.Money):
        return "money"
    if isinstance(t, sa.DateTime):
        return "datetime"
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, (sa.BigInteger, sa.Integer, sa.SmallInteger)):
        return "int"
    if isinstance(t, (sa.Float, sa.Numeric)):
        return "float"
    if isinstance(t, sa.JSON):
        return "json"
    return "text"


class Warehouse:
    """Tables of the pipeline in one SQL database, addressed by a SQLAlchemy URL."""

    def __init__(self, url: str, *, echo: bool = False):
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; COPY here goes through psycopg2.
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
        self.url = url
        self.engine = sa.create_engine(url, echo=echo)
        if self.dialect == "sqlite":
            self._configure_sqlite()
        self.metadata = load_table_modules()

    # -- connection ---------------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _configure_sqlite(self) -> None:
        @sa.event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL lets the UI read while a run writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # The versions' content hash is computed in SQL (as_known.content_hash), as PostgreSQL does.
            dbapi_conn.create_function("md5", 1, _md5, deterministic=True)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        written: list[str] = []
        with self.engine.begin() as conn:
            conn.info[_WRITTEN] = written  # the tables this transaction writes (kill points)
            try:
                yield conn
            finally:
                conn.info.pop(_WRITTEN, None)
        for table in written:
            _kill_point(table, "after")

    @contextmanager
    def writer_lock(self, name: str, on_wait=None) -> Iterator[None]:
        """Hold the lock of one writing step (`name`, e.g. an asset) for the whole block, so two
        runs of the same step, however started, run it one after the other, never interleaved.

        PostgreSQL: a session advisory lock on a connection of its own (outside any transaction,
        so none stays open while the step computes); a killed process loses its session and with
        it the lock. `on_wait()` is called when another session holds it. SQLite: its own file
        lock serialises the write transactions; there is only one writer per file anyway."""
        if self.dialect != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.blake2b(f"dunning_pipeline:{name}".encode(), digest_size=8).digest(),
                             "big", signed=True)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
                if on_wait is not None:
                    on_wait()
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.begin() as own:
                yield own

    def table(self, name: str) -> sa.Table:
        try:
            return self.metadata.tables[name]
        except KeyError:
            raise WarehouseError(f"unknown warehouse table {name!r}") from None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------
    def ensure_schema(self) -> list[str]:
        """Create missing tables and add missing columns (additive migrations, via Alembic's
        schema comparison). Returns a description of what changed."""
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        changes: list[str] = []
        with self.begin() as conn:
            if self.dialect == "postgresql":
                # Two first runs at once would race on CREATE TABLE (a raw IntegrityError on
                # pg_type): the second waits here for the first's commit, then finds the tables.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            existing = set(sa.inspect(conn).get_table_names())
            self.metadata.create_all(conn)
            changes += [f"created table {t}" for t in self.metadata.tables if t not in existing]
            ctx = MigrationContext.configure(conn)
            ops = Operations(ctx)
            for diff in compare_metadata(ctx, self.metadata):
                if isinstance(diff, tuple) and diff and diff[0] == "add_column":
                    _, _schema, table_name, column = diff
                    ops.add_column(table_name, column.copy())
                    changes.append(f"added column {table_name}.{column.name}")
                elif isinstance(diff, list):  # column changes: comments follow the code, and so
                    # does a NOT NULL the code dropped (widening); nothing else is ever altered.
                    for op, _schema, table_name, name, existing, old, new in diff:
                        if op == "modify_comment":
                            ops.alter_column(table_name, name, comment=new, existing_type=existing["existing_type"],
                                             existing_nullable=existing["existing_nullable"])
                            changes.append(f"described column {table_name}.{name}")
                        elif op == "modify_nullable" and old is False and new is True:
                            # SQLite cannot drop a NOT NULL in place: Alembic's batch mode copies
                            # the table, as reflected (every column and index it has), into one
                            # without it (PostgreSQL: ALTER COLUMN ... DROP NOT NULL).
                            with ops.batch_alter_table(table_name) as b:
                                b.alter_column(name, existing_type=existing["existing_type"], nullable=True)
                            changes.append(f"column {table_name}.{name} may be null")
            for hook in _SCHEMA_HOOKS:
                hook(self, conn)
        return changes

    # -- writing ------------------------------------------------------------------------------
    def upsert(self, table: str, frame: pd.DataFrame, *, conn: Connection | None = None) -> int:
        """Insert rows, replacing rows with the same primary key. Returns the row count."""
        return self._write(table, frame, conn=conn, mode="upsert")

    def append(self, table: str, frame: pd.DataFrame, *, conn: Connection | None = None) -> int:
        return self._write(table, frame, conn=conn, mode="append")

    def replace(
        self,
        table: str,
        frame: pd.DataFrame,
        *,
        where: sa.ColumnElement | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Delete all rows (or those matching `where`) and insert `frame`, in one transaction."""
        t = self.table(table)
        with self._conn(conn) as c:
            if where is None and self.dialect == "postgresql":
                # Transactional in PostgreSQL, and far cheaper than deleting a million rows.
                c.execute(sa.text(f'TRUNCATE "{t.name}"'))
            else:
                c.execute(t.delete() if where is None else t.delete().where(where))
            return self._write(table, frame, conn=c, mode="append")

    def delete(self, table: str, where: sa.ColumnElement, *, conn: Connection | None = None) -> int:
        t = self.table(table)
        with self._conn(conn) as c:
            return c.execute(t.delete().where(where)).rowcount

    def _write(self, table: str, frame: pd.DataFrame, *, conn: Connection | None, mode: str) -> int:
        t = self.table(table)
        unknown = [c for c in frame.columns if c not in t.c]
        if unknown:
            raise WarehouseError(f"table {table}: unknown column(s) {unknown}")
        missing = [c.name for c in t.columns if not c.nullable and c.name not in frame.columns
                   and not (c.primary_key and c.autoincrement is True)
                   and c.server_default is None and c.default is None]
        if missing:
            raise WarehouseError(f"table {table}: required column(s) {missing} are missing")
        if frame.empty:
            if conn is not None:  # e.g. the rows a replace deleted: a write of the transaction
                _kill_point(table, "mid-write")
                note_written(conn, table)
            return 0
        cols = [c for c in t.columns if c.name in frame.columns]
        # Formatted and sent a chunk at a time: the write holds one chunk's text and CSV, not a
        # copy of the whole frame (at 1M rows, gigabytes). A bad value in a later chunk still
        # fails the whole write: the chunks are one transaction.
        chunks = (_to_text_frame(frame.iloc[start:start + WRITE_CHUNK_ROWS], cols, table)
                  for start in range(0, len(frame), WRITE_CHUNK_ROWS))
        with self._conn(conn) as c:
            _kill_point(table, "before")
            if self.dialect == "postgresql":
                _pg_copy_write(c, t, cols, chunks, mode)
            else:
                for text in chunks:
                    _generic_write(c, t, cols, text, mode)
            _kill_point(table, "mid-write")
            note_written(c, table)
        return len(frame)

    # -- reading ------------------------------------------------------------------------------
    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: sa.ColumnElement | None = None,
        order_by: Sequence[str] | None = None,
        conn: Connection | None = None,
    ) -> pd.DataFrame:
        """Rows of a table as a typed frame (money int64 units, dates datetime64)."""
        t = self.table(table)
        cols = [t.c[c] for c in columns] if columns else list(t.columns)
        exprs = [
            sa.cast(sa.func.round(c * money.SCALE), sa.BigInteger).label(c.name)
            if _kind(c) == "money" else c
            for c in cols
        ]
        stmt = sa.select(*exprs)
        if where is not None:
            stmt = stmt.where(where)
        if order_by:
            stmt = stmt.order_by(*[t.c[c] for c in order_by])
        with self._conn(conn) as c:
            if self.dialect == "postgresql":
                raw = _pg_copy_read(c, stmt, cols)
            else:
                raw = _generic_read(c, stmt, cols)
        return _typed(raw, cols)

    def query(self, stmt, params: dict | None = None, *, conn: Connection | None = None) -> pd.DataFrame:
        """An arbitrary SELECT (text or Core) as an untyped frame."""
        if isinstance(stmt, str):
            stmt = sa.text(stmt)
        with self._conn(conn) as c:
            result = c.execute(stmt, params or {})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def count(self, table: str, *, where: sa.ColumnElement | None = None,
              conn: Connection | None = None) -> int:
        t = self.table(table)
        stmt = sa.select(sa.func.count()).select_from(t)
        if where is not None:
            stmt = stmt.where(where)
        with self._conn(conn) as c:
            return int(c.execute(stmt).scalar_one())

    # -- extraction state (high-water marks, cursors) ------------------------------------------
    def get_state(self, key: str, *, conn: Connection | None = None) -> str | None:
        t = schema.extract_state
        with self._conn(conn) as c:
            return c.execute(sa.select(t.c.value).where(t.c.key == key)).scalar_one_or_none()

    def set_state(self, key: str, value: str, *, conn: Connection | None = None) -> None:
        frame = pd.DataFrame(
            {"key": [key], "value": [value], "updated_at": [datetime.now(UTC).replace(tzinfo=None)]}
        )
        self.upsert("extract_state", frame, conn=conn)


def _md5(text: str | None) -> str | None:
    return None if text is None else hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()


# Functions run at the end of ensure_schema (e.g. the history table's append-only trigger).
_SCHEMA_HOOKS: list = []


def on_schema(hook):
    """Register `hook(warehouse, conn)` to run after tables are created (e.g. triggers)."""
    _SCHEMA_HOOKS.append(hook)
    return hook


# -- crash tests -------------------------------------------------------------------------------
_WRITTEN = "dunning_tables_written"
KILL_AT_VAR = "DUNNING_TEST_KILL_AT"


def note_written(conn: Connection, table: str) -> None:
    """Count `table` as written by this transaction (its `after` kill point), for writes made in
    SQL rather than through `Warehouse` (e.g. an INSERT ... SELECT)."""
    written = conn.info.get(_WRITTEN)
    if written is not None and table not in written:
        written.append(table)


def _kill_point(table: str, moment: str) -> None:
    """TEST ONLY: `DUNNING_TEST_KILL_AT=<table>:<before|mid-write|after>` kills this process with
    SIGKILL when a write of `table` starts, when its rows are in but not committed, or after
    the transaction that wrote it committed (the crash-consistency tests); a write of no rows in
    a transaction (a replace that only deleted) counts. Unset in production."""
    if os.environ.get(KILL_AT_VAR) == f"{table}:{moment}":
        os.kill(os.getpid(), signal.SIGKILL)


# -- conversions -------------------------------------------------------------------------------
def _to_text_frame(frame: pd.DataFrame, cols: list[sa.Column], table: str) -> pd.DataFrame:
    """Each column as strings (None for null) in the database's literal syntax."""
    out = {}
    for col in cols:
        s = frame[col.name]
        kind = _kind(col)
        mask = s.isna().to_numpy()
        if mask.any() and not col.nullable:
            bad = frame.index[mask][0]
            raise WarehouseError(f"table {table}: column {col.name} is null in row {bad!r}")
        try:
            vals = _column_text(s, kind)
        except (TypeError, ValueError, OverflowError) as exc:
            raise WarehouseError(f"table {table}: column {col.name} cannot be stored: {exc}") from exc
        vals = pd.Series(vals, index=frame.index).astype(object)
        vals[mask] = None
        out[col.name] = vals
    return pd.DataFrame(out, index=frame.index)


def _column_text(s: pd.Series, kind: str):
    """One column as database literals, vectorised (a million rows in well under a second).
    Nulls may come out as anything: the caller masks them."""
    if kind == "money":
        return money.units_to_text(s.fillna(0).astype("int64"))
    if kind == "datetime":
        values = pd.to_datetime(s, utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        text = np.datetime_as_string(values, unit="us")  # 2026-03-01T10:11:12.000000
        # SQL's ' ' separator instead of 'T' (SQLite compares timestamps as text), in place.
        chars = text.view(np.uint32).reshape(len(text), -1)
        chars[:, 10] = ord(" ")
        return text
    if kind == "date":
        return np.datetime_as_string(pd.to_datetime(s).to_numpy(dtype="datetime64[D]"), unit="D")
    if kind == "bool":
        return np.where(s.fillna(False).astype(bool).to_numpy(), "1", "0")
    if kind == "int":
        if pd.api.types.is_integer_dtype(s.dtype):
            return s.astype("Int64").astype(str)
        numeric = pd.to_numeric(s)
        if (numeric.dropna() % 1 != 0).any():
            raise ValueError("holds a non-integer value")
        return numeric.astype("Int64").astype(str)
    if kind == "json":
        return s.map(json.dumps, na_action="ignore")
    # A lone surrogate or a NUL would fail the COPY (and SQLite's UTF-8): stored as U+FFFD. The
    # parsers have already replaced and noted those of the source records (`safe_text`).
    return safe_text.clean_strings(s.astype(str).tolist())


def _typed(raw: pd.DataFrame, cols: list[sa.Column]) -> pd.DataFrame:
    out = {}
    for col in cols:
        s = raw[col.name]
        kind = _kind(col)
        if kind in ("money", "int"):  # money arrives as int units (the SELECT scales it)
            s = pd.to_numeric(s, dtype_backend="numpy_nullable").astype("Int64")  # exact, not via float
            out[col.name] = s.astype("int64") if not s.isna().any() else s
        elif kind == "float":
            out[col.name] = pd.to_numeric(s).astype("float64")
        elif kind == "datetime":
            out[col.name] = _to_datetime(s).astype("datetime64[us]")
        elif kind == "date":
            out[col.name] = _to_datetime(s).astype("datetime64[s]")
        elif kind == "bool":
            out[col.name] = s.map(_parse_bool).astype("boolean")
        elif kind == "json":
            out[col.name] = s.map(lambda v: json.loads(v) if isinstance(v, str) else v)
        else:  # pandas 3's default string dtype; missing is NaN
            out[col.name] = s.astype(object).where(s.notna(), None).astype("str")
    return pd.DataFrame(out, columns=[c.name for c in cols])


def _to_datetime(s: pd.Series) -> pd.Series:
    # The databases print ISO 8601; the vectorised ISO parser is many times faster than "mixed".
    try:
        return pd.to_datetime(s, format="ISO8601")
    except (ValueError, TypeError):
        return pd.to_datetime(s, format="mixed")


def _parse_bool(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return pd.NA
    if isinstance(v, str):
        return v.lower() in ("t", "true", "1")
    return bool(v)


# -- PostgreSQL: COPY in and out ---------------------------------------------------------------
def _pg_copy_write(conn: Connection, t: sa.Table, cols: list[sa.Column], chunks: Iterable[pd.DataFrame],
                   mode: str) -> None:
    names = ", ".join(f'"{c.name}"' for c in cols)
    raw = conn.connection.dbapi_connection

    def copy_into(cur, target: str) -> None:
        for text in chunks:
            buf = io.StringIO()
            text.to_csv(buf, index=False, header=False, na_rep=_NULL, quoting=csv.QUOTE_MINIMAL)
            buf.seek(0)
            cur.copy_expert(f'COPY "{target}" ({names}) FROM STDIN WITH (FORMAT csv, NULL \'{_NULL}\')', buf)

    with raw.cursor() as cur:
        if mode == "append":
            copy_into(cur, t.name)
            return
        tmp = f"_load_{t.name}"
        cur.execute(f'DROP TABLE IF EXISTS "{tmp}"')
        cur.execute(f'CREATE TEMP TABLE "{tmp}" (LIKE "{t.name}" INCLUDING DEFAULTS) ON COMMIT DROP')
        # The load order, so that of repeated keys in one batch the last row wins.
        cur.execute(f'ALTER TABLE "{tmp}" ADD COLUMN "_load_seq" BIGSERIAL')
        copy_into(cur, tmp)
        pk = [c.name for c in t.primary_key.columns]
        if not pk:
            raise WarehouseError(f"table {t.name} has no primary key to upsert on")
        updates = ", ".join(f'"{c.name}" = EXCLUDED."{c.name}"' for c in cols if c.name not in pk)
        pk_list = ", ".join(f'"{c}"' for c in pk)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        # DISTINCT ON keeps one row per key (the last loaded), so repeated keys cannot fail.
        cur.execute(
            f'INSERT INTO "{t.name}" ({names}) '
            f'SELECT DISTINCT ON ({pk_list}) {names} FROM "{tmp}" '
            f'ORDER BY {pk_list}, "_load_seq" DESC '
            f"ON CONFLICT ({pk_list}) {action}"
        )
        cur.execute(f'DROP TABLE IF EXISTS "{tmp}"')


def _pg_copy_read(conn: Connection, stmt, cols: list[sa.Column]) -> pd.DataFrame:
    names = [c.name for c in cols]
    # A text equal to the NULL marker comes out quoted, but pandas cannot tell quoted from bare:
    # each non-null text is prefixed with one character (NULL || 'x' stays NULL), stripped below.
    text_cols = [c.name for c in cols if _kind(c) == "text"]
    stmt = sa.select(*[
        (sa.literal_column("'.'") + sa.column(n, sa.Text)).label(n) if n in text_cols else sa.column(n)
        for n in names
    ]).select_from(stmt.subquery("_read"))
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    buf = io.StringIO()
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, NULL '{_NULL}')", buf)
    buf.seek(0)
    if buf.getvalue() == "":
        return pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
    # Integers (money arrives scaled to int units by the SELECT) parsed exactly by the C reader
    # as nullable Int64, never through float; everything else as text for `_typed`.
    dtypes = {c.name: ("Int64" if _kind(c) in ("money", "int") else str) for c in cols}
    frame = pd.read_csv(buf, header=None, names=names, dtype=dtypes, na_values=[_NULL],
                        keep_default_na=False)
    for n in text_cols:
        frame[n] = frame[n].str.slice(1)
    return frame


# -- SQLite and others: executemany and fetchall -----------------------------------------------------------
def _generic_read(conn: Connection, stmt, cols: list[sa.Column]) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=[c.name for c in cols], dtype=object)


def _generic_write(conn: Connection, t: sa.Table, cols: list[sa.Column], text: pd.DataFrame,
                   mode: str) -> None:
    names = [c.name for c in cols]
    rows = [tuple(r) for r in text.itertuples(index=False, name=None)]
    col_sql = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    sql = f'INSERT INTO "{t.name}" ({col_sql}) VALUES ({marks})'
    if mode == "upsert":
        pk = [c.name for c in t.primary_key.columns]
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in pk)
        pk_sql = ", ".join(f'"{n}"' for n in pk)
        sql += f" ON CONFLICT ({pk_sql}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.executemany(sql, rows)
    finally:
        cur.close()

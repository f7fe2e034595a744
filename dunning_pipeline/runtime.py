"""Small helpers shared by the asset layers: the run's as-of date, metadata builders."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from dunning_pipeline import money, settings
from dunning_pipeline.as_of import resolve_as_of
from dunning_pipeline.warehouse import builds, store


def run_as_of(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> date:
    """The as-of date of the current run (tag `dunning/as_of`, else the run's creation day)."""
    tag = context.run.tags.get(settings.AS_OF_TAG)
    created = datetime.now(UTC)
    if not tag:
        record = context.instance.get_run_record_by_id(context.run_id)
        if record is not None and record.create_timestamp is not None:
            created = record.create_timestamp.astimezone(UTC)
    return resolve_as_of(tag, created, settings.timezone())


def warehouse_type(column: sa.Column) -> str:
    """A column's type as the PostgreSQL warehouse defines it (`numeric(19,4)`, `bigint`,
    `timestamp without time zone`): compiled for PostgreSQL, in the spelling of `format_type`."""
    text = column.type.compile(dialect=_POSTGRESQL).lower().replace(", ", ",")
    return _PG_TYPE_NAMES.get(text, text)


_POSTGRESQL = postgresql.dialect()
# SQL-standard spellings that SQLAlchemy compiles to, and the name PostgreSQL stores them under.
_PG_TYPE_NAMES = {"float": "double precision"}


def column_schema(table: str | sa.Table) -> dg.TableSchema:
    """The columns of a warehouse table as the UI shows them: every column with its warehouse
    type, nullability and description, all from the table's definition (its comments are the
    columns' COMMENT ON COLUMN in PostgreSQL too)."""
    if isinstance(table, str):
        table = store.load_table_modules().tables[table]
    return dg.TableSchema(columns=[
        dg.TableColumn(name=c.name, type=warehouse_type(c), description=c.comment,
                       constraints=dg.TableColumnConstraints(nullable=bool(c.nullable)))
        for c in table.columns
    ])


def markdown_preview(frame: pd.DataFrame, rows: int = 10) -> dg.MarkdownMetadataValue:
    """The first rows as a markdown table (tabulate ships with dagster): dates without a time of
    day show as dates, missing values as empty cells (not nan / NaT / <NA>)."""
    if frame.empty:
        return dg.MetadataValue.md("_no rows_")
    head = frame.head(rows).copy()
    for col in head.columns:
        values = head[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            present = values.dropna()
            if (present == present.dt.normalize()).all():
                head[col] = values.dt.strftime("%Y-%m-%d")
    head = head.astype(object).where(head.notna(), "")
    return dg.MetadataValue.md(head.to_markdown(index=False))


def read_of_day(wh, table: str, as_of: date) -> pd.DataFrame:
    """An upstream snapshot, refused if it was built for another as-of day than this run's, or
    from inputs that were rebuilt since (a run stopped between two assets): the message names
    the table to rebuild."""
    with wh.begin() as conn:
        now = builds.current(wh, conn=conn)
        frame = wh.read(table, conn=conn)
    build = now.get(table)
    if build is not None and build.as_of != as_of:
        raise dg.Failure(f"{table} holds as-of {build.as_of}, this run's as-of is {as_of}: "
                         f"materialize {table} in this run first (it was built by run {build.run_id})")
    stale = builds.stale_inputs(build, now) if build is not None else []
    if stale:
        name, made_from, since = stale[0]
        holds = f"now holds as-of {since.as_of} of run {since.run_id}" if since else "has no build now"
        raise dg.Failure(f"{table} (as-of {as_of}) was built from {name} of run {made_from}, but {name} {holds} "
                         f"(a run stopped between the two?): rebuild {table} for {as_of} (materialize it and "
                         "what reads it) before using it")
    # Tables written before builds were recorded: the as-of day of the rows.
    if len(frame) and (pd.to_datetime(frame["as_of_date"]) != pd.Timestamp(as_of)).any():
        raise dg.Failure(f"{table} holds as-of {pd.Timestamp(frame['as_of_date'].iloc[0]).date()}, this run's "
                         f"as-of is {as_of}: materialize {table} in this run first")
    return frame


def record_build(context: dg.AssetExecutionContext, wh, conn, table: str, as_of: date,
                 inputs: tuple[str, ...] = ()) -> None:
    """In the transaction that wrote `table`: this run built it for `as_of` from `inputs`."""
    builds.record(wh, conn, table, as_of=as_of, run_id=context.run_id, inputs=inputs)


def money_display(frame: pd.DataFrame, columns: dict[str, str], rows: int = 10) -> pd.DataFrame:
    """The first rows with money columns (int64 units) formatted in their currency, for previews."""
    out = frame.head(rows).copy()
    for col, cur_col in columns.items():
        if col in out:
            out[col] = money.format_column(out[col], out[cur_col])
    return out

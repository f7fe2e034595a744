"""Small helpers shared by the asset layers: the run's as-of date, metadata builders."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from dunning_pipeline import lazy, money, settings
from dunning_pipeline.as_of import parse_as_of, resolve_as_of
from dunning_pipeline.partitions import PARTITION_TAG
from dunning_pipeline.warehouse import builds, store

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")


def run_as_of(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> date:
    """The as-of date of the current run: its partition (a day of `partitions.as_of_days`), else
    the tag `dunning/as_of` (unpartitioned jobs: the weekly alert), else the run's creation day.
    A partition and a tag that name different days fail the run, and so does a day-partitioned
    asset in a run without a partition: Dagster cannot record it (nor its downstream) for a day."""
    tag = context.run.tags.get(settings.AS_OF_TAG)
    key = _partition_day(context)
    if key is not None:
        day = parse_as_of(key)
        if tag and parse_as_of(tag) != day:
            raise dg.Failure(f"run {context.run_id} is for partition {key} but its tag {settings.AS_OF_TAG} "
                             f"says {tag}: launch it with one of the two, or with the same day in both")
        return day
    if _is_day_partitioned(context):
        day = tag or "YYYY-MM-DD"
        raise dg.Failure(
            f"{context.op.name} is partitioned by as-of day and this run has no partition: launch it for one day "
            f"(the UI's partition picker, `dagster asset materialize --partition {day}`, or "
            f"`dagster job execute ... --tags '{{\"{PARTITION_TAG}\": \"{day}\"}}'`)")
    created = datetime.now(UTC)
    if not tag:
        record = context.instance.get_run_record_by_id(context.run_id)
        if record is not None and record.create_timestamp is not None:
            created = record.create_timestamp.astimezone(UTC)
    return resolve_as_of(tag, created, settings.timezone())


def _is_day_partitioned(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> bool:
    return context.has_assets_def and context.assets_def.partitions_def is not None


def _partition_day(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> str | None:
    """The run's partition key, or None for an unpartitioned run. A run over a range of days
    (a single-run backfill) is refused: each day needs its own run, in date order."""
    if context.has_partition_key:
        return context.partition_key
    if context.has_partition_key_range:
        days = context.partition_key_range
        if days.start != days.end:
            raise dg.Failure(f"run {context.run_id} covers the days {days.start} to {days.end}: the dunning "
                             "assets compute one as-of day per run (backfill them one partition per run)")
        return days.start
    return None


def serialized_step(fn):
    """Under `@dg.asset`: the step holds its warehouse writer lock (`Warehouse.writer_lock`) from
    its first read to its last write, so two runs of it never interleave, whoever launched them
    and whatever the run queue allowed. The asset must take the `warehouse` resource."""
    @functools.wraps(fn)
    def step(context, *args, **kwargs):
        def waiting():
            context.log.info(f"{fn.__name__}: another run holds its warehouse lock; waiting for it to finish")
        try:
            with kwargs["warehouse"].get_warehouse().writer_lock(fn.__name__, on_wait=waiting):
                return fn(context, *args, **kwargs)
        except Exception as exc:
            record_retry_verdict(context, exc)
            raise
    step.holds_writer_lock = True  # what the definitions test looks for on every writing asset
    return step


# The run tag the run-retry daemon reads when a run failed in a step (it overrides dagster.yaml's
# `run_retries: retry_on_asset_or_op_failure`); a retried run inherits its parent's tags.
RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"


def is_transient(exc: BaseException) -> bool:
    """A source that stayed down, overloaded or unreachable through all of its client's retries:
    a later run may succeed. A refused key, a bad record or a bug fails the same way again."""
    from dunning_pipeline.odoo.client import OdooUnavailableError
    from dunning_pipeline.zendesk.client import ZendeskRetriesExhaustedError, ZendeskUnreachableError

    return isinstance(exc, OdooUnavailableError | ZendeskUnreachableError | ZendeskRetriesExhaustedError)


def record_retry_verdict(context: dg.AssetExecutionContext, exc: BaseException) -> None:
    """Before a step fails: tell the run-retry daemon whether retrying the run can help, so a
    transient fault is retried (from failure) and a wrong key is not (see dagster.yaml)."""
    verdict = "true" if is_transient(exc) else "false"
    context.instance.add_run_tags(context.run_id, {RETRY_ON_STEP_FAILURE_TAG: verdict})
    if verdict == "true":
        context.log.warning(f"{type(exc).__name__} is transient: the run-retry daemon retries this run from its failure")


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


def read_of_day(wh, table: str, as_of: date, *, columns: list[str] | None = None,
                where: sa.ColumnElement | None = None) -> pd.DataFrame:
    """An upstream snapshot (its `columns`, the rows matching `where`; default all), refused if
    it was never built (no build recorded and no rows: a step would otherwise compute on
    nothing), if it was built for another as-of day than this run's, or from inputs that were
    rebuilt since (a run stopped between two assets): the message names the table to
    materialize. A table built empty (no open invoices that day) is read."""
    if columns is not None and "as_of_date" in wh.table(table).c and "as_of_date" not in columns:
        columns = [*columns, "as_of_date"]  # for the check of tables written before builds were recorded
    with wh.begin() as conn:
        now = builds.current(wh, conn=conn)
        frame = wh.read(table, columns=columns, where=where, conn=conn)
        build = now.get(table)
        unbuilt = build is None and frame.empty and (
            where is None or conn.execute(sa.select(sa.literal(1)).select_from(wh.table(table)).limit(1)).first() is None)
    if unbuilt:  # never built: an empty table here is no answer, not "nothing"
        raise dg.Failure(f"{table} was never built in this warehouse (no build recorded, no rows): materialize "
                         f"{table} for {as_of} first (or run the whole nightly job for that day)")
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
    if len(frame) and "as_of_date" in frame and (pd.to_datetime(frame["as_of_date"]) != pd.Timestamp(as_of)).any():
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

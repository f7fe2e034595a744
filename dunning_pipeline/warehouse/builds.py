"""Which run built each day-dependent table, for which as-of day, and from which builds of the
tables it read.

A table and its row in `warehouse_builds` are written in one transaction, so whatever a crash
interrupts, the row says what the table holds. After a crash between two assets (receivables
rebuilt, invoice_aging not yet), invoice_aging's row still names the receivables build it was
made from, which is no longer the current one: `stale_inputs` finds that, and
`runtime.read_of_day` refuses such a table with the name of the table to rebuild.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline import lazy
from dunning_pipeline.warehouse.schema import metadata
from dunning_pipeline.warehouse.store import note_written

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

warehouse_builds = sa.Table(
    "warehouse_builds",
    metadata,
    sa.Column("table_name", sa.Text, primary_key=True, comment="a day-dependent table of the warehouse"),
    sa.Column("as_of_date", sa.Date, nullable=False,
              comment="business day the table holds (dunning_history: the last day it recorded)"),
    sa.Column("run_id", sa.Text, nullable=False, comment="Dagster run that built it"),
    sa.Column("inputs", sa.Text, nullable=False,
              comment="JSON {table read: run_id of its build then}: the builds this one was made from"),
    sa.Column("built_at", sa.DateTime, nullable=False, comment="UTC, when the build was written"),
)


@dataclass(frozen=True)
class Build:
    table: str
    as_of: date
    run_id: str
    inputs: dict[str, str] = field(default_factory=dict)


def current(wh, *, conn: Connection | None = None) -> dict[str, Build]:
    """The build each table holds now, by table name."""
    rows = wh.read("warehouse_builds", conn=conn)
    return {r.table_name: Build(r.table_name, pd.Timestamp(r.as_of_date).date(), r.run_id, json.loads(r.inputs))
            for r in rows.itertuples(index=False)}


def record(wh, conn: Connection, table: str, *, as_of: date, run_id: str, inputs: Iterable[str] = ()) -> Build:
    """Record, in the transaction `conn` that wrote `table`, that `run_id` built it for `as_of`
    from the current builds of `inputs` (the day-dependent tables it read)."""
    note_written(conn, table)  # a table built in SQL gets its kill point too (crash tests)
    now = current(wh, conn=conn)
    build = Build(table, as_of, run_id, {name: now[name].run_id for name in inputs if name in now})
    wh.upsert("warehouse_builds", pd.DataFrame({
        "table_name": [table], "as_of_date": [pd.Timestamp(as_of)], "run_id": [run_id],
        "inputs": [json.dumps(build.inputs, sort_keys=True)],
        "built_at": [pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))],
    }), conn=conn)
    return build


def stale_inputs(build: Build, now: dict[str, Build]) -> list[tuple[str, str, Build | None]]:
    """The inputs rebuilt (or gone) since `build` was made from them: (input, the run it was made
    from, the input's build now)."""
    return [(name, run_id, now.get(name)) for name, run_id in sorted(build.inputs.items())
            if name not in now or now[name].run_id != run_id]

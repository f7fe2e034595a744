"""Read a raw table for the checks, surviving stored values that are not dates.

The warehouse types every column on read; a Date / DateTime column holding text that is not a
date (possible only in SQLite, whose columns accept any text) would make that read fail for the
whole table. Then the table is read again with those columns as text, the values that do not
parse are set aside in helper columns (`suites.unparsed_column`) for the `dates_parse` rule to
name, and the rest is checked as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from dunning_pipeline import lazy
from dunning_pipeline.quality.suites import unparsed_column
from dunning_pipeline.warehouse.store import Warehouse

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")


def read_table(warehouse: Warehouse, asset: str, columns: Sequence[str] | None = None
               ) -> tuple[pd.DataFrame, frozenset[str]]:
    """The table (all columns, or `columns`), typed; and the temporal columns that held values
    that are not dates."""
    try:
        return warehouse.read(asset, columns=columns), frozenset()
    except (ValueError, OverflowError):
        frame, unparsed = _read_with_text_dates(warehouse, asset)
    if columns is not None:
        keep = list(columns) + [unparsed_column(c) for c in sorted(unparsed) if c in columns]
        return frame[keep], frozenset(c for c in unparsed if c in columns)
    return frame, unparsed


def reference_ids(warehouse: Warehouse, assets: Iterable[str]) -> dict[str, pd.Series]:
    """The ids of the tables the reference rules look into."""
    return {a: warehouse.read(a, columns=["id"])["id"] for a in dict.fromkeys(assets)}


def _read_with_text_dates(warehouse: Warehouse, asset: str) -> tuple[pd.DataFrame, frozenset[str]]:
    table = warehouse.table(asset)
    temporal = [c for c in table.columns if isinstance(c.type, (sa.Date, sa.DateTime))]
    others = [c.name for c in table.columns if c not in temporal]
    pk = [c.name for c in table.primary_key.columns]
    with warehouse.begin() as conn:  # one snapshot for both reads, aligned by primary key
        frame = warehouse.read(asset, columns=others, order_by=pk, conn=conn)
        stmt = sa.select(*[sa.cast(c, sa.Text).label(c.name) for c in temporal]).order_by(
            *[table.c[k] for k in pk])
        text = warehouse.query(stmt, conn=conn)
    unparsed = set()
    for col in temporal:
        raw = text[col.name].astype(object).where(text[col.name].notna(), None)
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        bad = raw.notna() & parsed.isna()
        unit = "us" if isinstance(col.type, sa.DateTime) else "s"
        frame[col.name] = parsed.astype(f"datetime64[{unit}]").to_numpy()
        if bad.any():
            unparsed.add(col.name)
            frame[unparsed_column(col.name)] = raw.where(bad, None).to_numpy()
    order = [c.name for c in table.columns] + [unparsed_column(c) for c in sorted(unparsed)]
    return frame[order], frozenset(unparsed)

"""Seconds to read a 1M-row invoice_aging table from PostgreSQL: the driver path (fetchall +
typing) against `Warehouse.read` (COPY TO STDOUT, typed CSV parse).

    python -m benchmarks.warehouse_read --rows 1000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa

from benchmarks.run import scratch_database
from dunning_pipeline.warehouse import store
from dunning_pipeline.warehouse.store import Warehouse


def _frame(t: sa.Table, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    out = {}
    for c in t.columns:
        kind = store._kind(c)
        if kind in ("int", "money"):
            out[c.name] = np.arange(n) if c.primary_key else rng.integers(-10**9, 10**9, n)
        elif kind == "float":
            out[c.name] = rng.random(n)
        elif kind == "datetime":
            out[c.name] = pd.Timestamp("2026-03-01 10:11:12") + pd.to_timedelta(rng.integers(0, 10**7, n), "s")
        elif kind == "date":
            out[c.name] = pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.integers(0, 900, n), "D")
        elif kind == "bool":
            out[c.name] = rng.random(n) < 0.5
        else:
            out[c.name] = pd.Series(rng.integers(0, 5000, n)).map(lambda v: f"Customer {v}, Ltd")
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--table", default="invoice_aging")
    args = ap.parse_args()
    with scratch_database("bench_read") as url:
        wh = Warehouse(url.render_as_string(hide_password=False))
        try:
            wh.ensure_schema()
            t = wh.table(args.table)
            wh.append(args.table, _frame(t, args.rows))
            cols = list(t.columns)
            stmt = sa.select(*[
                sa.cast(sa.func.round(c * store.money.SCALE), sa.BigInteger).label(c.name)
                if store._kind(c) == "money" else c for c in cols
            ])
            t0 = time.perf_counter()
            with wh.begin() as conn:
                old = store._typed(store._generic_read(conn, stmt, cols), cols)
            t1 = time.perf_counter()
            new = wh.read(args.table)
            t2 = time.perf_counter()
            pd.testing.assert_frame_equal(old.sort_values(t.primary_key.columns[0].name, ignore_index=True),
                                          new.sort_values(t.primary_key.columns[0].name, ignore_index=True))
            print(f"{args.table}: {args.rows} rows x {len(cols)} columns")
            print(f"driver fetchall + typing: {t1 - t0:.1f} s")
            print(f"Warehouse.read (COPY):    {t2 - t1:.1f} s (frames equal)")
        finally:
            wh.dispose()


if __name__ == "__main__":
    main()

"""Seconds and peak memory of recording the point-in-time versions of `odoo_invoices` on
PostgreSQL (`warehouse/as_known.py: record_versions`): the first versions of every row, then a
next day with 1% of the rows changed.

    python -m benchmarks.versions --rows 1000000

`--code DIR` imports `dunning_pipeline` from another checkout instead (e.g. a `git worktree` of
an older commit), so two implementations are measured by the same script on the same data.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, date, datetime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--code", help="a checkout whose dunning_pipeline is measured instead of this one")
    args = ap.parse_args()
    if args.code:
        sys.path.insert(0, args.code)
    from benchmarks.run import scratch_database
    from benchmarks.warehouse_read import _frame
    from dunning_pipeline.warehouse import as_known
    from dunning_pipeline.warehouse.store import Warehouse

    with scratch_database("bench_versions") as url:
        wh = Warehouse(url.render_as_string(hide_password=False))
        try:
            wh.ensure_schema()
            frame = _frame(wh.table("odoo_invoices"), args.rows)
            wh.upsert("odoo_invoices", frame)
            print(f"dunning_pipeline from {as_known.__file__}; {args.rows} invoices")
            changed = frame.sample(frac=0.01, random_state=1)
            for night, day, values in ((1, date(2026, 3, 2), frame["id"]), (2, date(2026, 3, 3), changed["id"])):
                if night == 2:
                    wh.upsert("odoo_invoices", changed.assign(ref="changed"))
                t0 = time.perf_counter()
                with wh.begin() as conn:
                    opened = as_known.record_versions(wh, "odoo_invoices", conn=conn, values=values,
                                                      stamp=as_known.Stamp(day, "bench", datetime.now(UTC)))
                print(f"night {night}: {opened} versions opened in {time.perf_counter() - t0:.2f} s")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS of this process: {peak:.0f} MB (the frame it generated included)")
        finally:
            wh.dispose()


if __name__ == "__main__":
    main()

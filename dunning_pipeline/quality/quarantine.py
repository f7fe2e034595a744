"""The quarantine: records the checks hold back from dunning, per asset, replaced on every run.

Each run of an asset's checks replaces that asset's rows in one transaction, so a record fixed
in the source (or a rule relaxed) returns the next night, and a crash half-way leaves the
previous quarantine whole. The dunning engine leaves out `quarantined_ids(warehouse, asset)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from dunning_pipeline import lazy
from dunning_pipeline.quality.tables import data_quality_quarantine as table
from dunning_pipeline.warehouse import as_known
from dunning_pipeline.warehouse.store import Warehouse

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

TABLE = table.name


def replace_quarantine(warehouse: Warehouse, asset: str, rows: pd.DataFrame, *, run_id: str,
                       as_of: date, quarantined_at: datetime,
                       checks: Sequence[str] | None = None, other_than: Sequence[str] = ()) -> int:
    """Replace `asset`'s quarantine with `rows` (record_id, check_name, field, value, reason), in
    one transaction: the rows of the checks named in `checks`, or (default) of every check of the
    asset except those in `other_than` (which another check op owns). Returns the rows written."""
    names = set(rows["check_name"])
    outside = sorted(n for n in names if (checks is not None and n not in checks) or n in other_than)
    if outside:
        raise ValueError(f"quarantine rows of {asset} for checks outside this replacement: {outside}")
    frame = pd.DataFrame({
        "asset": asset,
        "record_id": rows["record_id"].astype("int64").to_numpy(),
        "check_name": rows["check_name"].to_numpy(dtype=object),
        "field": rows["field"].to_numpy(dtype=object),
        "value": rows["value"].astype(object).where(rows["value"].notna(), None).to_numpy(),
        "reason": rows["reason"].to_numpy(dtype=object),
        "run_id": run_id,
        "quarantined_at": _naive_utc(quarantined_at),
        "as_of_date": pd.Timestamp(as_of),
    }, index=pd.RangeIndex(len(rows)))
    where = table.c.asset == asset
    if checks is not None:
        where = where & table.c.check_name.in_(list(checks))
    elif other_than:
        where = where & table.c.check_name.not_in(list(other_than))
    with warehouse.begin() as conn:
        written = warehouse.replace(TABLE, frame, where=where, conn=conn)
        # The asset's quarantine as known on the day, for replays (warehouse/as_known.py).
        as_known.record_versions(warehouse, TABLE, conn=conn, stamp=as_known.Stamp(as_of, run_id, quarantined_at),
                                 scope="asset", values=[asset])
    return written


def _naive_utc(moment: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(moment)
    return ts if ts.tzinfo is None else ts.tz_convert("UTC").tz_localize(None)


def read_quarantine(warehouse: Warehouse, asset: str | None = None) -> pd.DataFrame:
    """The quarantined records (of one asset, or all), by asset, check and record id."""
    where = None if asset is None else table.c.asset == asset
    return warehouse.read(TABLE, where=where, order_by=["asset", "check_name", "record_id"])


def quarantined_ids(warehouse: Warehouse, asset: str) -> set[int]:
    """Ids of `asset`'s records currently in quarantine (to leave out of dunning)."""
    ids = warehouse.read(TABLE, columns=["record_id"], where=table.c.asset == asset)["record_id"]
    return set(ids.astype("int64").tolist())

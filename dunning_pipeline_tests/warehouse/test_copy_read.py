"""PostgreSQL reads through COPY give exactly the frame the row-by-row driver path gives."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from dunning_pipeline.warehouse import schema
from dunning_pipeline.warehouse import store
from dunning_pipeline.warehouse.store import Warehouse

_md = sa.MetaData()
_every_type = sa.Table(
    "every_type", _md,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.BigInteger),
    sa.Column("amount", schema.Money),
    sa.Column("day", sa.Date),
    sa.Column("at", sa.DateTime),
    sa.Column("flag", sa.Boolean),
    sa.Column("label", sa.Text),
    sa.Column("ratio", sa.Float),
)

_AWKWARD = ['comma, "quote"', "new\nline\r\n", "tab\there", "back\\slash \\N", "ünïcødé €", "", "\\N", None]


def _rows() -> list[dict]:
    amounts = [Decimal("0.0001"), Decimal("-1234.5678"), Decimal("922337203685477.5807"),
               # int64 units bound the range (numeric(19,4) itself goes further)
               Decimal("-922337203685477.5808"), Decimal("12.3"), None, Decimal("0"), Decimal("1")]
    rows = []
    for i, text in enumerate(_AWKWARD):
        rows.append({
            "id": i, "count": None if i == 2 else (-(2**62) if i == 3 else i * 1000),
            "amount": amounts[i],
            "day": None if i == 1 else pd.Timestamp("2026-02-28").date(),
            "at": None if i == 4 else pd.Timestamp("2026-03-01 10:11:12.123456") + pd.Timedelta(hours=i),
            "flag": None if i == 5 else bool(i % 2),
            "label": text,
            "ratio": None if i == 0 else i / 3,
        })
    return rows


def test_copy_read_equals_the_driver_path_for_every_column_type(pg_database):
    wh = Warehouse(pg_database)
    wh.metadata = _md
    try:
        with wh.begin() as conn:
            _md.create_all(conn)
            conn.execute(_every_type.insert(), _rows())
        cols = list(_every_type.columns)
        stmt = sa.select(*[
            sa.cast(sa.func.round(c * store.money.SCALE), sa.BigInteger).label(c.name)
            if store._kind(c) == "money" else c for c in cols
        ]).order_by(_every_type.c.id)
        with wh.begin() as conn:
            driver = store._typed(store._generic_read(conn, stmt, cols), cols)
        got = wh.read("every_type", order_by=["id"])
        pd.testing.assert_frame_equal(got, driver)
        # Money exact to the last unit near the numeric(19,4) limit, never through float.
        assert got["amount"].dtype == "Int64"
        assert int(got.loc[2, "amount"]) == 2**63 - 1 and int(got.loc[3, "amount"]) == -(2**63)
        assert int(got.loc[1, "amount"]) == -12_345_678
        assert int(got.loc[3, "count"]) == -(2**62)
        assert got.loc[6, "label"] == "\\N" and pd.isna(got.loc[7, "label"])
        assert got.loc[5, "label"] == ""
        assert got.loc[3, "label"] == "back\\slash \\N" and got.loc[1, "label"] == "new\nline\r\n"
        sub = wh.read("every_type", columns=["amount", "label"], where=_every_type.c.id == 1)
        assert list(sub.columns) == ["amount", "label"] and int(sub.loc[0, "amount"]) == -12_345_678
    finally:
        wh.dispose()

"""Point-in-time extracts on SQLite and PostgreSQL: versions recorded when content changes, read
back as known on a day, moving forward only; holds counted from their effective date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dunning_pipeline.dunning.holds import manual_holds
from dunning_pipeline.warehouse import as_known
from dunning_pipeline.warehouse.as_known import AsKnownError, Stamp, read_as_known, record_versions

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)


def _invoice(id_: int, residual: int, state: str = "posted", extracted: str = "2026-03-02 23:10") -> dict:
    return {"id": id_, "name": f"INV/{id_}", "move_type": "out_invoice", "state": state,
            "payment_state": "not_paid", "amount_residual": residual, "currency": "EUR",
            "write_date": pd.Timestamp("2026-03-02 10:00"), "extracted_at": pd.Timestamp(extracted)}


def _night(wh, rows: list[dict], day: date, run: str) -> int:
    frame = pd.DataFrame(rows)
    with wh.begin() as conn:
        wh.upsert("odoo_invoices", frame, conn=conn)
        return record_versions(wh, "odoo_invoices", conn=conn, values=frame["id"],
                               stamp=Stamp(day, run, datetime(2026, 3, 2, 23, tzinfo=UTC)))


def _known(wh, day: date) -> dict[int, int]:
    frame = read_as_known(wh, "odoo_invoices", day, columns=["id", "amount_residual"])
    return dict(zip(frame["id"].tolist(), frame["amount_residual"].tolist()))


def test_each_day_reads_the_versions_known_then(warehouse):
    assert _night(warehouse, [_invoice(1, 100), _invoice(2, 200)], D1, "r1") == 2
    # Re-sent unchanged (only extracted_at differs): no new version; 2 partly paid; 3 new.
    assert _night(warehouse, [_invoice(1, 100, extracted="2026-03-03 23:10"), _invoice(2, 50),
                              _invoice(3, 300)], D2, "r2") == 2
    assert _night(warehouse, [_invoice(1, 0, state="cancel")], D3, "r3") == 1

    assert _known(warehouse, D1) == {1: 100, 2: 200}
    assert _known(warehouse, D2) == {1: 100, 2: 50, 3: 300}
    assert _known(warehouse, D3) == {1: 0, 2: 50, 3: 300}
    # `where` written against the current table applies to the versions alike.
    t = warehouse.table("odoo_invoices")
    posted = read_as_known(warehouse, "odoo_invoices", D2, columns=["id"], where=t.c.state == "posted")
    assert posted["id"].tolist() == [1, 2, 3]
    versions = warehouse.read("odoo_invoices_versions", order_by=["version_id"])
    assert versions[["id", "version_run_id"]].values.tolist() == [[1, "r1"], [2, "r1"], [2, "r2"], [3, "r2"],
                                                                 [1, "r3"]]
    closed = versions[versions["valid_to"].notna()]
    assert closed[["id", "valid_to"]].values.tolist() == [[1, pd.Timestamp(D3)], [2, pd.Timestamp(D2)]]
    with pytest.raises(AsKnownError, match=r"odoo_invoices: nothing is known as of 2026-03-01.*2026-03-02"):
        read_as_known(warehouse, "odoo_invoices", date(2026, 3, 1))


def test_versions_move_forward_only_and_the_last_run_of_a_day_wins(warehouse):
    _night(warehouse, [_invoice(1, 100)], D2, "r1")
    # A run for an earlier day (a replay that re-extracts) records what it sees as known from D2.
    _night(warehouse, [_invoice(1, 70)], D1, "replay")
    _night(warehouse, [_invoice(1, 60)], D2, "again")
    versions = warehouse.read("odoo_invoices_versions", order_by=["version_id"])
    assert versions["valid_from"].tolist() == [pd.Timestamp(D2)] * 3
    assert _known(warehouse, D2) == {1: 60}
    assert _known(warehouse, D3) == {1: 60}


def test_the_first_versions_cover_rows_written_before_versions_existed(warehouse):
    warehouse.upsert("odoo_invoices", pd.DataFrame([_invoice(1, 100), _invoice(2, 200)]))  # an older warehouse
    assert _night(warehouse, [_invoice(2, 150)], D2, "r1") == 2
    assert _night(warehouse, [_invoice(2, 120)], D3, "r2") == 1
    assert _known(warehouse, D2) == {1: 100, 2: 150}


def test_rows_gone_from_the_table_close_their_version(warehouse):
    lines = pd.DataFrame({"id": [11, 12], "move_id": [1, 1], "amount_residual": [60, 40]})
    stamp = Stamp(D1, "r1", datetime(2026, 3, 2, 23, tzinfo=UTC))
    with warehouse.begin() as conn:
        warehouse.upsert("odoo_receivable_lines", lines, conn=conn)
        record_versions(warehouse, "odoo_receivable_lines", conn=conn, stamp=stamp, scope="move_id", values=[1])
    t = warehouse.table("odoo_receivable_lines")
    with warehouse.begin() as conn:  # the move's lines replaced: one left
        warehouse.delete("odoo_receivable_lines", t.c.move_id == 1, conn=conn)
        warehouse.upsert("odoo_receivable_lines", lines.iloc[:1], conn=conn)
        record_versions(warehouse, "odoo_receivable_lines", conn=conn, stamp=Stamp(D2, "r2", stamp.seen_at),
                        scope="move_id", values=[1])
    assert read_as_known(warehouse, "odoo_receivable_lines", D1, columns=["id"])["id"].tolist() == [11, 12]
    assert read_as_known(warehouse, "odoo_receivable_lines", D2, columns=["id"])["id"].tolist() == [11]


def test_a_version_rolls_back_with_its_rows(warehouse):
    _night(warehouse, [_invoice(1, 100)], D1, "r1")
    with pytest.raises(RuntimeError, match="crash"):
        with warehouse.begin() as conn:
            warehouse.upsert("odoo_invoices", pd.DataFrame([_invoice(1, 5)]), conn=conn)
            record_versions(warehouse, "odoo_invoices", conn=conn, values=[1],
                            stamp=Stamp(D2, "r2", datetime(2026, 3, 3, 23, tzinfo=UTC)))
            raise RuntimeError("crash")
    assert warehouse.count("odoo_invoices_versions") == 1 and _known(warehouse, D2) == {1: 100}


@pytest.mark.parametrize("column, value", [
    ("name", "INV/1b"), ("state", "cancel"), ("payment_state", "paid"), ("amount_residual", 99),
    ("currency", "USD"), ("write_date", pd.Timestamp("2026-03-02 10:00:01")),
    ("invoice_date_due", pd.Timestamp("2026-03-31")),  # from null to a value
    ("ref", ""),  # null and the empty text differ
])
def test_the_content_hash_sees_each_column_and_only_the_content(warehouse, column, value):
    _night(warehouse, [_invoice(1, 100), _invoice(2, 200)], D1, "r1")
    # Only the bookkeeping changed (extracted_at): no version, whichever night.
    assert _night(warehouse, [_invoice(1, 100, extracted="2026-03-03 23:10")], D2, "r2") == 0
    assert _night(warehouse, [{**_invoice(1, 100), column: value}], D2, "r3") == 1
    changed = warehouse.read("odoo_invoices_versions", order_by=["version_id"])
    assert changed[["id", "version_run_id"]].values.tolist() == [[1, "r1"], [2, "r1"], [1, "r3"]]
    assert changed["content_hash"].nunique() == 3
    assert _known(warehouse, D1) == {1: 100, 2: 200}


def test_open_versions_of_an_earlier_hash_scheme_are_rehashed_not_reversioned(warehouse):
    _night(warehouse, [_invoice(1, 100), _invoice(2, 200)], D1, "r1")
    v = warehouse.table("odoo_invoices_versions")
    es = warehouse.table("extract_state")
    with warehouse.begin() as conn:  # as an older release left it: sha256 hashes, no scheme mark
        conn.execute(v.update().values(content_hash="sha256-of-pandas-text"))
        conn.execute(es.delete().where(es.c.key == as_known.HASH_STATE))
    warehouse.ensure_schema()
    assert warehouse.get_state(as_known.HASH_STATE) == as_known.HASH_SCHEME
    assert _night(warehouse, [_invoice(1, 100), _invoice(2, 200)], D2, "r2") == 0  # unchanged
    assert _night(warehouse, [_invoice(2, 150)], D3, "r3") == 1
    assert _known(warehouse, D2) == {1: 100, 2: 200} and _known(warehouse, D3) == {1: 100, 2: 150}


def test_a_hold_counts_from_its_effective_date_once_it_was_entered():
    tz = ZoneInfo("Europe/Berlin")
    holds = pd.DataFrame({
        "id": [1, 2], "customer_id": [10, 10], "invoice_id": pd.array([pd.NA, pd.NA], dtype="Int64"),
        "kind": ["promise", "promise"], "until": pd.to_datetime(["2026-03-31", "2026-03-31"]),
        "note": [None, None], "created_by": ["alice", "bob"],
        # entered on 03-10 for a call on 03-03; entered on 03-05 without an effective date
        "created_at": pd.to_datetime(["2026-03-10 09:00", "2026-03-05 09:00"]),
        "effective_date": pd.to_datetime(["2026-03-03", None]),
    })
    customers = pd.DataFrame({"id": [10], "commercial_partner_id": [10]})

    def active(day):
        got = manual_holds(holds, customers, day, tz)
        return {n: s.date().isoformat() for n, s in zip(got["note"], got["since"])}

    assert active(date(2026, 3, 4)) == {}  # neither entered yet: a replay of the 4th sees no hold
    assert active(date(2026, 3, 9)) == {"(bob)": "2026-03-05"}
    assert active(date(2026, 3, 10)) == {"(alice)": "2026-03-03", "(bob)": "2026-03-05"}

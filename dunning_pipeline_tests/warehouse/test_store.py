"""The warehouse store on SQLite and real PostgreSQL: exact money, types, upserts, atomicity."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline.warehouse import store
from dunning_pipeline.warehouse.store import Warehouse, WarehouseError


def _invoices(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["INV/2026/00001", 'quote "and", comma\nnewline', "RINV/2026/00001"],
            "move_type": ["out_invoice", "out_invoice", "out_refund"],
            "state": ["posted", "posted", "posted"],
            # 1234.56 EUR, 0.01 EUR, -99999999.9999 (units of 1/10,000)
            "amount_residual": [12_345_600, 100, -999_999_999_999],
            "invoice_date_due": pd.to_datetime(["2026-03-01", None, "2026-02-28"]),
            "write_date": pd.to_datetime(["2026-03-01 10:11:12", "2026-03-01 10:11:13", None]),
            "currency": ["EUR", None, "JPY"],
        }
    )
    return frame.assign(**overrides)


def test_round_trip_is_exact_and_typed(warehouse):
    warehouse.upsert("odoo_invoices", _invoices())
    got = warehouse.read("odoo_invoices", columns=list(_invoices().columns), order_by=["id"])
    pd.testing.assert_frame_equal(
        got.drop(columns=["invoice_date_due", "write_date"]),
        _invoices().drop(columns=["invoice_date_due", "write_date"]),
        check_dtype=False,
    )
    assert got["amount_residual"].dtype == "int64"
    assert got["amount_residual"].sum() == 12_345_600 + 100 - 999_999_999_999
    assert got.loc[0, "invoice_date_due"] == pd.Timestamp("2026-03-01")
    assert pd.isna(got.loc[1, "invoice_date_due"])
    assert got.loc[1, "write_date"] == pd.Timestamp("2026-03-01 10:11:13")
    assert pd.isna(got.loc[1, "currency"]) and got["currency"].dtype == "str"


def test_upsert_replaces_by_primary_key_and_last_duplicate_wins(warehouse):
    warehouse.upsert("odoo_invoices", _invoices())
    batch = pd.concat([_invoices(state="cancel").iloc[[0]], _invoices(state="draft").iloc[[0]]])
    warehouse.upsert("odoo_invoices", batch)
    got = warehouse.read("odoo_invoices", columns=["id", "state"], order_by=["id"])
    assert got["state"].tolist() == ["draft", "posted", "posted"]
    assert warehouse.count("odoo_invoices") == 3


def test_failed_transaction_leaves_previous_state_whole(warehouse):
    warehouse.upsert("odoo_invoices", _invoices())
    warehouse.set_state("odoo.hwm", "2026-03-01 10:11:13")
    with pytest.raises(RuntimeError, match="crash"):
        with warehouse.begin() as conn:
            warehouse.upsert("odoo_invoices", _invoices(state="cancel"), conn=conn)
            warehouse.set_state("odoo.hwm", "2026-03-02 00:00:00", conn=conn)
            raise RuntimeError("crash half-way")
    assert set(warehouse.read("odoo_invoices", columns=["state"])["state"]) == {"posted"}
    assert warehouse.get_state("odoo.hwm") == "2026-03-01 10:11:13"


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
def test_a_write_in_chunks_equals_one_write_and_fails_as_one(warehouse, monkeypatch, mode):
    monkeypatch.setattr(store, "WRITE_CHUNK_ROWS", 2)  # 7 rows: chunks of 2, 2, 2 and 1
    rows = pd.concat([_invoices(id=[i, i + 1, i + 2]) for i in (1, 4, 7)], ignore_index=True).iloc[:7]
    if mode == "upsert":  # a key repeated in a later chunk: its last row wins, as in one batch
        rows = pd.concat([rows.iloc[:6], rows.iloc[[0]].assign(state="cancel")], ignore_index=True)
    getattr(warehouse, mode)("odoo_invoices", rows)
    got = warehouse.read("odoo_invoices", order_by=["id"])
    expected = rows.drop_duplicates("id", keep="last").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[expected.columns], expected.astype(got[expected.columns].dtypes.to_dict()))

    spoiled = rows.assign(id=rows["id"] + 100, state=[*["posted"] * 6, None])  # the null is in the last chunk
    with pytest.raises(WarehouseError, match="column state is null in row 6"):
        getattr(warehouse, mode)("odoo_invoices", spoiled)
    pd.testing.assert_frame_equal(warehouse.read("odoo_invoices", order_by=["id"]), got)  # nothing of it kept


def test_replace_with_where_only_touches_matching_rows(warehouse):
    warehouse.upsert("odoo_invoices", _invoices())
    t = warehouse.table("odoo_invoices")
    new = _invoices().iloc[[2]].assign(id=30, state="cancel")
    warehouse.replace("odoo_invoices", new, where=t.c.move_type == "out_refund")
    got = warehouse.read("odoo_invoices", columns=["id", "state"], order_by=["id"])
    assert got["id"].tolist() == [1, 2, 30]


def test_frames_that_do_not_fit_are_refused_with_the_column_named(warehouse):
    with pytest.raises(WarehouseError, match="unknown column.*amount_total_eur"):
        warehouse.upsert("odoo_invoices", _invoices(amount_total_eur=1))
    with pytest.raises(WarehouseError, match="required column.*move_type"):
        warehouse.upsert("odoo_invoices", _invoices().drop(columns=["move_type"]))
    with pytest.raises(WarehouseError, match="column state is null in row 1"):
        warehouse.upsert("odoo_invoices", _invoices(state=["posted", None, "posted"]))
    assert warehouse.count("odoo_invoices") == 0


def test_ensure_schema_adds_missing_columns(warehouse_url):
    # An older warehouse whose table lacks a column the code now has gets it added in place.
    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE zendesk_users (id BIGINT PRIMARY KEY, email TEXT)"))
        conn.execute(sa.text("INSERT INTO zendesk_users (id, email) VALUES (7, 'ap@customer.example')"))
    engine.dispose()
    wh = Warehouse(warehouse_url)
    changes = wh.ensure_schema()
    assert "added column zendesk_users.organization_id" in changes
    assert "created table odoo_invoices" in changes
    got = wh.read("zendesk_users", columns=["id", "email", "organization_id"])
    assert got["id"].tolist() == [7] and got["email"].tolist() == ["ap@customer.example"]
    assert pd.isna(got.loc[0, "organization_id"])
    assert wh.ensure_schema() == []
    wh.dispose()


def test_ensure_schema_drops_a_not_null_the_code_dropped_and_keeps_the_rows(warehouse_url):
    # The reconciliations of an older warehouse: both lines NOT NULL, no parse_error (and a
    # column the code dropped since). A reconciliation without a line is now stored (and
    # quarantined by its checks), not refused.
    engine = sa.create_engine(warehouse_url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE odoo_reconciliations (id BIGINT PRIMARY KEY, debit_line_id BIGINT NOT NULL, "
            "credit_line_id BIGINT NOT NULL, company_id BIGINT, company_currency TEXT, amount NUMERIC(19, 4), "
            "debit_currency TEXT, debit_amount_currency NUMERIC(19, 4), credit_currency TEXT, "
            "credit_amount_currency NUMERIC(19, 4), max_date DATE, create_date TIMESTAMP, write_date TIMESTAMP, "
            "extracted_at TIMESTAMP, legacy_note TEXT)"))
        conn.execute(sa.text("CREATE INDEX ix_odoo_reconciliations_debit_line_id ON odoo_reconciliations "
                             "(debit_line_id)"))
        conn.execute(sa.text("INSERT INTO odoo_reconciliations (id, debit_line_id, credit_line_id, amount, "
                             "legacy_note) VALUES (7, 81, 9001, 462.96, 'kept')"))
    engine.dispose()
    wh = Warehouse(warehouse_url)
    changes = wh.ensure_schema()
    assert {"added column odoo_reconciliations.parse_error", "column odoo_reconciliations.debit_line_id may be null",
            "column odoo_reconciliations.credit_line_id may be null"} <= set(changes)
    wh.upsert("odoo_reconciliations", pd.DataFrame({"id": [8], "debit_line_id": pd.array([None], dtype="Int64"),
                                                    "credit_line_id": [9002], "parse_error": ["field debit_move_id"]}))
    got = wh.read("odoo_reconciliations", columns=["id", "debit_line_id", "amount", "parse_error"], order_by=["id"])
    assert got["id"].tolist() == [7, 8] and got["amount"].iloc[0] == 4_629_600
    assert got["debit_line_id"].iloc[0] == 81 and pd.isna(got["debit_line_id"].iloc[1])
    # A column the code no longer has keeps its values (the warehouse never drops one).
    with wh.begin() as conn:
        assert conn.execute(sa.text("SELECT legacy_note FROM odoo_reconciliations WHERE id = 7")).scalar() == "kept"
    indexes = {i["name"] for i in sa.inspect(wh.engine).get_indexes("odoo_reconciliations")}
    assert "ix_odoo_reconciliations_debit_line_id" in indexes
    assert wh.ensure_schema() == []
    wh.dispose()


def test_booleans_and_nullable_integers(warehouse):
    frame = pd.DataFrame({"id": [1, 2, 3], "active": [True, False, None], "parent_id": [None, 1, 1]})
    warehouse.upsert("odoo_customers", frame)
    got = warehouse.read("odoo_customers", columns=["id", "active", "parent_id"], order_by=["id"])
    assert got["active"].tolist()[:2] == [True, False] and pd.isna(got["active"][2])
    assert pd.isna(got["parent_id"][0]) and got["parent_id"][1] == 1


def test_replace_of_a_whole_table_rolls_back_with_its_transaction(warehouse):
    warehouse.upsert("odoo_invoices", _invoices())
    with pytest.raises(RuntimeError, match="crash"):
        with warehouse.begin() as conn:
            warehouse.replace("odoo_invoices", _invoices().iloc[[0]], conn=conn)
            assert warehouse.count("odoo_invoices", conn=conn) == 1
            raise RuntimeError("crash after the table was emptied")
    assert warehouse.count("odoo_invoices") == 3


def test_timestamps_are_stored_in_sql_form_and_compare_as_sql(warehouse):
    warehouse.upsert("odoo_invoices", _invoices())
    t = warehouse.table("odoo_invoices")
    from datetime import datetime
    newer = warehouse.read("odoo_invoices", columns=["id"],
                           where=t.c.write_date > datetime(2026, 3, 1, 10, 11, 12))
    assert newer["id"].tolist() == [2]


@pytest.mark.faults
def test_concurrent_first_runs_wait_for_each_other_instead_of_failing(pg_database):
    """Several processes creating the schema of an empty database at once all succeed."""
    import threading

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def first_run():
        wh = Warehouse(pg_database)
        try:
            barrier.wait()
            wh.ensure_schema()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            wh.dispose()

    threads = [threading.Thread(target=first_run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    wh = Warehouse(pg_database)
    assert wh.ensure_schema() == []  # everything exists, once
    wh.dispose()

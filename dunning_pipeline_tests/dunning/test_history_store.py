"""The history in a real database (SQLite and PostgreSQL): idempotent, append-only, forward-only,
written in one transaction, and its state table always derivable from the log."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import date, datetime

import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from dunning_pipeline.dunning import history
from dunning_pipeline.dunning.engine import run_night
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.warehouse.store import Warehouse

from . import dataset as D

POLICY = load_policy()
RECORDED_AT = datetime(2026, 3, 2, 3, 0, 0)


def _aging(as_of: date, prev: pd.DataFrame | None = None, invoices: pd.DataFrame | None = None) -> pd.DataFrame:
    night = run_night(D.invoices() if invoices is None else invoices, D.customers(), POLICY, as_of, prev,
                      tickets=D.tickets(), users=D.users(), comments=D.comments(), manual_holds=D.manual_holds(),
                      quarantine=D.quarantine())
    return night.aging


def _record(warehouse, as_of: date, run_id: str, invoices: pd.DataFrame | None = None):
    invoices = D.invoices() if invoices is None else invoices
    aging = _aging(as_of, history.load_state(warehouse, as_of), invoices)
    return history.record(warehouse, aging, invoices, POLICY, as_of, run_id, RECORDED_AT, {602})


def test_rerunning_a_day_adds_nothing(warehouse):
    first = _record(warehouse, D.AS_OF, "run-1")
    assert len(first.rows) == 12 and not first.skipped
    assert warehouse.count("dunning_history") == 12
    again = _record(warehouse, D.AS_OF, "run-2")
    assert again.rows.empty and again.skipped is False and again.latest_recorded == D.AS_OF
    assert warehouse.count("dunning_history") == 12
    stored = warehouse.read("dunning_history", order_by=["id"])
    assert set(stored["run_id"]) == {"run-1"}
    assert stored.loc[stored["invoice_id"] == 104, "amount_residual"].item() == 10_000_000  # exact, 1,000.00 USD
    assert stored.loc[stored["invoice_id"] == 105, "hold_reason"].item() == "dispute"
    assert (pd.to_datetime(stored["recorded_at"]) == pd.Timestamp(RECORDED_AT)).all()  # when it was written


def test_history_rows_cannot_be_updated_or_deleted(warehouse):
    _record(warehouse, D.AS_OF, "run-1")
    t = warehouse.table("dunning_history")
    for statement in (t.update().values(to_stage="collection"), t.delete().where(t.c.invoice_id == 101)):
        with pytest.raises(sa.exc.DBAPIError, match="dunning_history is append-only"):
            with warehouse.begin() as conn:
                conn.execute(statement)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        warehouse.replace("dunning_history", pd.DataFrame(columns=["invoice_id"]))
    if warehouse.dialect == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only: TRUNCATE"):
            with warehouse.begin() as conn:
                conn.exec_driver_sql("TRUNCATE dunning_history")
    assert warehouse.count("dunning_history") == 12
    assert set(warehouse.read("dunning_history")["to_stage"]) != {"collection"}
    # ensure_schema again keeps (and does not duplicate) the triggers
    warehouse.ensure_schema()
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with warehouse.begin() as conn:
            conn.execute(t.delete())


def test_next_days_append_and_a_past_day_records_nothing(warehouse):
    _record(warehouse, D.AS_OF, "run-1")
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    later = _record(warehouse, date(2026, 3, 9), "run-2", invoices)
    assert later.skipped is False and later.latest_recorded == D.AS_OF  # the latest day before this run
    got = {(r.invoice_id, r.from_stage, r.to_stage, r.reason) for r in later.rows.itertuples()}
    assert (102, "reminder_1", "closed", "paid") in got
    assert (103, "reminder_2", "call", "days_overdue") in got  # 15 days
    total = warehouse.count("dunning_history")

    past = _record(warehouse, date(2026, 3, 5), "run-3", invoices)
    assert past.skipped and past.rows.empty and past.latest_recorded == date(2026, 3, 9)
    assert list(past.rows.columns) == history.HISTORY_COLUMNS  # the shape of any night's rows, none of them
    assert warehouse.count("dunning_history") == total
    # the state the past day would have seen comes from the log, not from later rows
    seen = history.load_state(warehouse, date(2026, 3, 5)).set_index("invoice_id")
    assert seen.loc[102, "stage"] == "reminder_1" and seen.loc[103, "stage"] == "reminder_2"


def test_state_table_matches_the_log_and_is_rebuilt_when_missing(warehouse):
    _record(warehouse, D.AS_OF, "run-1")
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 104, "state"] = "cancel"
    _record(warehouse, date(2026, 3, 4), "run-1", invoices)  # the same run id on another day (recorded by hand)
    cols = ["invoice_id", "stage", "on_hold", "hold_reason", "policy", "as_of_date", "history_id"]
    state = warehouse.read("dunning_state", order_by=["invoice_id"])[cols].reset_index(drop=True)
    from_log = history.state_from_history(warehouse).sort_values("invoice_id")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(state, from_log, check_dtype=False)
    assert state.set_index("invoice_id").loc[104, "stage"] == "closed"

    warehouse.delete("dunning_state", warehouse.table("dunning_state").c.invoice_id > 0)
    rows = _record(warehouse, date(2026, 3, 5), "run-3", invoices).rows
    assert 104 not in set(rows["invoice_id"])  # closed already: not closed twice
    assert warehouse.count("dunning_state") == len(from_log) + len(set(rows["invoice_id"]) - set(from_log["invoice_id"]))


def test_a_replayed_day_sees_the_state_before_its_own_rows_and_closed_invoices_unless_asked(warehouse):
    for active_only in (False, True):  # nothing recorded yet: an empty state, with its columns
        nothing = history.load_state(warehouse, D.AS_OF, active_only=active_only)
        assert nothing.empty and list(nothing.columns) == history.STATE_COLUMNS
    _record(warehouse, D.AS_OF, "run-1")
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 104, "state"] = "cancel"
    _record(warehouse, date(2026, 3, 4), "run-2", invoices)  # 104 closed on 03-04
    _record(warehouse, date(2026, 3, 9), "run-3", invoices)
    # Replaying 03-04 (before the latest day): the state that night saw, without its own rows.
    replayed = history.load_state(warehouse, date(2026, 3, 4)).set_index("invoice_id")
    assert replayed.loc[104, "stage"] == "call" and pd.Timestamp(replayed.loc[104, "as_of_date"]) == pd.Timestamp(D.AS_OF)
    # A later day, from the log and from dunning_state: closed invoices are part of the state ...
    for day in (date(2026, 3, 5), date(2026, 3, 9)):
        state = history.load_state(warehouse, day).set_index("invoice_id")
        assert state.loc[104, "stage"] == "closed"
        # ... and left out only when asked (all that the aging table needs)
        active = history.load_state(warehouse, day, active_only=True)
        assert 104 not in set(active["invoice_id"]) and set(active["invoice_id"]) == set(state.index) - {104}


def test_an_invoice_paid_and_then_open_again_reenters_as_reopened(warehouse):
    _record(warehouse, D.AS_OF, "run-1")
    paid = D.invoices()
    paid.loc[paid["id"] == 102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    closed = _record(warehouse, date(2026, 3, 3), "run-2", paid).rows.set_index("invoice_id")
    assert (closed.loc[102, "to_stage"], closed.loc[102, "reason"]) == ("closed", "paid")
    # the payment is taken back in Odoo: 102 is open again (due 03-01, 3 days: reminder_1)
    again = _record(warehouse, date(2026, 3, 4), "run-3").rows.set_index("invoice_id")
    assert tuple(again.loc[102, ["from_stage", "to_stage", "reason"]]) == ("closed", "reminder_1", "reopened")
    assert warehouse.read("dunning_state").set_index("invoice_id").loc[102, "stage"] == "reminder_1"


@pytest.fixture
def pg_warehouse(pg_database):
    wh = Warehouse(pg_database)
    wh.ensure_schema()
    yield wh
    wh.dispose()


def test_a_second_writer_of_the_same_day_waits_for_the_first_and_adds_nothing(pg_warehouse):
    # PostgreSQL only: the table lock is PostgreSQL's (SQLite has one writer at a time anyway).
    warehouse = pg_warehouse
    invoices = D.invoices()
    aging = _aging(D.AS_OF, history.load_state(warehouse, D.AS_OF), invoices)
    inside, release = threading.Event(), threading.Event()
    results, errors = {}, {}

    def hold_open(conn):  # the first writer, its rows written, not yet committed
        inside.set()
        assert release.wait(60)

    def run(run_id, on_recorded=None):
        try:
            results[run_id] = history.record(warehouse, aging, invoices, POLICY, D.AS_OF, run_id, RECORDED_AT,
                                             {602}, on_recorded=on_recorded)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors[run_id] = exc

    first = threading.Thread(target=run, args=("run-1", hold_open))
    first.start()
    assert inside.wait(60)
    second = threading.Thread(target=run, args=("run-2",))
    second.start()
    deadline = time.monotonic() + 30
    with warehouse.engine.connect() as conn:
        while conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one() == 0:
            assert time.monotonic() < deadline and second.is_alive(), "the second writer did not wait"
            time.sleep(0.1)
    release.set()
    first.join(60)
    second.join(60)
    assert errors == {}
    assert len(results["run-1"].rows) == 12 and results["run-2"].rows.empty and not results["run-2"].skipped
    assert set(warehouse.read("dunning_history")["run_id"]) == {"run-1"} and warehouse.count("dunning_history") == 12


def test_a_quarantined_invoice_in_dunning_is_left_as_it_was_not_closed(warehouse):
    _record(warehouse, D.AS_OF, "run-1")
    spoiled = D.invoices()
    spoiled.loc[spoiled["id"] == 103, "payment_state"] = "??"  # a spoiled record, held back by the checks
    quarantine = pd.concat([D.quarantine(), D.quarantine().iloc[[1]].assign(record_id=103)], ignore_index=True)
    day = date(2026, 3, 3)
    aging = run_night(spoiled, D.customers(), POLICY, day, history.load_state(warehouse, day),
                      quarantine=quarantine).aging
    assert 103 not in set(aging["invoice_id"])
    rows = history.record(warehouse, aging, spoiled, POLICY, day, "run-2", RECORDED_AT, {602, 103}).rows
    assert 103 not in set(rows["invoice_id"])  # not 'removed' for a payment state it does not really have
    assert warehouse.read("dunning_state").set_index("invoice_id").loc[103, "stage"] == "reminder_2"


def test_what_on_recorded_writes_is_part_of_the_nights_transaction(warehouse):
    seen = []

    def note_the_build(conn):
        seen.append(conn.execute(sa.select(sa.func.count()).select_from(warehouse.table("dunning_history"))).scalar_one())
        raise RuntimeError("the build note failed")

    invoices = D.invoices()
    aging = _aging(D.AS_OF, history.load_state(warehouse, D.AS_OF), invoices)
    with pytest.raises(RuntimeError, match="the build note failed"):
        history.record(warehouse, aging, invoices, POLICY, D.AS_OF, "run-1", RECORDED_AT, {602},
                       on_recorded=note_the_build)
    assert seen == [12]  # it saw the night's rows, not yet committed ...
    assert warehouse.count("dunning_history") == 0 and warehouse.count("dunning_state") == 0  # ... and undid them


def test_a_failure_while_writing_leaves_the_history_as_it_was(warehouse, monkeypatch):
    _record(warehouse, D.AS_OF, "run-1")
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    real_upsert = warehouse.upsert

    def crash(table, frame, *, conn=None):
        if table == "dunning_state":
            raise RuntimeError("disk full")
        return real_upsert(table, frame, conn=conn)

    monkeypatch.setattr(warehouse, "upsert", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        _record(warehouse, date(2026, 3, 9), "run-2", invoices)
    monkeypatch.undo()
    assert warehouse.count("dunning_history") == 12  # the appended rows were rolled back with the state
    retry = _record(warehouse, date(2026, 3, 9), "run-3", invoices)
    assert (102, "closed") in {(r.invoice_id, r.to_stage) for r in retry.rows.itertuples()}


# The store writes through the driver's cursor (COPY, executemany): the driver's own errors.
INTEGRITY_ERRORS = (sa.exc.IntegrityError, sqlite3.IntegrityError, psycopg2.IntegrityError)


def test_manual_holds_table_refuses_incomplete_rows(warehouse):
    bad = pd.DataFrame([{"customer_id": 10, "invoice_id": None, "kind": "promise", "until": None, "created_by": "x"}])
    with pytest.raises(INTEGRITY_ERRORS, match="ck_dunning_holds_promise_until"):
        warehouse.append("dunning_holds", bad)
    bad = pd.DataFrame([{"customer_id": None, "invoice_id": None, "kind": "exclusion", "until": None, "created_by": "x"}])
    with pytest.raises(INTEGRITY_ERRORS, match="ck_dunning_holds_target"):
        warehouse.append("dunning_holds", bad)
    bad = pd.DataFrame([{"customer_id": 10, "invoice_id": None, "kind": "pause", "until": None, "created_by": "x"}])
    with pytest.raises(INTEGRITY_ERRORS, match="ck_dunning_holds_kind"):
        warehouse.append("dunning_holds", bad)
    ok = pd.DataFrame([{"customer_id": 10, "invoice_id": None, "kind": "exclusion", "until": None, "created_by": "x"}])
    warehouse.append("dunning_holds", ok)
    stored = warehouse.read("dunning_holds")
    assert len(stored) == 1 and pd.notna(stored.loc[0, "created_at"])  # stamped by the database

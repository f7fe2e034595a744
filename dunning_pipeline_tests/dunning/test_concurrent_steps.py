"""Two runs of the same writing step at once, started by hand past the run queue, on PostgreSQL:
the warehouse writer lock makes the second wait for the first, and the table ends up whole."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from dunning_pipeline.dunning.assets import receivables
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse

from . import dataset as D


def _waiting_for_advisory_locks(wh: Warehouse) -> int:
    with wh.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).scalar_one()


def test_two_runs_of_a_writing_step_at_once_run_one_after_the_other(pg_database, monkeypatch):
    monkeypatch.delenv("DUNNING_POLICY_FILE", raising=False)
    monkeypatch.setenv("DUNNING_TIMEZONE", "UTC")
    wh = Warehouse(pg_database)
    wh.ensure_schema()
    D.fill(wh)
    resources = {"warehouse": WarehouseResource(database_url=pg_database)}
    days = ["2026-03-02", "2026-03-03"]
    expected = {}
    for day in days:  # each day as a lone run writes it
        assert dg.materialize([receivables], resources=resources, partition_key=day).success
        expected[day] = wh.read("receivables").sort_values("invoice_id").reset_index(drop=True)
    assert not expected[days[0]].equals(expected[days[1]])
    wh.replace("receivables", expected[days[0]].iloc[0:0])

    results: dict[str, tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]] = {}

    def run(day: str) -> None:
        instance = dg.DagsterInstance.ephemeral()
        results[day] = dg.materialize([receivables], resources=resources, partition_key=day,
                                      instance=instance), instance

    # Another run holds the step: both runs started now must wait for it, then for each other.
    with wh.writer_lock("receivables"):
        threads = [threading.Thread(target=run, args=(day,)) for day in days]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while _waiting_for_advisory_locks(wh) < 2:
            assert time.monotonic() < deadline, "the two runs never queued on the step's lock"
            assert all(t.is_alive() for t in threads), "a run finished while another held the step's lock"
            time.sleep(0.2)
        assert wh.count("receivables") == 0  # nothing written while the lock was held
    for t in threads:
        t.join(timeout=120)
    assert set(results) == set(days) and all(r.success for r, _ in results.values())
    for r, instance in results.values():
        messages = [e.user_message for e in instance.all_logs(r.run_id)]
        assert any("another run holds its warehouse lock" in m for m in messages)

    # One day whole, never a mix of the two: the later writer's rows, exactly as a lone run writes them.
    stored = wh.read("receivables").sort_values("invoice_id").reset_index(drop=True)
    assert stored["as_of_date"].nunique() == 1
    day = pd.Timestamp(stored["as_of_date"].iloc[0]).date().isoformat()
    pd.testing.assert_frame_equal(stored, expected[day])
    wh.dispose()

"""A replayed month equals the month as it ran (issue 9 §2): 30 nights on the evolving sandbox
(payments, new invoices, ticket updates every night; a promise entered on night 12 dated back to
night 8), each night's aging kept; then the 30 days replayed in order into a fresh warehouse that
holds only the extracts (current state and versions), the quarantine and the holds as they are
after the last night. Every day's aging and the whole history come out equal row for row, and a
day replayed twice gives identical tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline import settings
from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.warehouse import as_known
from dunning_pipeline.warehouse.store import Warehouse

pytestmark = pytest.mark.slow  # 61 Dagster runs: two to three minutes on an idle machine

FIRST = date(2026, 3, 2)
NIGHTS = 30
PROMISE_ENTERED, PROMISE_EFFECTIVE = 11, 7  # nights (0-based): entered on night 11, dated back to 7
DUNNING_ASSETS = ["receivables", "customer_communications", "invoice_aging", "dunning_history"]
# Columns that name the run, not the day's content.
RUN_COLUMNS = {"run_id", "id", "recorded_at"}
# Copied into the replay's warehouse: what the extracts and the accountants wrote.
INPUT_TABLES = [*as_known.VERSIONED, *(v.versions.name for v in as_known.VERSIONED.values()), "dunning_holds"]


def _defs():
    from dunning_pipeline import definitions as top

    # The extracts and the dunning assets; the data-quality suites are left out for time (the
    # quarantine is read as known on the day like the extracts, tested in warehouse/test_as_known.py).
    night = dg.define_asset_job("night", selection=dg.AssetSelection.groups("odoo", "zendesk", "dunning")
                                .without_checks() | dg.AssetSelection.checks_for_assets("invoice_aging"),
                                executor_def=dg.in_process_executor)
    replay = dg.define_asset_job("replay", selection=dg.AssetSelection.assets(*DUNNING_ASSETS),
                                 executor_def=dg.in_process_executor)
    return dg.Definitions.merge(
        top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
        dg.Definitions(jobs=[night, replay], resources=top.build_resources()))


def _run(defs, job: str, day: date, instance) -> None:
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False)
    assert result.success, f"{job} of {day} failed"


def _rows(wh: Warehouse, table: str, key: list[str]) -> pd.DataFrame:
    frame = wh.read(table)
    frame = frame[[c for c in frame.columns if c not in RUN_COLUMNS]]
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


def test_a_replayed_month_equals_the_month_as_it_ran(tmp_path, monkeypatch, pg_database):
    night_url, replay_url = pg_database, f"sqlite:///{tmp_path / 'replay.sqlite'}"
    monkeypatch.setenv(settings.DATABASE_URL_VAR, night_url)  # bound when the resources are built
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    aged: dict[date, pd.DataFrame] = {}
    with Sandbox(seed=11, customers=12, invoices=150, as_of=FIRST, zendesk_export_limit_per_minute=None) as sb:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        wh = Warehouse(night_url)
        promised = None
        for n in range(NIGHTS):
            day = FIRST + timedelta(days=n)
            if n:
                sb.advance_night()
            if n == PROMISE_ENTERED:  # an accountant enters, on that day, a promise made on an earlier call
                before = aged[day - timedelta(days=1)]
                promised = int(before[(before["dunning_status"] == "dunned") & before["hold_reason"].isna()]
                               ["invoice_id"].iloc[0])
                wh.append("dunning_holds", pd.DataFrame({
                    "invoice_id": [promised], "kind": ["promise"], "until": [pd.Timestamp(day + timedelta(days=60))],
                    "note": ["promised on the phone"], "created_by": ["alice"],
                    "created_at": [pd.Timestamp(datetime.combine(day, datetime.min.time()) + timedelta(hours=10))],
                    "effective_date": [pd.Timestamp(FIRST + timedelta(days=PROMISE_EFFECTIVE))]}))
            _run(defs, "night", day, instance)
            aged[day] = _rows(wh, "invoice_aging", ["invoice_id"])
        history = _rows(wh, "dunning_history", ["invoice_id", "as_of_date"])
        inputs = {t: wh.read(t) for t in INPUT_TABLES}
        wh.dispose()

    # The month moved: invoices came and went, so a replay that read today's data would differ.
    first, last = aged[FIRST], aged[FIRST + timedelta(days=NIGHTS - 1)]
    assert set(first["invoice_id"]) - set(last["invoice_id"]) and set(last["invoice_id"]) - set(first["invoice_id"])
    assert (inputs["odoo_invoices_versions"]["valid_to"].notna()).sum() >= NIGHTS
    # The promise: held from the night it was entered, frozen as of its effective date.
    entered = FIRST + timedelta(days=PROMISE_ENTERED)
    row = aged[entered].set_index("invoice_id").loc[promised]
    # (a hold of the customer's own starting tonight could name it, but none starts before the promise)
    assert (row["dunning_status"], row["hold_since"]) == ("on_hold", pd.Timestamp(FIRST + timedelta(days=PROMISE_EFFECTIVE)))

    monkeypatch.setenv(settings.DATABASE_URL_VAR, replay_url)
    defs = _defs()
    fresh = Warehouse(replay_url)
    fresh.ensure_schema()
    for table, frame in inputs.items():
        fresh.append(table, frame)
    replay_instance = dg.DagsterInstance.ephemeral()
    for n in range(NIGHTS):
        day = FIRST + timedelta(days=n)
        _run(defs, "replay", day, replay_instance)
        got = _rows(fresh, "invoice_aging", ["invoice_id"])
        pd.testing.assert_frame_equal(got, aged[day], check_dtype=False, obj=f"invoice_aging of {day}")
        if n == PROMISE_EFFECTIVE + 1:  # twice: the same tables again
            _run(defs, "replay", day, replay_instance)
            pd.testing.assert_frame_equal(_rows(fresh, "invoice_aging", ["invoice_id"]), got, check_dtype=False)
    pd.testing.assert_frame_equal(_rows(fresh, "dunning_history", ["invoice_id", "as_of_date"]), history,
                                  check_dtype=False, obj="dunning_history")
    fresh.dispose()

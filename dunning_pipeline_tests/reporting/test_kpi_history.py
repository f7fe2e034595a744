"""A rebuilt past day equals the nightly run of that day: the real nightly job on the sandbox
computes day X; the sandbox moves on (payments, credit notes, cancellations, new invoices), X's
rows are dropped from the series, and the job of a later night rebuilds X from Odoo's invoice
and reconciliation dates (extracted incrementally): the balance-based KPIs are the same."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline import settings
from dunning_pipeline.reporting import kpis
from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.warehouse.store import Warehouse

pytestmark = pytest.mark.slow  # whole Dagster runs

X = date(2026, 3, 2)
BALANCE_KPIS = {"ar_total", "ar_current", "ar_past_due", "credit_sales_30d", "credit_sales_90d", "dso_count_back",
                "dso_period", "best_possible_dso", "average_days_delinquent", "collection_effectiveness_index",
                "aging_distribution"}


def _run(job, as_of):
    result = job.execute_in_process(tags={settings.AS_OF_TAG: as_of.isoformat()}, raise_on_error=False,
                                    instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def _day(wh: Warehouse, day: date) -> pd.DataFrame:
    rows = wh.read("collection_kpis")
    rows = rows[(rows["as_of_date"] == pd.Timestamp(day)) & rows["kpi"].isin(BALANCE_KPIS)]
    return rows.set_index(["company_id", "kpi", "dimension"]).sort_index()


def test_a_rebuilt_day_equals_the_nightly_run_of_that_day(tmp_path, monkeypatch, pg_database):
    from dunning_pipeline import definitions as top

    monkeypatch.setenv("DUNNING_KPI_HISTORY_MONTHS", "2")
    with Sandbox(seed=7, customers=30, invoices=300, as_of=X) as sb:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv(settings.DATABASE_URL_VAR, pg_database)
        defs = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs,
            dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        job = defs.resolve_job_def("nightly_dunning")
        wh = Warehouse(pg_database)
        _run(job, X)
        live = _day(wh, X)
        assert set(live["source"]) == {kpis.NIGHTLY} and live.loc[(1, "ar_total", ""), "amount"] > 0
        payments_before = wh.count("odoo_reconciliations")

        changes = [sb.data.advance_night() for _ in range(3)]
        k = wh.table("collection_kpis").c
        wh.delete("collection_kpis", k.as_of_date == X)
        later = _run(job, X + timedelta(days=3))

    assert sum(len(c.paid) + len(c.partially_paid) + len(c.reversed_invoices) + len(c.cancelled) for c in changes) > 5
    assert wh.count("odoo_reconciliations") > payments_before  # the later payments, read incrementally
    rebuilt = _day(wh, X)
    assert set(rebuilt["source"]) == {kpis.RECONSTRUCTED}
    assert rebuilt.index.equals(live.index)
    both = live[["amount", "value"]].join(rebuilt[["amount", "value"]], rsuffix="_rebuilt")
    differ = both[(both["amount"].fillna(-1) != both["amount_rebuilt"].fillna(-1))]
    assert differ.empty, differ.to_string()  # balances and sales to the unit
    assert rebuilt["value"].to_numpy() == pytest.approx(live["value"].to_numpy(), nan_ok=True, rel=1e-12)
    assert rebuilt.loc[(1, "dso_count_back", ""), "value"] > 0
    (event,) = [e for e in later.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("collection_kpis")]
    meta = {key: v.value for key, v in event.materialization.metadata.items()}
    assert meta["days_reconstructed"] == 3  # X and the two nights the job did not run
    assert "reconciliation sides" in meta["reconstructed_from"] and "do not explain" not in meta["reconstructed_from"]

"""The real nightly job against the sandbox, two nights: the receivable lines are extracted, each
open instalment is aged in its own bucket (`instalment_aging`), an instalment invoice is dunned by
its oldest open instalment, the reconciliation check passes, and blocked invoices are held and
never recorded as closed."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline import settings
from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.warehouse.store import Warehouse

pytestmark = pytest.mark.slow  # whole Dagster runs

AS_OF = date(2026, 3, 2)


def _run(job, as_of):
    return job.execute_in_process(partition_key=as_of.isoformat(), raise_on_error=False,
                                  instance=dg.DagsterInstance.ephemeral())


def test_the_nightly_job_ages_instalments_and_holds_blocked_invoices(tmp_path, monkeypatch, warehouse_url):
    from dunning_pipeline import definitions as top

    url = warehouse_url
    with Sandbox(seed=7, customers=30, invoices=300, as_of=AS_OF) as sb:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv(settings.DATABASE_URL_VAR, url)
        defs = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs,
            dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        job = defs.resolve_job_def("nightly_dunning")
        first = _run(job, AS_OF)
        assert first.success
        sb.data.advance_night()
        second = _run(job, AS_OF + timedelta(days=1))
        assert second.success
        blocked_ids = {m["id"] for m in sb.data.moves if m["payment_state"] == "blocked"}

    wh = Warehouse(url)
    lines = wh.read("odoo_receivable_lines")
    inst = wh.read("instalment_aging")
    aging = wh.read("invoice_aging").set_index("invoice_id")
    assert len(lines) > len(aging) and set(inst["invoice_id"]) == set(aging.index)
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert checks["invoice_aging_reconciles"].passed
    assert {"odoo_receivable_lines_data_quality", "odoo_receivable_lines_references"} <= {
        n.name for n in job.nodes}
    assert all(e.passed for e in second.get_asset_check_evaluations()
               if e.asset_key.to_user_string() == "odoo_receivable_lines")

    # The case of the issue: an instalment overdue while Odoo's due date (the last one) is ahead.
    several = aging[aging["instalments_total"] > 1]
    hidden = several[(several["days_overdue"] > 0) & (several["invoice_date_due"] > several["as_of_date"])]
    assert len(hidden) >= 1
    assert hidden["stage"].notna().all()
    for invoice_id, row in hidden.iterrows():
        own = inst[inst["invoice_id"] == invoice_id].sort_values("instalment_number")
        assert own["date_maturity"].iloc[0] == row["due_date"] < row["invoice_date_due"]
        # each in the bucket of its own due date: the last is not due yet, the first is overdue
        assert own["aging_bucket"].iloc[-1] == "current" and own["aging_bucket"].iloc[0] != "current"
        assert row["aging_bucket"] == own["aging_bucket"].iloc[0]
        assert own["amount_residual"].sum() == row["amount_residual"]
    per_invoice = inst.groupby("invoice_id")[["amount_residual", "amount_residual_company"]].sum()
    assert (per_invoice["amount_residual"] == aging.loc[per_invoice.index, "amount_residual"]).all()
    assert (per_invoice["amount_residual_company"] == aging.loc[per_invoice.index, "amount_residual_company"]).all()

    # Blocked: aged, held with kind blocked, never closed or removed in the history.
    held = aging.loc[sorted(blocked_ids & set(aging.index))]
    assert len(held) >= 1 and (held["hold_reason"] == "blocked").all()
    history = wh.read("dunning_history")
    closed = history[history["to_stage"] == "closed"]
    assert not set(closed["invoice_id"]) & blocked_ids
    assert pd.Series(sorted(blocked_ids)).isin(aging.index).all()

"""The report and the KPIs materialized by Dagster after the dunning assets, on the dunning
test dataset, on SQLite and PostgreSQL: reconciliation, files, charts, the series across nights."""

from __future__ import annotations

import re

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline import money
from dunning_pipeline.dunning.assets import ASSET_CHECKS as DUNNING_CHECKS
from dunning_pipeline.dunning.assets import ASSETS as DUNNING_ASSETS
from dunning_pipeline.reporting import console
from dunning_pipeline.reporting import kpis as kpis_mod
from dunning_pipeline.reporting.report_assets import ASSET_CHECKS, ASSETS
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline_tests.dunning import dataset as D


@pytest.fixture
def filled(warehouse, monkeypatch, tmp_path):
    monkeypatch.delenv("DUNNING_POLICY_FILE", raising=False)
    monkeypatch.setenv("DUNNING_TIMEZONE", "UTC")
    monkeypatch.setenv("DUNNING_REPORT_DIR", str(tmp_path / "reports"))
    D.fill(warehouse)
    return warehouse


def _run(wh, day: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize([*DUNNING_ASSETS, *DUNNING_CHECKS, *ASSETS, *ASSET_CHECKS],
                            resources={"warehouse": WarehouseResource(database_url=wh.url)},
                            partition_key=day)
    assert result.success
    return result


def _metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_report_and_kpis_over_two_nights_and_a_rerun(filled, tmp_path):
    day1 = _run(filled, "2026-03-02")
    checks = {c.check_name: c.passed for c in day1.get_asset_check_evaluations()}
    assert checks["ar_aging_report_reconciles"] is True

    meta = _metadata(day1, "ar_aging_report")
    aging = filled.read("invoice_aging")
    summary = filled.read("ar_aging_report")
    assert meta["dagster/row_count"] == len(summary) == aging.groupby(["company_id", "customer_id"]).ngroups
    # The report's company-currency total equals the aging table's, to the unit.
    assert summary["total_company"].sum() == aging["amount_residual_company"].sum()
    assert meta["aging_chart"].startswith("![Open receivables by aging bucket](data:image/png;base64,")
    assert "current" in meta["totals_company_currency"] and "USD" in meta["totals_invoice_currency"]
    html_path = meta["html_report"]
    assert html_path.startswith(str(tmp_path / "reports")) and html_path.endswith(".html")
    html = open(html_path, encoding="utf-8").read()
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing to fetch
    csv = pd.read_csv(meta["csv_report"])
    assert len(csv) == len(summary) and "90+" in csv.columns

    kpis1 = filled.read("collection_kpis")
    today = kpis1[kpis1["as_of_date"] == pd.Timestamp("2026-03-02")]
    assert set(today["source"]) == {"nightly"}
    ar = today[(today["kpi"] == "ar_total") & (today["company_id"] == 1)]["amount"].iloc[0]
    assert ar == aging.loc[aging["company_id"] == 1, "amount_residual_company"].sum()
    past = kpis1[kpis1["as_of_date"] < pd.Timestamp("2026-03-02")]
    assert len(past) and set(past["source"]) == {"reconstructed"}
    # Every day from the first invoice on is rebuilt once, balances and all (this dataset has no
    # reconciliations: its paid invoices count as open until their last write, and say so).
    invoices = D.invoices()
    first = pd.Timestamp(invoices.loc[invoices["state"] == "posted", "invoice_date"].min())
    assert past["as_of_date"].min() == first and past["as_of_date"].nunique() == (pd.Timestamp("2026-03-02") - first).days
    assert {"ar_total", "dso_count_back", "best_possible_dso", "collection_effectiveness_index"} <= set(past["kpi"])
    history_kpis = past[past["kpi"].isin(kpis_mod.HISTORY_KPIS)]
    assert history_kpis["value"].isna().all()
    assert (history_kpis["note"] == "needs the dunning history, which begins on 2026-03-02").all()
    km = _metadata(day1, "collection_kpis")
    assert km["rows_today"] == len(today) and "dso_count_back" in km["latest"]
    assert km["days_reconstructed"] == past["as_of_date"].nunique() and km["rows_reconstructed"] == len(past)
    assert "moves whose reconciliations do not explain their residual" in km["reconstructed_from"]
    # The first night's CEI starts from the rebuilt balance of 30 days before.
    cei = today[(today["kpi"] == "collection_effectiveness_index") & (today["company_id"] == 1)]
    assert cei["value"].notna().all()
    assert km["dso_chart"].startswith("![DSO, last 90 days](data:image/png;base64,")
    assert km["credit_sales_chart"].startswith("![Credit sales")

    text = "\n".join(console.report_lines(filled, tmp_path / "reports") + console.kpi_lines(filled))
    total_eur = money.format_amount(int(aging.loc[aging["company_id"] == 1, "amount_residual_company"].sum()), "EUR")
    assert f"company 1: open {total_eur}; count-back DSO" in text
    assert f"HTML report: {html_path}" in text

    # Next night: invoice 102 paid; the series gains that day, the first day is untouched.
    invoices = D.invoices()
    invoices.loc[invoices["id"] == 102, ["payment_state", "amount_residual", "amount_residual_signed"]] = ["paid", 0, 0]
    filled.upsert("odoo_invoices", invoices[invoices["id"] == 102])
    _run(filled, "2026-03-03")
    kpis2 = filled.read("collection_kpis")
    assert kpis2[kpis2["as_of_date"] <= pd.Timestamp("2026-03-02")].sort_values(
        ["as_of_date", "company_id", "kpi", "dimension"]).drop(columns=["run_id"]).reset_index(drop=True).equals(
        kpis1.sort_values(["as_of_date", "company_id", "kpi", "dimension"]).drop(columns=["run_id"]).reset_index(drop=True))
    day2 = kpis2[kpis2["as_of_date"] == pd.Timestamp("2026-03-03")]
    assert (day2[(day2["kpi"] == "ar_total") & (day2["company_id"] == 1)]["amount"].iloc[0]
            == ar - 250_50 * 100)  # 250.50 EUR paid

    # The same night again replaces that day's rows only.
    again = _run(filled, "2026-03-03")
    kpis3 = filled.read("collection_kpis")
    assert len(kpis3) == len(kpis2)
    assert set(kpis3.loc[kpis3["as_of_date"] == pd.Timestamp("2026-03-03"), "run_id"]) == {again.run_id}
    assert _metadata(again, "collection_kpis")["rows_reconstructed"] == 0
    assert _metadata(again, "collection_kpis")["days_reconstructed"] == 0


def test_a_chart_that_cannot_be_drawn_costs_nothing_else_and_the_check_catches_a_lost_cent(
        filled, monkeypatch, tmp_path):
    from dunning_pipeline.reporting import charts

    def broken(_chart, scale=1.0):
        raise RuntimeError("renderer unavailable")

    monkeypatch.setattr(charts, "render_png", broken)
    day = _run(filled, "2026-03-02")
    meta = _metadata(day, "ar_aging_report")
    assert "aging_chart" not in meta and meta["dagster/row_count"] > 0
    assert "data:image/png" not in open(meta["html_report"], encoding="utf-8").read()
    assert "dso_chart" not in _metadata(day, "collection_kpis")

    # One cent less in one bucket row: the reconciliation check fails and says where.
    t = filled.table("ar_aging_report_buckets")
    with filled.begin() as conn:
        first = conn.execute(t.select().where(t.c.basis == "invoice").limit(1)).first()
        conn.execute(t.update().where(t.c.company_id == first.company_id, t.c.customer_id == first.customer_id,
                                      t.c.basis == "invoice", t.c.currency == first.currency,
                                      t.c.aging_bucket == first.aging_bucket).values(amount=t.c.amount - 0.01))
    from dunning_pipeline.reporting.report_assets import ar_aging_report_reconciles

    result = ar_aging_report_reconciles(warehouse=WarehouseResource(database_url=filled.url))
    assert result.passed is False and result.metadata["mismatches"].value == 1
    assert "-0.01" in result.metadata["totals"].value

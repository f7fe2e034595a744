"""The report's totals, the latest KPIs and the HTML report's path as plain text lines, for the
demo and an operator's terminal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dunning_pipeline import money
from dunning_pipeline.reporting import report as report_mod
from dunning_pipeline.warehouse.store import Warehouse

KPIS_SHOWN = (("dso_count_back", "count-back DSO", "days"), ("dso_period", "DSO (90-day period)", "days"),
              ("best_possible_dso", "best possible DSO", "days"),
              ("average_days_delinquent", "average days delinquent", "days"),
              ("collection_effectiveness_index", "collection effectiveness index", "%"),
              ("customer_response_rate", "customer response rate", "%"),
              ("reminder_to_payment_days", "reminder-to-payment", "days"))


def report_lines(wh: Warehouse, report_folder: Path) -> list[str]:
    buckets = wh.read("ar_aging_report_buckets")
    if buckets.empty:
        return ["AR aging report: no open receivables"]
    as_of = pd.Timestamp(buckets["as_of_date"].max()).date()
    lines = [f"AR aging report as of {as_of} ({wh.count('ar_aging_report')} customer lines):"]
    for basis, label in ((report_mod.COMPANY, "company currency"), (report_mod.INVOICE, "invoice currency")):
        pivot = report_mod.bucket_pivot(buckets, basis, ["company_id"])
        lines.append(f"  by {label}:")
        for row in pivot.to_dict("records"):
            cells = [f"{k} {money.format_amount(int(v), row['currency'], with_code=False)}"
                     for k, v in row.items() if k not in ("company_id", "currency")]
            lines.append(f"    company {row['company_id']} {row['currency']}: " + ", ".join(cells))
    html = sorted(report_folder.glob(f"ar_aging_report_{as_of.isoformat()}_*.html"), key=lambda p: p.stat().st_mtime)
    if html:
        lines.append(f"  HTML report: {html[-1]}")
    return lines


def kpi_lines(wh: Warehouse) -> list[str]:
    k = wh.table("collection_kpis").c
    series = wh.read("collection_kpis", where=k.source == "nightly")
    if series.empty:
        return ["Collection KPIs: none yet"]
    day = series["as_of_date"].max()
    latest = series[(series["as_of_date"] == day) & (series["dimension"] == "")]
    lines = [f"Collection KPIs as of {day.date()}:"]
    for cid, rows in latest.groupby("company_id"):
        values = rows.set_index("kpi")
        cur = values["company_currency"].dropna().iloc[0] if values["company_currency"].notna().any() else None
        ar = values["amount"].get("ar_total")
        head = f"  company {cid}: open {money.format_amount(int(ar), cur)}" if pd.notna(ar) else f"  company {cid}:"
        cells = []
        for kpi, label, unit in KPIS_SHOWN:
            v = values["value"].get(kpi)
            cells.append(f"{label} {v:.1f}{'%' if unit == '%' else ' days'}" if pd.notna(v) else f"{label} n/a")
        lines.append(head + "; " + ", ".join(cells))
    return lines

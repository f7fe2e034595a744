"""The AR aging report and the collection KPIs as Dagster assets: thin wiring of the pure
`report` and `kpis` modules to the warehouse, the report files and the UI's metadata."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from dunning_pipeline import money, runtime, settings
from dunning_pipeline.dunning import holds as holds_mod
from dunning_pipeline.dunning.communications import customer_contacts
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline.reporting import charts, files, kpis
from dunning_pipeline.reporting import report as report_mod
from dunning_pipeline.warehouse.as_known import read_as_known
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse

GROUP = "reporting"
OWNERS = ["team:finance-data"]
KINDS = {"pandas", "sql"}
INSTALMENT_TABLE = "instalment_aging"
CHART_DAYS = 90
TOP_CUSTOMERS = 10


def read_instalments(wh: Warehouse, as_of: date) -> pd.DataFrame:
    """The instalment aging of the day (written by invoice_aging beside it)."""
    return runtime.read_of_day(wh, INSTALMENT_TABLE, as_of)


def build_report(wh: Warehouse, as_of: date, run_id: str):
    """Summary, buckets and aging of the day (what the asset writes and the check verifies)."""
    policy = load_policy()
    tz = settings.timezone()
    aging = runtime.read_of_day(wh, "invoice_aging", as_of)
    items = report_mod.aged_items(aging, read_instalments(wh, as_of))
    comms = wh.read("customer_communications")
    contacts = customer_contacts(comms).rename(columns={"customer_last_inbound_at": "last_inbound_at",
                                                         "customer_last_outbound_at": "last_outbound_at"})
    customers = read_as_known(wh, "odoo_customers", as_of, columns=["id", "commercial_partner_id"])
    # Running payment promises: entered by accountants, or read from the customer's tickets.
    candidates = [holds_mod.manual_holds(wh.read("dunning_holds"), customers, as_of, tz)]
    if len(comms):
        candidates.append(holds_mod.ticket_holds(comms, tz))
    candidates = [c for c in candidates if len(c)]
    promises = pd.concat(candidates, ignore_index=True) if candidates else None
    summary = report_mod.build_summary(aging, items, as_of, contacts=contacts, promises=promises, run_id=run_id)
    buckets = report_mod.build_buckets(items, policy.all_bucket_labels(), as_of)
    return summary, buckets, aging


def _render(context: dg.AssetExecutionContext, name: str, chart) -> bytes | None:
    """A chart's PNG, or None with a warning: a chart that cannot be drawn never costs the data."""
    try:
        return charts.render_png(chart)
    except Exception as exc:  # the renderer is a native extension: any failure is reported alike
        context.log.warning(f"the {name} could not be rendered ({exc.__class__.__name__}: {exc}); written without it")
        return None


def _money_table(frame: pd.DataFrame, money_cols: list[str], currency: str = "currency") -> str:
    if frame.empty:
        return "_no open receivables_"
    return report_mod.format_money_columns(frame, money_cols, currency).to_markdown(index=False)


def totals_markdown(buckets: pd.DataFrame, basis: str) -> str:
    pivot = report_mod.bucket_pivot(buckets, basis, ["company_id"])
    return _money_table(pivot, [c for c in pivot.columns if c not in ("company_id", "currency")])


def top_customers_markdown(summary: pd.DataFrame, n: int = TOP_CUSTOMERS) -> str:
    top = report_mod.top_customers(summary, n)
    if top.empty:
        return "_no open receivables_"
    shown = top[["company_id", "customer_name", "company_currency", "total_company", "overdue_company",
                 "open_credit_company", "oldest_due_date", "highest_stage", "dunning_status", "hold_reasons",
                 "promised_date"]]
    shown = report_mod.format_money_columns(shown, ["total_company", "overdue_company", "open_credit_company"],
                                            "company_currency")
    return runtime.markdown_preview(shown, rows=n).value


@dg.asset(
    group_name=GROUP, kinds=KINDS | {"html", "csv"}, owners=OWNERS,
    deps=["invoice_aging", "customer_communications", "dunning_holds"],
)
def ar_aging_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The AR aging report for finance managers, per customer (commercial partner) and company.

    Buckets in company currency and, per invoice currency, in invoice currency (instalments in
    their own buckets when `instalment_aging` exists); total, current, overdue, open credit,
    oldest due date, highest stage, hold and why, running payment promise, last inbound and
    outbound contact. Tables `ar_aging_report` and `ar_aging_report_buckets`; per run also a CSV
    and a self-contained HTML file under DUNNING_REPORT_DIR (default $DAGSTER_HOME/reports).
    The totals per company and currency reconcile with invoice_aging to the cent (checked).
    """
    as_of = runtime.run_as_of(context)
    wh = warehouse.get_warehouse()
    summary, buckets, _aging = build_report(wh, as_of, context.run_id)
    with wh.begin() as conn:
        wh.replace("ar_aging_report", summary, conn=conn)
        wh.replace("ar_aging_report_buckets", buckets, conn=conn)
    png = _render(context, "aging chart", charts.aging_distribution_chart(buckets, as_of.isoformat())) if len(buckets) else None
    written = files.write_report(files.report_folder(), as_of=as_of, run_id=context.run_id, summary=summary,
                                 buckets=buckets, png=png)
    context.log.info(f"wrote {len(summary)} report rows; HTML report at {written.html}")
    metadata = {
        "dagster/row_count": len(summary),
        "dagster/column_schema": runtime.column_schema(summary),
        "as_of_date": as_of.isoformat(),
        "customers": int(summary["customer_id"].nunique()) if len(summary) else 0,
        "bucket_rows": len(buckets),
        "totals_company_currency": dg.MetadataValue.md(totals_markdown(buckets, report_mod.COMPANY)),
        "totals_invoice_currency": dg.MetadataValue.md(totals_markdown(buckets, report_mod.INVOICE)),
        "top_customers": dg.MetadataValue.md(top_customers_markdown(summary)),
        "html_report": dg.MetadataValue.path(str(written.html)),
        "csv_report": dg.MetadataValue.path(str(written.csv)),
    }
    if png is not None:
        metadata["aging_chart"] = dg.MetadataValue.md(charts.markdown_image(png, "Open receivables by aging bucket"))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=ar_aging_report, description=(
    "The report's totals per company and currency, in company currency and in invoice currency, "
    "equal invoice_aging's to the cent; each company's customer totals add up to its buckets."))
def ar_aging_report_reconciles(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get_warehouse()
    summary = wh.read("ar_aging_report")
    buckets = wh.read("ar_aging_report_buckets")
    aging = wh.read("invoice_aging", columns=["invoice_id", "company_id", "currency", "company_currency",
                                              "amount_residual", "amount_residual_company"])
    result = report_mod.reconcile(summary, buckets, aging)
    table = result.table.copy()
    for col in ("report", "aging", "difference"):
        table[col] = money.format_column(table[col], table["currency"])
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"totals": dg.MetadataValue.md(table.to_markdown(index=False) if len(table) else "_none_"),
                  "mismatches": int((result.table["difference"] != 0).sum()),
                  "companies_whose_customers_do_not_add_up": len(result.summary_differences)},
    )


# -- collection_kpis ---------------------------------------------------------------------------
_HISTORY_COLUMNS = ["invoice_id", "customer_id", "company_id", "to_stage", "reason", "action", "manual_only",
                    "as_of_date"]


def compute_kpis(wh: Warehouse, as_of: date, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the as-of day, reconstructed rows of earlier days missing from the series)."""
    policy = load_policy()
    tz = settings.timezone()
    aging = runtime.read_of_day(wh, "invoice_aging", as_of)
    aging = aging.assign(company_id=aging["company_id"].astype("Int64").fillna(-1).astype("int64"))
    invoices = read_as_known(wh, "odoo_invoices", as_of, columns=[
        "company_id", "company_currency", "state", "invoice_date", "amount_total_signed"])
    sales = kpis.sales_frame(invoices)
    h = wh.table("dunning_history").c
    history = wh.read("dunning_history", columns=_HISTORY_COLUMNS, where=h.as_of_date <= as_of)
    history = history.assign(company_id=history["company_id"].astype("Int64").fillna(-1).astype("int64"))
    inbound = kpis.inbound_messages(
        read_as_known(wh, "zendesk_tickets", as_of, columns=["id", "requester_id", "created_at"]),
        read_as_known(wh, "zendesk_comments", as_of, columns=["ticket_id", "author_id", "public", "created_at"]),
        read_as_known(wh, "zendesk_users", as_of, columns=["id", "role"]),
        wh.read("customer_communications", columns=["ticket_id", "customer_id"]), tz)
    inbound = inbound[pd.to_datetime(inbound["day"]) <= pd.Timestamp(as_of)]
    k = wh.table("collection_kpis").c
    earlier = wh.read("collection_kpis", columns=["as_of_date", "company_id", "kpi", "amount", "source"],
                      where=sa.and_(k.as_of_date < as_of, k.as_of_date >= as_of - timedelta(days=CHART_DAYS)))
    currency = pd.concat([
        aging[["company_id", "company_currency"]],
        invoices.assign(company_id=invoices["company_id"].astype("Int64").fillna(-1).astype("int64"))[
            ["company_id", "company_currency"]]]).dropna().drop_duplicates("company_id").set_index("company_id")["company_currency"]
    companies = sorted(set(aging["company_id"]) | set(sales["company_id"]) | set(history["company_id"]))
    buckets = policy.all_bucket_labels()
    today, past = [], []
    begin_day = pd.Timestamp(as_of - timedelta(days=kpis.CEI_PERIOD_DAYS))
    for cid in companies:
        cur = currency.get(cid)
        mine = earlier[earlier["company_id"] == cid]
        begin = mine[(mine["as_of_date"] == begin_day) & (mine["kpi"] == "ar_total") & (mine["source"] == kpis.NIGHTLY)]
        rows = kpis.day_kpis(as_of=as_of, sales=sales[sales["company_id"] == cid], aging=aging[aging["company_id"] == cid],
                             history=history[history["company_id"] == cid], inbound=inbound, bucket_order=buckets,
                             begin_ar=int(begin["amount"].iloc[0]) if len(begin) else None)
        today.append(kpis.to_frame(rows, as_of=as_of, company_id=cid, company_currency=cur, source=kpis.NIGHTLY))
        have = set(pd.to_datetime(mine["as_of_date"]).dt.date)
        for back in range(CHART_DAYS - 1, 0, -1):
            day = as_of - timedelta(days=back)
            if day in have:
                continue
            rows = kpis.reconstructed_kpis(as_of=day, sales=sales[sales["company_id"] == cid],
                                           history=history[history["company_id"] == cid], inbound=inbound)
            past.append(kpis.to_frame(rows, as_of=day, company_id=cid, company_currency=cur, source=kpis.RECONSTRUCTED))
    empty = kpis.to_frame([], as_of=as_of, company_id=0, company_currency=None, source=kpis.NIGHTLY)
    out_today = pd.concat(today, ignore_index=True) if today else empty
    out_past = pd.concat(past, ignore_index=True) if past else empty
    return out_today.assign(run_id=run_id), out_past.assign(run_id=run_id)


def latest_markdown(rows: pd.DataFrame) -> str:
    """The day's KPIs, one column per company."""
    if rows.empty:
        return "_no companies_"
    shown = rows[rows["dimension"] == ""].copy()
    shown["shown"] = [
        money.format_amount(int(a), c) if pd.notna(a) else ("" if pd.isna(v) else f"{v:,.1f}")
        for a, v, c in zip(shown["amount"], shown["value"], shown["company_currency"], strict=True)]
    table = shown.pivot_table(index="kpi", columns="company_id", values="shown", aggfunc="first", sort=False)
    table.columns = [f"company {c}" for c in table.columns]
    return table.reset_index().to_markdown(index=False)


def dimension_markdown(rows: pd.DataFrame, kpi: str) -> str:
    sub = rows[(rows["kpi"] == kpi) & (rows["dimension"] != "")]
    if sub.empty:
        notes = rows.loc[rows["kpi"] == kpi, "note"].dropna()
        return f"_{notes.iloc[0]}_" if len(notes) else "_none_"
    shown = sub[["company_id", "dimension", "value", "amount", "numerator", "denominator", "company_currency"]].copy()
    shown["amount"] = money.format_column(shown["amount"], shown["company_currency"])
    shown = shown.drop(columns=["company_currency"]).dropna(axis=1, how="all")
    return shown.to_markdown(index=False, floatfmt=".1f")


@dg.asset(group_name=GROUP, kinds=KINDS, owners=OWNERS, deps=["invoice_aging", "dunning_history", "odoo_invoices",
                                                               "zendesk_comments", "customer_communications"])
def collection_kpis(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Collection KPIs per company in company currency, a daily series kept across nights.

    Count-back DSO, period DSO, best possible DSO, average days delinquent, collection
    effectiveness index (CRF form), collection success rate per stage, customer response rate,
    reminder-to-payment days, aging distribution, with the balances and credit sales they use
    (formulas and conventions in `dunning_pipeline.reporting.kpis`). A run replaces the rows of
    its as-of day only; days of the last 90 that the series lacks get the values that dated
    source records give exactly (credit sales, history-based KPIs), marked `reconstructed`.
    """
    as_of = runtime.run_as_of(context)
    wh = warehouse.get_warehouse()
    today, past = compute_kpis(wh, as_of, context.run_id)
    k = wh.table("collection_kpis").c
    with wh.begin() as conn:
        wh.replace("collection_kpis", today, where=k.as_of_date == as_of, conn=conn)
        if len(past):
            wh.append("collection_kpis", past, conn=conn)
    context.log.info(f"wrote {len(today)} KPI rows for {as_of} and {len(past)} reconstructed rows of earlier days")
    series = wh.read("collection_kpis", where=sa.and_(k.as_of_date > as_of - timedelta(days=CHART_DAYS),
                                                        k.as_of_date <= as_of))
    metadata = {
        "dagster/row_count": wh.count("collection_kpis"),
        "as_of_date": as_of.isoformat(),
        "rows_today": len(today),
        "rows_reconstructed": len(past),
        "days_in_series": int(series["as_of_date"].nunique()) if len(series) else 0,
        "latest": dg.MetadataValue.md(latest_markdown(today)),
        "collection_success_rate": dg.MetadataValue.md(dimension_markdown(today, "collection_success_rate")),
        "aging_distribution": dg.MetadataValue.md(dimension_markdown(today, "aging_distribution")),
        "notes": dg.MetadataValue.md(
            today[today["note"].notna()][["company_id", "kpi", "note"]].drop_duplicates().to_markdown(index=False)
            if today["note"].notna().any() else "_none_"),
    }
    for kpi in ("dso_count_back", "best_possible_dso", "average_days_delinquent"):
        value = today.loc[(today["kpi"] == kpi) & (today["dimension"] == ""), "value"].dropna()
        if len(value) == 1:
            metadata[kpi] = dg.MetadataValue.float(round(float(value.iloc[0]), 2))
    trend = series[series["kpi"].isin(["dso_count_back", "best_possible_dso", "average_days_delinquent"])
                   & series["value"].notna()]
    if len(trend):
        png = _render(context, "DSO chart", charts.kpi_trend_chart(
            series, ("dso_count_back", "best_possible_dso", "average_days_delinquent"), f"DSO, last {CHART_DAYS} days"))
        if png is not None:
            metadata["dso_chart"] = dg.MetadataValue.md(charts.markdown_image(png, f"DSO, last {CHART_DAYS} days"))
    sales = series[(series["kpi"] == "credit_sales_30d") & series["amount"].notna()]
    if len(sales):
        frame = sales.assign(value=sales["amount"].astype("int64") / money.SCALE)
        png = _render(context, "credit sales chart", charts.kpi_trend_chart(
            frame, ("credit_sales_30d",), "Credit sales, trailing 30 days", y_title="company currency"))
        if png is not None:
            metadata["credit_sales_chart"] = dg.MetadataValue.md(charts.markdown_image(png, "Credit sales, trailing 30 days"))
    return dg.MaterializeResult(metadata=metadata)


def latest_aging_chart(wh: Warehouse) -> tuple[bytes, date] | None:
    """The aging chart of the report last written (for the weekly Slack alert), or None when no
    report was written yet."""
    if not sa.inspect(wh.engine).has_table("ar_aging_report_buckets"):
        return None
    buckets = wh.read("ar_aging_report_buckets")
    if buckets.empty:
        return None
    as_of = pd.Timestamp(buckets["as_of_date"].max()).date()
    return charts.render_png(charts.aging_distribution_chart(buckets, as_of.isoformat())), as_of


ASSETS = [ar_aging_report, collection_kpis]
ASSET_CHECKS = [ar_aging_report_reconciles]

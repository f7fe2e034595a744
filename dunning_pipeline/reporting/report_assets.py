"""The AR aging report and the collection KPIs as Dagster assets: thin wiring of the pure
`report` and `kpis` modules to the warehouse, the report files and the UI's metadata."""

from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import sqlalchemy as sa

from dunning_pipeline import lazy, money, runtime, settings
from dunning_pipeline.check_severity import SeverityRule
from dunning_pipeline.partitions import as_of_days
from dunning_pipeline.reporting import charts, files
from dunning_pipeline.reporting import report as report_mod
from dunning_pipeline.warehouse.as_known import read_as_known
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py); the
# dunning core and the KPI modules built on it are imported in the functions that use them.
pd = lazy.module("pandas")

GROUP = "reporting"
OWNERS = ["team:finance-data"]
KINDS = {"pandas", "sql"}
INSTALMENT_TABLE = "instalment_aging"
CHART_DAYS = 90
TOP_CUSTOMERS = 10


def read_instalments(wh: Warehouse, as_of: date) -> "pd.DataFrame":
    """The instalment aging of the day (written by invoice_aging beside it)."""
    return runtime.read_of_day(wh, INSTALMENT_TABLE, as_of)


def build_report(wh: Warehouse, as_of: date, run_id: str):
    """Summary, buckets and aging of the day (what the asset writes and the check verifies)."""
    from dunning_pipeline.dunning import holds as holds_mod
    from dunning_pipeline.dunning.communications import customer_contacts
    from dunning_pipeline.dunning.policy import load_policy

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


def _money_table(frame: "pd.DataFrame", money_cols: list[str], currency: str = "currency") -> str:
    if frame.empty:
        return "_no open receivables_"
    return report_mod.format_money_columns(frame, money_cols, currency).to_markdown(index=False)


def totals_markdown(buckets: "pd.DataFrame", basis: str) -> str:
    pivot = report_mod.bucket_pivot(buckets, basis, ["company_id"])
    return _money_table(pivot, [c for c in pivot.columns if c not in ("company_id", "currency")])


def top_customers_markdown(summary: "pd.DataFrame", n: int = TOP_CUSTOMERS) -> str:
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
    partitions_def=as_of_days,
)
@runtime.serialized_step
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
        for table in ("ar_aging_report", "ar_aging_report_buckets"):
            runtime.record_build(context, wh, conn, table, as_of, inputs=("invoice_aging", INSTALMENT_TABLE))
    png = _render(context, "aging chart", charts.aging_distribution_chart(buckets, as_of.isoformat())) if len(buckets) else None
    written = files.write_report(files.report_folder(), as_of=as_of, run_id=context.run_id, summary=summary,
                                 buckets=buckets, png=png)
    context.log.info(f"wrote {len(summary)} report rows; HTML report at {written.html}")
    metadata = {
        "dagster/row_count": len(summary),
        "dagster/column_schema": runtime.column_schema("ar_aging_report"),
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


REPORT_RECONCILES = SeverityRule(error_when="a total differs from invoice_aging's, or a company's customers from "
                                            "its buckets, by as much as a cent")


# Not blocking: nothing downstream reads the report, and its files are already written.
@dg.asset_check(asset=ar_aging_report, metadata=REPORT_RECONCILES.metadata(), description=REPORT_RECONCILES.describe(
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


@dataclass
class KpiRun:
    today: "pd.DataFrame"  # rows of the as-of day
    past: "pd.DataFrame"  # rows of the earlier days the series lacked, rebuilt (kpi_history)
    days: list[date]  # those days
    rebuilt_from: str  # what they were rebuilt from (for the metadata)


def _series_balances(wh: Warehouse, since: date, as_of: date) -> "pd.DataFrame":
    """The ar_total rows the series holds for [since, as_of): the days it has, per company."""
    k = wh.table("collection_kpis").c
    return wh.read("collection_kpis", columns=["as_of_date", "company_id", "amount"],
                   where=sa.and_(k.kpi == "ar_total", k.dimension == "", k.as_of_date >= since, k.as_of_date < as_of))


def _ledger(wh: Warehouse, invoices: "pd.DataFrame", policy) -> "kpi_history.Ledger":
    from dunning_pipeline.dunning.receivables import quarantined_ids
    from dunning_pipeline.reporting import kpi_history

    quarantine = wh.read("data_quality_quarantine", columns=["asset", "record_id"])
    lines = wh.read("odoo_receivable_lines", columns=kpi_history.LINE_COLUMNS)
    lines = lines[~lines["id"].isin(quarantined_ids(quarantine, "odoo_receivable_lines"))]
    # A reconciliation a check holds back, or one a field of which did not parse, settles nothing:
    # its move then counts as inexact (today's residual from its last write on).
    recs = wh.read("odoo_reconciliations", columns=["id", "parse_error", *kpi_history.RECONCILIATION_COLUMNS])
    recs = recs[~recs["id"].isin(quarantined_ids(quarantine, "odoo_reconciliations")) & recs["parse_error"].isna()]
    return kpi_history.prepare(
        invoices, lines, recs, policy,
        excluded_invoices=sorted(quarantined_ids(quarantine, "odoo_invoices")),
        excluded_partners=sorted(quarantined_ids(quarantine, "odoo_customers")))


def compute_kpis(wh: Warehouse, as_of: date, run_id: str, history_months: int | None = None) -> KpiRun:
    """The rows of the as-of day, and of every earlier day within `history_months`
    (DUNNING_KPI_HISTORY_MONTHS) from the company's first invoice on that the series lacks,
    rebuilt from Odoo's dated records as a nightly run would have computed them."""
    from dunning_pipeline.dunning.policy import load_policy
    from dunning_pipeline.reporting import kpi_history, kpis

    policy = load_policy()
    tz = settings.timezone()
    months = settings.kpi_history_months() if history_months is None else history_months
    aging = runtime.read_of_day(wh, "invoice_aging", as_of)
    aging = aging.assign(company_id=aging["company_id"].astype("Int64").fillna(-1).astype("int64"))
    invoices = read_as_known(wh, "odoo_invoices", as_of, columns=[*kpi_history.INVOICE_COLUMNS, "company_currency"])
    sales = kpis.sales_frame(invoices)
    h = wh.table("dunning_history").c
    history = wh.read("dunning_history", columns=_HISTORY_COLUMNS, where=h.as_of_date <= as_of)
    history = history.assign(company_id=history["company_id"].astype("Int64").fillna(-1).astype("int64"))
    history_start = pd.Timestamp(history["as_of_date"].min()) if len(history) else None
    inbound = kpis.inbound_messages(
        read_as_known(wh, "zendesk_tickets", as_of, columns=["id", "requester_id", "created_at"]),
        read_as_known(wh, "zendesk_comments", as_of, columns=["ticket_id", "author_id", "public", "created_at"]),
        read_as_known(wh, "zendesk_users", as_of, columns=["id", "role"]),
        wh.read("customer_communications", columns=["ticket_id", "customer_id"]), tz)
    inbound = inbound[pd.to_datetime(inbound["day"]) <= pd.Timestamp(as_of)]
    currency = pd.concat([
        aging[["company_id", "company_currency"]],
        invoices.assign(company_id=invoices["company_id"].astype("Int64").fillna(-1).astype("int64"))[
            ["company_id", "company_currency"]]]).dropna().drop_duplicates("company_id").set_index("company_id")["company_currency"]
    companies = sorted(set(aging["company_id"]) | set(sales["company_id"]) | set(history["company_id"]))
    buckets = policy.all_bucket_labels()
    by_company = {cid: (sales[sales["company_id"] == cid], history[history["company_id"] == cid]) for cid in companies}

    # The balances of earlier days (CEI needs the one CEI_PERIOD_DAYS back), and the days to rebuild.
    since = (pd.Timestamp(as_of) - pd.DateOffset(months=months)).date()
    recorded = _series_balances(wh, min(since, as_of - timedelta(days=kpis.CEI_PERIOD_DAYS)), as_of)
    balance = {(int(r.company_id), pd.Timestamp(r.as_of_date).date()): int(r.amount)
               for r in recorded.itertuples() if pd.notna(r.amount)}
    missing: dict[date, list[int]] = {}
    for cid in companies if months > 0 else []:
        mine = by_company[cid][0]
        if mine.empty:
            continue
        first = max(since, pd.Timestamp(mine["invoice_date"].min()).date())
        for n in range((as_of - first).days):
            day = first + timedelta(days=n)
            if (cid, day) not in balance:
                missing.setdefault(day, []).append(cid)

    def rows_of(cid: int, day: date, day_aging: "pd.DataFrame", source: str) -> list[dict]:
        day_sales, day_history = by_company[cid]
        # A past day before the history began: the history-based KPIs cannot be known for it.
        before = source == kpis.RECONSTRUCTED and (history_start is None or pd.Timestamp(day) < history_start)
        note = None if not before else (
            f"needs the dunning history, which begins on {history_start.date()}" if history_start is not None
            else "needs the dunning history, which has not begun")
        if not before:
            day_history = day_history[pd.to_datetime(day_history["as_of_date"]) <= pd.Timestamp(day)]
        rows = kpis.day_kpis(
            as_of=day, sales=day_sales, aging=day_aging[day_aging["company_id"] == cid], history=day_history,
            inbound=inbound if before else inbound[pd.to_datetime(inbound["day"]) <= pd.Timestamp(day)],
            bucket_order=buckets, begin_ar=balance.get((cid, day - timedelta(days=kpis.CEI_PERIOD_DAYS))),
            no_history=note)
        balance[(cid, day)] = next(int(r["amount"]) for r in rows if r["kpi"] == "ar_total")
        return kpis.keyed(rows, as_of=day, company_id=cid, company_currency=currency.get(cid), source=source)

    past: list[dict] = []
    rebuilt_from = "nothing: the series has every day"
    if missing:
        ledger = _ledger(wh, invoices, policy)
        for day, day_aging in kpi_history.snapshots(ledger, sorted(missing), policy):
            for cid in missing[day]:
                past += rows_of(cid, day, day_aging, kpis.RECONSTRUCTED)
        rebuilt_from = (f"{len(ledger.moves)} invoices and credit notes (invoice dates, amounts), "
                        f"{len(ledger.lines)} receivable lines (due dates), {ledger.reconciliations_used} "
                        "reconciliation sides (account.partial.reconcile, dated by max_date)"
                        + (f"; {ledger.inexact} moves whose reconciliations do not explain their residual "
                           "taken at their full amount until their last write" if ledger.inexact else ""))
    today = [r for cid in companies for r in rows_of(cid, as_of, aging, kpis.NIGHTLY)]
    out_today, out_past = kpis.typed_frame(today), kpis.typed_frame(past)
    return KpiRun(out_today.assign(run_id=run_id), out_past.assign(run_id=run_id), sorted(missing), rebuilt_from)


def latest_markdown(rows: "pd.DataFrame") -> str:
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


def dimension_markdown(rows: "pd.DataFrame", kpi: str) -> str:
    sub = rows[(rows["kpi"] == kpi) & (rows["dimension"] != "")]
    if sub.empty:
        notes = rows.loc[rows["kpi"] == kpi, "note"].dropna()
        return f"_{notes.iloc[0]}_" if len(notes) else "_none_"
    shown = sub[["company_id", "dimension", "value", "amount", "numerator", "denominator", "company_currency"]].copy()
    shown["amount"] = money.format_column(shown["amount"], shown["company_currency"])
    shown = shown.drop(columns=["company_currency"]).dropna(axis=1, how="all")
    return shown.to_markdown(index=False, floatfmt=".1f")


@dg.asset(group_name=GROUP, kinds=KINDS, owners=OWNERS, deps=["invoice_aging", "dunning_history", "odoo_invoices",
                                                               "odoo_receivable_lines", "odoo_reconciliations",
                                                               "zendesk_comments", "customer_communications"],
          partitions_def=as_of_days)
@runtime.serialized_step
def collection_kpis(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Collection KPIs per company in company currency, a daily series kept across nights.

    Count-back DSO, period DSO, best possible DSO, average days delinquent, collection
    effectiveness index (CRF form), collection success rate per stage, customer response rate,
    reminder-to-payment days, aging distribution, with the balances and credit sales they use
    (formulas and conventions in `dunning_pipeline.reporting.kpis`). A run replaces the rows of
    its as-of day only. The days before that the series lacks, back to DUNNING_KPI_HISTORY_MONTHS
    (default 24) or the first invoice, are rebuilt once from Odoo's dated records (invoice dates,
    reconciliation dates: `kpi_history`) and computed as a nightly run would have, marked
    `reconstructed`; the history-based KPIs of days before the dunning history began stay empty,
    with a note.
    """
    as_of = runtime.run_as_of(context)
    wh = warehouse.get_warehouse()
    run = compute_kpis(wh, as_of, context.run_id)
    today, past = run.today, run.past
    k = wh.table("collection_kpis").c
    with wh.begin() as conn:
        wh.replace("collection_kpis", today, where=k.as_of_date == as_of, conn=conn)
        for cid, days in past.groupby("company_id")["as_of_date"]:
            days = sorted(set(pd.to_datetime(days).dt.date))
            for i in range(0, len(days), 500):  # rows of a day without a balance (older series) are replaced
                wh.delete("collection_kpis", sa.and_(k.company_id == int(cid), k.as_of_date.in_(days[i:i + 500])),
                          conn=conn)
        if len(past):
            wh.append("collection_kpis", past, conn=conn)
        runtime.record_build(context, wh, conn, "collection_kpis", as_of, inputs=("invoice_aging", "dunning_history"))
    context.log.info(f"wrote {len(today)} KPI rows for {as_of} and {len(past)} rows of {len(run.days)} earlier"
                     f" days rebuilt from {run.rebuilt_from}")
    series = wh.read("collection_kpis", where=sa.and_(k.as_of_date > as_of - timedelta(days=CHART_DAYS),
                                                        k.as_of_date <= as_of))
    metadata = {
        "dagster/row_count": wh.count("collection_kpis"),
        "dagster/column_schema": runtime.column_schema("collection_kpis"),
        "as_of_date": as_of.isoformat(),
        "rows_today": len(today),
        "rows_reconstructed": len(past),
        "days_reconstructed": len(run.days),
        "reconstructed_days": f"{run.days[0]} to {run.days[-1]}" if run.days else "none",
        "reconstructed_from": run.rebuilt_from,
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

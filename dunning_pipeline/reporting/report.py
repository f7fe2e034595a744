"""The AR aging report: per customer (commercial partner) and company, as of a day. Pure pandas.

From the aging table (one row per open invoice and credit note) and, when it exists, the
instalment aging (one row per open instalment: an invoice paid in three instalments is spread
over the buckets of its instalments, not put whole into the bucket of its oldest one):

- `build_buckets`: the residual per customer, company and bucket, in company currency
  (`basis` company) and, per invoice currency, in invoice currency (`basis` invoice);
- `build_summary`: per customer and company, in company currency: total, current, overdue,
  open credit, oldest due date, highest stage, hold and why, payment promise, last contacts;
- `company_totals`: totals per company and currency, which must equal the aging table's to the
  cent (`reconcile`).

Amounts are int64 units of 1/10,000 (`dunning_pipeline.money`); credit notes are negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from dunning_pipeline import lazy, money

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

NO_COMPANY = -1  # receivables without a company still get a row
COMPANY, INVOICE = "company", "invoice"
CREDIT_NOTE = "out_refund"
SUMMARY_COLUMNS = [
    "company_id", "customer_id", "customer_name", "company_currency", "currencies", "open_items",
    "total_company", "current_company", "overdue_company", "open_credit_company", "oldest_due_date",
    "max_days_overdue", "highest_stage", "dunning_status", "invoices_on_hold", "on_hold_company",
    "hold_reasons", "promised_date", "last_inbound_at", "last_outbound_at", "as_of_date", "run_id",
]
BUCKET_COLUMNS = ["company_id", "customer_id", "basis", "currency", "aging_bucket", "bucket_order",
                  "amount", "items", "as_of_date"]


def _company(frame: pd.DataFrame) -> pd.Series:
    return frame["company_id"].astype("Int64").fillna(NO_COMPANY).astype("int64")


def aged_items(aging: pd.DataFrame, instalments: pd.DataFrame | None = None) -> pd.DataFrame:
    """The amounts to put into buckets: one row per open instalment of the invoices that have
    instalment rows, one row per invoice or credit note for the others. Columns: invoice_id,
    company_id, customer_id, currency, company_currency, aging_bucket, due_date, days_overdue,
    amount_residual, amount_residual_company. Per invoice the instalments add up to its
    residuals (contract of `instalment_aging`), so the totals are those of the aging table."""
    due_col = "due_date" if "due_date" in aging.columns else "invoice_date_due"
    base = pd.DataFrame({
        "invoice_id": aging["invoice_id"].astype("int64"),
        "company_id": _company(aging),
        "customer_id": aging["customer_id"].astype("int64"),
        "currency": aging["currency"].astype(object),
        "company_currency": aging["company_currency"].astype(object),
        "move_type": aging["move_type"].astype(object),
        "aging_bucket": aging["aging_bucket"].astype(object),
        "due_date": pd.to_datetime(aging[due_col].fillna(aging["invoice_date_due"])),
        "days_overdue": aging["days_overdue"].astype("int64"),
        "amount_residual": aging["amount_residual"].astype("int64"),
        "amount_residual_company": aging["amount_residual_company"].astype("int64"),
    })
    if instalments is None or instalments.empty:
        return base
    inst = instalments[instalments["invoice_id"].astype("int64").isin(base["invoice_id"])]
    split = pd.DataFrame({
        "invoice_id": inst["invoice_id"].astype("int64"),
        "aging_bucket": inst["aging_bucket"].astype(object),
        "due_date": pd.to_datetime(inst["date_maturity"]),
        "days_overdue": inst["days_overdue"].astype("int64"),
        "amount_residual": inst["amount_residual"].astype("int64"),
        "amount_residual_company": inst["amount_residual_company"].astype("int64"),
    })
    # Company, customer and currencies come from the invoice's own row, so the report cannot
    # put an instalment under another customer than its invoice.
    keys = base.drop(columns=["aging_bucket", "due_date", "days_overdue", "amount_residual",
                              "amount_residual_company"]).drop_duplicates("invoice_id")
    split = split.merge(keys, on="invoice_id", how="inner")
    whole = base[~base["invoice_id"].isin(split["invoice_id"])]
    return pd.concat([whole, split[base.columns]], ignore_index=True)


def build_buckets(items: pd.DataFrame, bucket_order: tuple[str, ...], as_of: date) -> pd.DataFrame:
    """Residual per (company, customer, basis, currency, bucket) with the count of items."""
    order = {b: i for i, b in enumerate(bucket_order)}
    parts = []
    for basis, currency_col, amount_col in ((COMPANY, "company_currency", "amount_residual_company"),
                                           (INVOICE, "currency", "amount_residual")):
        grouped = (items.groupby(["company_id", "customer_id", currency_col, "aging_bucket"], dropna=False)
                   .agg(amount=(amount_col, "sum"), items=(amount_col, "size")).reset_index()
                   .rename(columns={currency_col: "currency"}))
        grouped["basis"] = basis
        parts.append(grouped)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=BUCKET_COLUMNS)
    out["bucket_order"] = out["aging_bucket"].map(order).fillna(len(order)).astype("int64")
    out["amount"] = out["amount"].astype("int64")
    out["items"] = out["items"].astype("int64")
    out["as_of_date"] = pd.Timestamp(as_of)
    return (out[BUCKET_COLUMNS].sort_values(["company_id", "customer_id", "basis", "currency", "bucket_order"])
            .reset_index(drop=True))


def _promises(promises: pd.DataFrame | None, aging: pd.DataFrame, as_of: date) -> pd.Series:
    """(company, customer) -> latest running promise date, from hold candidates (customer_id or
    invoice_id, reason, until): manual promises and those read from tickets."""
    if promises is None or promises.empty:
        return pd.Series(dtype="datetime64[s]")
    p = promises[(promises["reason"] == "promise") & (pd.to_datetime(promises["until"]) >= pd.Timestamp(as_of))]
    inv = aging.set_index(aging["invoice_id"].astype("int64"))
    by_invoice = p[p["invoice_id"].notna()]
    rows = [pd.DataFrame({
        "company_id": _company(inv).reindex(by_invoice["invoice_id"].astype("int64")).to_numpy(),
        "customer_id": inv["customer_id"].reindex(by_invoice["invoice_id"].astype("int64")).to_numpy(),
        "until": pd.to_datetime(by_invoice["until"]).to_numpy()})]
    by_customer = p[p["invoice_id"].isna() & p["customer_id"].notna()]
    companies = pd.DataFrame({"customer_id": aging["customer_id"].astype("int64"), "company_id": _company(aging)})
    rows.append(pd.DataFrame({"customer_id": by_customer["customer_id"].astype("int64").to_numpy(),
                              "until": pd.to_datetime(by_customer["until"]).to_numpy()})
                .merge(companies.drop_duplicates(), on="customer_id"))
    found = pd.concat(rows, ignore_index=True).dropna(subset=["customer_id", "company_id", "until"])
    if found.empty:
        return pd.Series(dtype="datetime64[s]")
    found = found.astype({"customer_id": "int64", "company_id": "int64"})
    return found.groupby(["company_id", "customer_id"])["until"].max()


def _joined(frame: pd.DataFrame, key: list[str], col: str) -> pd.Series:
    """The distinct values of `col` per key, sorted and comma-separated (one join per key on
    the few distinct values, not on every row)."""
    distinct = frame[[*key, col]].dropna().drop_duplicates().sort_values([*key, col])
    joined: dict[tuple, str] = {}
    # A plain loop over the distinct values: pandas' per-group aggregation of strings is ~50x slower.
    for k, v in zip(zip(*(distinct[c].to_numpy() for c in key)), distinct[col].to_numpy(), strict=True):
        joined[k] = f"{joined[k]}, {v}" if k in joined else str(v)
    index = pd.MultiIndex.from_tuples(list(joined), names=key) if joined else pd.MultiIndex.from_arrays([[]] * len(key), names=key)
    return pd.Series(list(joined.values()), index=index, dtype=object)


def build_summary(
    aging: pd.DataFrame,
    items: pd.DataFrame,
    as_of: date,
    *,
    contacts: pd.DataFrame | None = None,
    promises: pd.DataFrame | None = None,
    run_id: str | None = None,
) -> pd.DataFrame:
    """One row per (company, customer); see SUMMARY_COLUMNS and the table's comments.

    The highest stage is that of the highest `stage_rank` (a customer's invoices in one company
    follow one ladder). `contacts`: customer_id, last_inbound_at, last_outbound_at. `promises`: hold
    candidates (see `_promises`)."""
    if aging.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    a = aging.assign(company_id=_company(aging), customer_id=aging["customer_id"].astype("int64"))
    key = ["company_id", "customer_id"]
    g = a.groupby(key, sort=True)
    out = pd.DataFrame({
        "customer_name": g["customer_name"].first(),
        "company_currency": g["company_currency"].first(),
        "currencies": _joined(a, key, "currency"),
        "open_items": g.size(),
        "total_company": g["amount_residual_company"].sum(),
    })
    credit = a["move_type"] == CREDIT_NOTE
    it = items.assign(credit=items["move_type"] == CREDIT_NOTE)
    ig = it.groupby(key)
    amounts = it["amount_residual_company"]
    out["current_company"] = amounts.where(it["days_overdue"] <= 0, 0).groupby([it["company_id"], it["customer_id"]]).sum()
    out["overdue_company"] = amounts.where((it["days_overdue"] > 0) & ~it["credit"], 0).groupby(
        [it["company_id"], it["customer_id"]]).sum()
    out["open_credit_company"] = a["amount_residual_company"].where(credit, 0).groupby([a["company_id"], a["customer_id"]]).sum()
    debit_items = it[~it["credit"] & (it["amount_residual_company"] > 0)]
    out["oldest_due_date"] = debit_items.groupby(key)["due_date"].min()
    out["max_days_overdue"] = ig["days_overdue"].max()

    ranked = a.assign(rank=a["stage_rank"]).dropna(subset=["rank", "stage"])
    out["highest_stage"] = ranked.sort_values("rank", kind="stable").groupby(key)["stage"].last()

    held = a["hold_reason"].notna() & ~credit
    dunnable = ~credit
    n_held = held.groupby([a["company_id"], a["customer_id"]]).sum()
    n_debit = dunnable.groupby([a["company_id"], a["customer_id"]]).sum()
    n_dunned = (a["dunning_status"] == "dunned").groupby([a["company_id"], a["customer_id"]]).sum()
    out["invoices_on_hold"] = n_held
    out["on_hold_company"] = a["amount_residual_company"].where(held, 0).groupby([a["company_id"], a["customer_id"]]).sum()
    out["hold_reasons"] = _joined(a[held], key, "hold_reason")
    out["dunning_status"] = np.select(
        [(n_held > 0) & (n_held == n_debit), n_held > 0, n_dunned > 0],
        ["on_hold", "partly_on_hold", "dunned"], default="not_in_dunning")
    out["promised_date"] = _promises(promises, aging, as_of).reindex(out.index)

    out = out.reset_index()
    for col in ("last_inbound_at", "last_outbound_at"):
        out[col] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us]")
    if contacts is not None and len(contacts):
        c = contacts.dropna(subset=["customer_id"]).drop_duplicates("customer_id")
        c = c.set_index(c["customer_id"].astype("int64"))
        for col in ("last_inbound_at", "last_outbound_at"):
            out[col] = c[col].astype("datetime64[us]").reindex(out["customer_id"]).to_numpy()
    for col in ("total_company", "current_company", "overdue_company", "open_credit_company",
                "on_hold_company", "invoices_on_hold", "open_items"):
        out[col] = out[col].fillna(0).astype("int64")
    out["max_days_overdue"] = out["max_days_overdue"].astype("int64")
    out["as_of_date"] = pd.Timestamp(as_of)
    out["run_id"] = run_id
    return out[SUMMARY_COLUMNS]


def company_totals(buckets: pd.DataFrame) -> pd.DataFrame:
    """Per company, basis and currency: the report's total (int64 units)."""
    if buckets.empty:
        return pd.DataFrame(columns=["company_id", "basis", "currency", "total"])
    return (buckets.groupby(["company_id", "basis", "currency"])["amount"].sum().astype("int64")
            .rename("total").reset_index())


def aging_totals(aging: pd.DataFrame) -> pd.DataFrame:
    """The same totals straight from the aging table: what the report must add up to."""
    if aging.empty:
        return pd.DataFrame(columns=["company_id", "basis", "currency", "total"])
    a = aging.assign(company_id=_company(aging))
    parts = []
    for basis, cur, amount in ((COMPANY, "company_currency", "amount_residual_company"),
                               (INVOICE, "currency", "amount_residual")):
        t = a.groupby(["company_id", cur])[amount].sum().astype("int64").rename("total").reset_index()
        parts.append(t.rename(columns={cur: "currency"}).assign(basis=basis))
    return pd.concat(parts, ignore_index=True)[["company_id", "basis", "currency", "total"]]


@dataclass(frozen=True)
class Reconciliation:
    table: pd.DataFrame  # company_id, basis, currency, report, aging, difference
    summary_differences: pd.DataFrame  # companies whose summary total differs from its buckets

    @property
    def passed(self) -> bool:
        return bool((self.table["difference"] == 0).all()) and self.summary_differences.empty


def reconcile(summary: pd.DataFrame, buckets: pd.DataFrame, aging: pd.DataFrame) -> Reconciliation:
    """Report totals against the aging table, per company, basis and currency, to the unit; and
    each company's summary total against its company-currency buckets."""
    rep = company_totals(buckets).rename(columns={"total": "report"})
    ref = aging_totals(aging).rename(columns={"total": "aging"})
    table = rep.merge(ref, on=["company_id", "basis", "currency"], how="outer")
    table[["report", "aging"]] = table[["report", "aging"]].fillna(0).astype("int64")
    table["difference"] = table["report"] - table["aging"]
    by_company = summary.groupby("company_id")["total_company"].sum() if len(summary) else pd.Series(dtype="int64")
    company_buckets = rep[rep["basis"] == COMPANY].groupby("company_id")["report"].sum()
    both = pd.DataFrame({"summary": by_company, "buckets": company_buckets}).fillna(0).astype("int64")
    return Reconciliation(table.sort_values(["company_id", "basis", "currency"]).reset_index(drop=True),
                          both[both["summary"] != both["buckets"]].reset_index())


# -- display (metadata, CSV, HTML) ---------------------------------------------------------------
def bucket_pivot(buckets: pd.DataFrame, basis: str, by: list[str]) -> pd.DataFrame:
    """Buckets as columns in aging order, rows by `by` (+ currency), with a total column."""
    b = buckets[buckets["basis"] == basis]
    if b.empty:
        return pd.DataFrame(columns=[*by, "currency", "total"])
    order = b.drop_duplicates("aging_bucket").sort_values("bucket_order")["aging_bucket"].tolist()
    pivot = b.pivot_table(index=[*by, "currency"], columns="aging_bucket", values="amount", aggfunc="sum",
                          fill_value=0).reindex(columns=order, fill_value=0).astype("int64")
    pivot["total"] = pivot.sum(axis=1)
    pivot.columns.name = None
    return pivot.reset_index()


def format_money_columns(frame: pd.DataFrame, columns: list[str], currency: str = "currency") -> pd.DataFrame:
    out = frame.copy()
    for col in columns:
        out[col] = money.format_column(out[col], out[currency])
    return out


def top_customers(summary: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The customers with the biggest overdue balance (then total), for the UI and the HTML."""
    if summary.empty:
        return summary
    return summary.sort_values(["overdue_company", "total_company"], ascending=False).head(n)

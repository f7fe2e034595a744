"""Credit notes net the customer's balance before anyone is dunned.

Per customer (commercial partner) and company, in company currency: the open credit notes'
total C is applied to the customer's open invoices in order of due date (oldest first, then by
id), as an accountant would reconcile them. An invoice's net residual is what is left of it:
always between 0 and its residual, never negative. An invoice left with nothing is not dunned
(hold `net_credit`). Because overdue invoices fall due before the others, a customer whose
credit notes cover the whole overdue balance (net overdue balance not positive) has none of
its overdue invoices dunned.

Invoices in payment (money on its way) take no credit; credit notes in payment give none.
Pure pandas.
"""

from __future__ import annotations

from dunning_pipeline import lazy
from dunning_pipeline.dunning.receivables import CREDIT_NOTE, INVOICE

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

NETTING_COLUMNS = ["net_residual_company", "covered_company", "customer_overdue_company",
                   "customer_credit_company", "customer_net_overdue_company", "credit_since"]


def net_credit_notes(receivables: pd.DataFrame, days_overdue: pd.Series,
                     overdue_company: pd.Series | None = None, due: pd.Series | None = None) -> pd.DataFrame:
    """Columns aligned with `receivables` (see NETTING_COLUMNS).

    `receivables` needs customer_id, company_id, move_type, receivable_status, invoice_id,
    invoice_date, invoice_date_due and the signed amount_residual_company (int64 units).
    With instalments, `overdue_company` is the part of each invoice already due (default: all of
    it once overdue) and `due` the date of its oldest open instalment (default: invoice_date_due)."""
    r = receivables
    key = ["customer_id", "company_id"]
    open_ = (r["receivable_status"] == "open").to_numpy()
    is_credit = (r["move_type"] == CREDIT_NOTE).to_numpy() & open_
    is_invoice = (r["move_type"] == INVOICE).to_numpy() & open_
    amount = r["amount_residual_company"].to_numpy(dtype=np.int64)

    frame = pd.DataFrame({
        "customer_id": r["customer_id"].to_numpy(),
        "company_id": r["company_id"].astype("Int64").fillna(-1).to_numpy(dtype=np.int64),
        "credit": np.where(is_credit, np.abs(amount), 0),
        "owed": np.where(is_invoice, np.maximum(amount, 0), 0),
        "overdue": (np.where(is_invoice & (days_overdue.to_numpy() > 0), np.maximum(amount, 0), 0)
                    if overdue_company is None else
                    np.where(is_invoice, np.maximum(overdue_company.to_numpy(dtype=np.int64), 0), 0)),
        "credit_date": pd.to_datetime(r["invoice_date"]).where(is_credit).to_numpy(),
        "due": pd.to_datetime(r["invoice_date_due"] if due is None else due).to_numpy(),
        "invoice_id": r["invoice_id"].to_numpy(),
        "pos": np.arange(len(r)),
    })
    groups = frame.groupby(key, sort=False)
    credit = groups["credit"].transform("sum").to_numpy(dtype=np.int64)
    overdue = groups["overdue"].transform("sum").to_numpy(dtype=np.int64)
    credit_since = groups["credit_date"].transform("max")

    # Oldest due first: what the invoices before this one already used of the credit.
    order = frame.sort_values([*key, "due", "invoice_id"], kind="stable", na_position="last")
    before = order.groupby(key, sort=False)["owed"].cumsum().to_numpy(dtype=np.int64) - order["owed"].to_numpy()
    used_before = np.empty(len(r), dtype=np.int64)
    used_before[order["pos"].to_numpy()] = before
    owed = frame["owed"].to_numpy(dtype=np.int64)
    covered = np.clip(credit - used_before, 0, owed)

    net = pd.array(owed - covered, dtype="Int64")
    net[~is_invoice] = pd.NA
    return pd.DataFrame({
        "net_residual_company": net,
        "covered_company": covered,
        "customer_overdue_company": overdue,
        "customer_credit_company": -credit,
        "customer_net_overdue_company": overdue - credit,
        "credit_since": credit_since.to_numpy(),
    }, index=r.index)


def fully_covered(netting: pd.DataFrame, receivables: pd.DataFrame) -> pd.Series:
    """Open invoices with a positive residual that credit notes cover entirely."""
    is_invoice = (receivables["move_type"] == INVOICE) & (receivables["receivable_status"] == "open")
    return (is_invoice & (netting["covered_company"] > 0)
            & (netting["net_residual_company"].fillna(1) == 0)).astype(bool)

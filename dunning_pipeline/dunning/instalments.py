"""Instalments: the open receivable lines of each receivable, the unit Odoo's Aged Receivable ages.

An invoice on "30% now, balance in 60 days" has two receivable lines, each with its own due
date (`date_maturity`) and residual; Odoo's `invoice_date_due` is only the last one. So each
open instalment is aged on its own (its bucket), and the invoice's days overdue and stage
follow its OLDEST open instalment.

The amounts always reconcile with the invoice, to the unit: per receivable, the instalments'
residuals sum to the receivable's `amount_residual` and `amount_residual_company`.
- Lines whose residuals sum to the invoice's are taken as Odoo reconciled them.
- Lines that disagree (extracted at another moment than the invoice) keep their due dates and
  full amounts, and the invoice's residual is laid on them as Odoo applies payments: the oldest
  instalment is paid first, so what is open sits on the latest ones.
- An invoice without lines (older extracts, lines not loaded yet) is one instalment due on
  `invoice_date_due` (else its invoice date), as before instalments were read.
Pure pandas, vectorised: no loop over invoices.
"""

from __future__ import annotations

from dunning_pipeline import lazy
from dunning_pipeline.dunning.receivables import CREDIT_NOTE

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

INSTALMENT_COLUMNS = [
    "invoice_id", "line_id", "invoice_number", "company_id", "customer_id", "currency", "company_currency",
    "instalment_number", "instalments_total", "date_maturity", "days_overdue", "aging_bucket",
    "amount_residual", "amount_residual_company", "as_of_date", "run_id",
]
LINE_COLUMNS = ["id", "move_id", "date_maturity", "amount_residual", "amount_residual_currency", "balance",
                "amount_currency"]
# Per invoice: the instalment that decides its days overdue and stage, and how many there are.
INVOICE_COLUMNS = ["due_date", "instalment_number", "instalments_total", "instalments_open"]


def empty_lines() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[s]" if c == "date_maturity" else "int64")
                         for c in LINE_COLUMNS})


def open_instalments(receivables: pd.DataFrame, lines: pd.DataFrame | None) -> pd.DataFrame:
    """One row per open instalment of each receivable (index-free): invoice_id, line_id (null for
    an invoice without lines), instalment_number, instalments_total, date_maturity,
    amount_residual (invoice currency) and amount_residual_company, signed like the receivable.
    A receivable with nothing open (money in payment) keeps one row, with its zero residual, so
    every receivable is present. Receivables without any due date are left out."""
    r = receivables
    sign = np.where(r["move_type"].to_numpy() == CREDIT_NOTE, -1, 1)
    inv = pd.DataFrame({
        "invoice_id": r["invoice_id"].astype("int64").to_numpy(),
        "sign": sign,
        "residual": r["amount_residual"].astype("int64").to_numpy(),
        "residual_company": r["amount_residual_company"].astype("int64").to_numpy(),
        "fallback_due": pd.to_datetime(r["invoice_date_due"]).fillna(pd.to_datetime(r["invoice_date"]))
        .astype("datetime64[s]").to_numpy(),
    })
    lines = empty_lines() if lines is None else lines
    lines = lines[lines["move_id"].astype("int64").isin(inv["invoice_id"])]
    l = pd.DataFrame({
        "invoice_id": lines["move_id"].astype("int64").to_numpy(),
        "line_id": lines["id"].astype("int64").to_numpy(),
        "date_maturity": pd.to_datetime(lines["date_maturity"]).astype("datetime64[s]").to_numpy(),
        "open": lines["amount_residual_currency"].astype("Int64").fillna(0).abs().to_numpy(dtype=np.int64),
        "open_company": lines["amount_residual"].astype("Int64").fillna(0).abs().to_numpy(dtype=np.int64),
        "full": lines["amount_currency"].astype("Int64").fillna(0).abs().to_numpy(dtype=np.int64),
        "full_company": lines["balance"].astype("Int64").fillna(0).abs().to_numpy(dtype=np.int64),
    })
    l = l.merge(inv, on="invoice_id", how="left")
    l["date_maturity"] = l["date_maturity"].fillna(l["fallback_due"])
    l = l.sort_values(["invoice_id", "date_maturity", "line_id"], kind="stable").reset_index(drop=True)
    by_invoice = l.groupby("invoice_id", sort=False)
    l["instalment_number"] = by_invoice.cumcount().to_numpy() + 1
    l["instalments_total"] = by_invoice["line_id"].transform("size").to_numpy()

    # Lines that agree with the invoice are taken as they are; the others get its residual laid
    # on the latest instalments (the oldest is paid first).
    agrees = ((by_invoice["open"].transform("sum") == l["residual"].abs())
              & (by_invoice["open_company"].transform("sum") == l["residual_company"].abs())).to_numpy()
    for amount, full, total in (("open", "full", "residual"), ("open_company", "full_company", "residual_company")):
        later = (l.iloc[::-1].groupby("invoice_id", sort=False)[full].cumsum().iloc[::-1] - l[full]).to_numpy()
        owed = l[total].abs().to_numpy()
        laid = np.clip(owed - later, 0, l[full].to_numpy())
        first = (l["instalment_number"] == 1).to_numpy()
        excess = owed - l.groupby("invoice_id", sort=False)[full].transform("sum").to_numpy()
        laid = laid + np.where(first, np.maximum(excess, 0), 0)  # more owed than the lines: the oldest
        l[amount] = np.where(agrees, l[amount].to_numpy(), laid)
    l["amount_residual"] = l["open"] * l["sign"]
    l["amount_residual_company"] = l["open_company"] * l["sign"]
    is_open = (l["open"] != 0) | (l["open_company"] != 0)
    rows = l[is_open.to_numpy()]

    # Receivables with no open line: one instalment on the invoice's own due date.
    rest = inv[~inv["invoice_id"].isin(rows["invoice_id"])]
    counted = l.groupby("invoice_id")["line_id"].size()
    n_lines = rest["invoice_id"].map(counted).fillna(0).astype("int64").clip(lower=1)
    fallback = pd.DataFrame({
        "invoice_id": rest["invoice_id"].to_numpy(),
        "line_id": pd.array([pd.NA] * len(rest), dtype="Int64"),
        "instalment_number": n_lines.to_numpy(),
        "instalments_total": n_lines.to_numpy(),
        "date_maturity": rest["fallback_due"].to_numpy(),
        "amount_residual": rest["residual"].to_numpy(),
        "amount_residual_company": rest["residual_company"].to_numpy(),
    })
    fallback = fallback[fallback["date_maturity"].notna().to_numpy()]
    cols = ["invoice_id", "line_id", "instalment_number", "instalments_total", "date_maturity",
            "amount_residual", "amount_residual_company"]
    out = pd.concat([rows[cols].astype({"line_id": "Int64"}), fallback[cols]], ignore_index=True)
    out = out.astype({"invoice_id": "int64", "instalment_number": "int64", "instalments_total": "int64",
                      "amount_residual": "int64", "amount_residual_company": "int64",
                      "date_maturity": "datetime64[s]"})
    return out.sort_values(["invoice_id", "date_maturity", "instalment_number"], kind="stable").reset_index(drop=True)


def deciding_instalment(instalments: pd.DataFrame, index: pd.Index, invoice_ids: pd.Series) -> pd.DataFrame:
    """Per receivable (aligned with `invoice_ids`, on `index`): the due date and position of its
    oldest open instalment, the number of instalments and how many are open."""
    first = instalments.drop_duplicates("invoice_id").set_index("invoice_id")
    has_line = instalments["line_id"].notna() & (
        (instalments["amount_residual"] != 0) | (instalments["amount_residual_company"] != 0))
    n_open = has_line.groupby(instalments["invoice_id"]).sum()
    fallback_open = (instalments["line_id"].isna() & (instalments["amount_residual"] != 0)).groupby(
        instalments["invoice_id"]).sum()
    ids = invoice_ids.astype("int64").to_numpy()
    return pd.DataFrame({
        "due_date": first["date_maturity"].reindex(ids).to_numpy(),
        "instalment_number": first["instalment_number"].reindex(ids).astype("Int64").to_numpy(),
        "instalments_total": first["instalments_total"].reindex(ids).astype("Int64").to_numpy(),
        "instalments_open": (n_open.reindex(ids).fillna(0) + fallback_open.reindex(ids).fillna(0))
        .astype("int64").to_numpy(),
    }, index=index)

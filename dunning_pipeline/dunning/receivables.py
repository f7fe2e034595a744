"""Receivables: the open customer invoices and credit notes, per commercial partner.

A receivable is a posted `out_invoice` or `out_refund` whose payment state is not_paid,
partial or blocked (Odoo 18's "block payment": still owed, held from dunning by `holds`) and
whose residual is above the policy's tolerance in its currency. `in_payment` (a payment
registered, not yet reconciled with the bank) is kept and shown, but not dunned.
Records the data-quality checks quarantined are left out, and listed as exclusions.

Amounts are signed from the receivable's side: a credit note's residual is negative, in the
invoice currency (`amount_residual`) and in the company currency (`amount_residual_company`,
from Odoo's `*_signed` fields). Pure pandas: no Dagster, no I/O, no clock.
"""

from __future__ import annotations

import json
from datetime import date

from dunning_pipeline import lazy
from dunning_pipeline.dunning.policy import DunningPolicy

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

INVOICE = "out_invoice"
CREDIT_NOTE = "out_refund"
BLOCKED = "blocked"
OPEN_PAYMENT_STATES = ("not_paid", "partial", BLOCKED)
IN_PAYMENT = "in_payment"

RECEIVABLE_COLUMNS = [
    "invoice_id", "invoice_number", "move_type", "state", "payment_state", "receivable_status",
    "partner_id", "customer_id", "customer_name", "customer_email", "customer_phone", "customer_lang",
    "customer_country", "customer_vat", "customer_tags", "segment", "policy", "company_id",
    "company_name", "currency", "company_currency", "invoice_date", "invoice_date_due",
    "amount_total", "amount_residual", "amount_total_company", "amount_residual_company",
    "write_date", "as_of_date",
]
EXCLUSION_COLUMNS = ["invoice_id", "invoice_number", "customer_id", "reason", "detail"]


def quarantined_ids(quarantine: pd.DataFrame | None, asset: str) -> set[int]:
    """Record ids the data-quality checks hold back for one raw asset."""
    if quarantine is None or quarantine.empty:
        return set()
    rows = quarantine[quarantine["asset"] == asset]
    return set(pd.to_numeric(rows["record_id"]).astype("int64").tolist())


def commercial_partner_map(customers: pd.DataFrame) -> pd.Series:
    """res.partner id -> its commercial partner id (itself when it has none)."""
    ids = customers["id"].astype("int64")
    cp = customers["commercial_partner_id"].astype("Int64").fillna(ids.astype("Int64")).astype("int64")
    return pd.Series(cp.to_numpy(), index=ids.to_numpy(), name="customer_id")


def tag_lists(tags_json: pd.Series) -> pd.Series:
    """JSON lists of tag names to Python lists; parsed once per distinct value (customers
    share few distinct tag sets), so this is not a loop per invoice."""
    distinct = tags_json.dropna().unique()
    parsed = {}
    for text in distinct:
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = [text]  # a bare tag name, not JSON: keep it rather than lose it
        parsed[text] = [str(t) for t in value] if isinstance(value, list) else [str(value)]
    return tags_json.map(parsed).map(lambda v: v if isinstance(v, list) else [])


def build_receivables(
    invoices: pd.DataFrame,
    customers: pd.DataFrame,
    policy: DunningPolicy,
    as_of: date,
    quarantine: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The receivables and the records left out (quarantined, unusable), with the reason."""
    inv = invoices[
        invoices["move_type"].isin([INVOICE, CREDIT_NOTE])
        & (invoices["state"] == "posted")
        & invoices["payment_state"].isin([*OPEN_PAYMENT_STATES, IN_PAYMENT])
    ].copy()
    inv["id"] = inv["id"].astype("int64")

    cp_of = commercial_partner_map(customers) if len(customers) else pd.Series(dtype="int64")
    customer_id = inv["commercial_partner_id"].astype("Int64")
    customer_id = customer_id.fillna(inv["partner_id"].astype("Int64").map(cp_of).astype("Int64"))
    customer_id = customer_id.fillna(inv["partner_id"].astype("Int64"))
    inv["customer_id"] = customer_id

    exclusions = []

    def exclude(mask: pd.Series, reason: str, detail: str) -> None:
        nonlocal inv
        if mask.any():
            ex = inv.loc[mask, ["id", "name", "customer_id"]]
            ex = ex.rename(columns={"id": "invoice_id", "name": "invoice_number"})
            exclusions.append(ex.assign(reason=reason, detail=detail))
            inv = inv.loc[~mask]

    bad_invoices = quarantined_ids(quarantine, "odoo_invoices")
    bad_partners = quarantined_ids(quarantine, "odoo_customers")
    exclude(inv["id"].isin(bad_invoices), "quarantined", "invoice held back by a data-quality check")
    exclude(inv["customer_id"].isin(bad_partners) | inv["partner_id"].isin(bad_partners),
            "quarantined", "customer held back by a data-quality check")
    exclude(inv["customer_id"].isna(), "no_customer", "the invoice has no partner")
    exclude(inv["amount_residual"].isna() | inv["amount_residual_signed"].isna(),
            "no_amount", "amount_residual or amount_residual_signed is empty")

    sign = np.where(inv["move_type"].to_numpy() == CREDIT_NOTE, -1, 1)
    # Odoo's *_signed fields are already negative for credit notes; abs() keeps either form right.
    residual = inv["amount_residual"].astype("int64").abs() * sign
    residual_company = inv["amount_residual_signed"].astype("int64").abs() * sign
    total = inv["amount_total"].astype("Int64").abs() * sign
    total_company = inv["amount_total_signed"].astype("Int64").abs() * sign

    tolerance = policy.tolerance_units(inv["company_id"], inv["currency"])
    in_payment = inv["payment_state"] == IN_PAYMENT
    keep = in_payment | (residual.abs() > tolerance)
    inv, residual, residual_company, total, total_company, in_payment = (
        x[keep] for x in (inv, residual, residual_company, total, total_company, in_payment)
    )

    cust = customers.assign(id=customers["id"].astype("int64")).set_index("id") if len(customers) else None
    out = pd.DataFrame({
        "invoice_id": inv["id"].astype("int64"),
        "invoice_number": inv["name"],
        "move_type": inv["move_type"],
        "state": inv["state"],
        "payment_state": inv["payment_state"],
        "receivable_status": np.where(in_payment, IN_PAYMENT, "open"),
        "partner_id": inv["partner_id"].astype("Int64"),
        "customer_id": inv["customer_id"].astype("int64"),
        "company_id": inv["company_id"].astype("Int64"),
        "company_name": inv["company_name"],
        "currency": inv["currency"],
        "company_currency": inv["company_currency"],
        "invoice_date": inv["invoice_date"],
        "invoice_date_due": inv["invoice_date_due"],
        "amount_total": total,
        "amount_residual": residual,
        "amount_total_company": total_company,
        "amount_residual_company": residual_company,
        "write_date": inv["write_date"],
    })
    attrs = {"name": "customer_name", "email": "customer_email", "phone": "customer_phone",
             "lang": "customer_lang", "country": "customer_country", "vat": "customer_vat",
             "tags": "customer_tags"}
    for src, dst in attrs.items():
        if cust is not None and src in cust.columns:
            out[dst] = out["customer_id"].map(cust[src])
        else:
            out[dst] = None
    # A customer unknown to odoo_customers still has the name Odoo printed on the invoice.
    partner_names = inv["partner_name"].where(inv["partner_id"].astype("Int64") == inv["customer_id"])
    out["customer_name"] = out["customer_name"].fillna(partner_names)

    pairs = out[["customer_id", "company_id", "customer_tags"]].drop_duplicates(["customer_id", "company_id"])
    pairs = pairs.assign(tag_list=tag_lists(pairs["customer_tags"])).reset_index(drop=True)
    seg = pd.concat([pairs[["customer_id", "company_id"]], policy.segment_of(pairs)], axis=1)
    out = out.merge(seg, on=["customer_id", "company_id"], how="left")
    out["as_of_date"] = pd.Timestamp(as_of)
    out = out[RECEIVABLE_COLUMNS].sort_values("invoice_id", kind="stable").reset_index(drop=True)

    excluded = (pd.concat(exclusions, ignore_index=True) if exclusions
                else pd.DataFrame(columns=EXCLUSION_COLUMNS))
    return out, excluded[EXCLUSION_COLUMNS]

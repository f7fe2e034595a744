"""Late-payment interest and fees per invoice as of a day (policy `late_payment`, off by default).

Interest = overdue residual x days overdue x annual rate / 365 (actual/365, as the EU
late-payment rules for business customers count it), computed exactly with fractions and
rounded half up to the currency's minor unit; per overdue instalment when the instalment table
is given (each instalment has its own due date), else per invoice. A flat fee is charged once
per overdue invoice, or once per overdue stage the invoice has reached. Only invoices with a
positive residual that are past due are charged; credit notes never are. Shown in the report
and the drafts, never written to Odoo. Pure: no Dagster, no I/O.
"""

from __future__ import annotations

import math
from fractions import Fraction

from dunning_pipeline import lazy, money
from dunning_pipeline.dunning.policy import DunningPolicy, LatePaymentConfig

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

COLUMNS = ["invoice_id", "invoice_number", "customer_id", "company_id", "currency", "days_overdue",
           "interest_basis", "interest_rate_percent", "interest_statutory", "interest_amount",
           "fee_count", "fee_amount", "charges_total"]
DAYS_PER_YEAR = 365
# The columns of invoice_aging the charges are computed from.
AGING_COLUMNS = ("invoice_id", "invoice_number", "customer_id", "company_id", "currency", "move_type",
                 "amount_residual", "days_overdue", "policy", "segment", "stage_rank")


def interest_units(residual_units: int, days: int, annual_percent, currency: str | None) -> int:
    """Interest on one amount (1/10,000 units) for `days` at `annual_percent` per year, rounded
    half up to the currency's minor unit, in 1/10,000 units. Nothing for a non-positive amount or
    a day count that is not past due."""
    if residual_units <= 0 or days <= 0:
        return 0
    exact = Fraction(int(residual_units)) * int(days) * Fraction(annual_percent) / (100 * DAYS_PER_YEAR)
    quantum = 10 ** (money.SCALE_DIGITS - money.currency_decimals(currency))
    steps = exact / quantum
    return math.floor(steps + Fraction(1, 2)) * quantum


def _fee_units(terms: LatePaymentConfig, currency: str | None, overdue_stages: int) -> tuple[int, int]:
    """(number of fees, total fee in units) of one overdue invoice."""
    fee = terms.fee
    if fee is None or currency not in fee.amounts:
        return 0, 0
    count = 1 if fee.per == "invoice" else overdue_stages
    return count, count * money.to_units(fee.amounts[currency])


def _overdue_stages(policy: DunningPolicy, ladder: str | None, rank) -> int:
    """How many stages after the due date an invoice at `rank` has reached in its ladder."""
    if ladder not in policy.ladders or pd.isna(rank):
        return 0
    return sum(1 for s in policy.ladders[ladder].stages if s.days > 0 and s.rank <= int(rank))


def late_payment_charges(aging: pd.DataFrame, policy: DunningPolicy,
                         instalments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Interest and fees of every overdue invoice of `aging` whose policy or segment charges them.

    `aging` has the columns of `invoice_aging`; `instalments` (optional) those of
    `instalment_aging`. One row per charged invoice (amounts int64 units, invoice currency)."""
    rows = []
    candidates = aging[(aging["move_type"] == "out_invoice") & (aging["days_overdue"] > 0)
                       & (aging["amount_residual"] > 0)]
    # Charges are off by default: find the policies and segments that charge before touching a
    # row, so a night without charges costs nothing (at 1M, splitting the instalments per
    # invoice alone took 40 s).
    # (policy, segment) of each candidate; a segment that is no text (none, NA) is None.
    pairs = [(p, s if isinstance(s, str) else None) for p, s in zip(candidates["policy"], candidates["segment"],
                                                                     strict=True)]
    terms_of = {pair: policy.late_payment_for(*pair) for pair in set(pairs)}
    charged = {pair for pair, terms in terms_of.items() if terms.interest is not None or terms.fee is not None}
    keep = [pair in charged for pair in pairs]
    candidates = candidates[keep] if charged else candidates.iloc[0:0]
    pairs = [pair for pair, kept in zip(pairs, keep, strict=True) if kept]
    by_invoice: dict[int, tuple] = {}
    if len(candidates) and instalments is not None and len(instalments):
        due = instalments[(instalments["days_overdue"] > 0) & (instalments["amount_residual"] > 0)
                          & instalments["invoice_id"].isin(candidates["invoice_id"])]
        amounts, days = due["amount_residual"].to_numpy(), due["days_overdue"].to_numpy()
        by_invoice = {int(k): (amounts[idx], days[idx]) for k, idx in due.groupby("invoice_id").indices.items()}
    for r, pair in zip(candidates.itertuples(index=False), pairs, strict=True):
        terms = terms_of[pair]
        percent = terms.interest.annual_percent if terms.interest is not None else None
        parts = by_invoice.get(int(r.invoice_id))
        if parts is not None:
            basis = "instalments"
            pieces = zip(*parts, strict=True)
        else:
            basis = "invoice"
            pieces = [(r.amount_residual, r.days_overdue)]
        interest = sum(interest_units(int(a), int(d), percent, r.currency) for a, d in pieces) if percent else 0
        count, fee = _fee_units(terms, r.currency, _overdue_stages(policy, r.policy, r.stage_rank))
        rows.append({
            "invoice_id": int(r.invoice_id), "invoice_number": r.invoice_number, "customer_id": int(r.customer_id),
            "company_id": r.company_id, "currency": r.currency, "days_overdue": int(r.days_overdue),
            "interest_basis": basis if percent else None,
            "interest_rate_percent": str(percent) if percent is not None else None,
            "interest_statutory": bool(terms.interest.statutory) if terms.interest is not None else None,
            "interest_amount": interest, "fee_count": count, "fee_amount": fee, "charges_total": interest + fee,
        })
    out = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("invoice_id", "customer_id", "days_overdue", "interest_amount", "fee_count", "fee_amount",
                "charges_total"):
        out[col] = out[col].astype(np.int64)
    out["company_id"] = out["company_id"].astype("Int64")
    out["interest_statutory"] = out["interest_statutory"].astype("boolean")
    return out

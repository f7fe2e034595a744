"""Holds: what freezes an invoice's dunning stage, and since when.

An invoice is on hold, as of a day, when any of these applies (the first in this list names
the hold; the stage is frozen as of the earliest start among those that apply):
- `exclusion`: a manual exclusion in `dunning_holds` (customer or invoice, optionally until a day);
- `dispute`: raised by the customer on an open Zendesk ticket: in their own words naming the
  invoice, or by a dispute tag, field or word for the invoices the ticket names (a tag or field
  on a ticket naming none: all of the customer's); never by our agents' replies or notes (see
  `communications`);
- `payment_claimed`: the customer wrote that the invoice was paid ("we have paid", remittance
  advice): held for the policy's `payment_claim_days` after the claim, so the accountant checks
  the bank before the next reminder; it expires by itself (`hold_until`);
- `promise`: a payment promise until a day, entered in `dunning_holds` or read from an open
  ticket when the policy's `promise_pattern` is set;
- `in_payment`: Odoo has a payment registered that is not yet reconciled;
- `net_credit`: the customer's open credit notes cover the invoice (see `netting`);
- `blocked`: Odoo's "block payment" (payment_state blocked): still owed and aged, not dunned.
Holds are returned for every invoice they touch, never dropped. Pure pandas.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from dunning_pipeline import lazy
from dunning_pipeline.dunning.communications import local_day
from dunning_pipeline.dunning.receivables import (
    BLOCKED,
    IN_PAYMENT,
    INVOICE,
    commercial_partner_map,
)

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

PRIORITY = ("exclusion", "dispute", "payment_claimed", "promise", "in_payment", "net_credit", BLOCKED)
HOLD_COLUMNS = ["hold_reason", "hold_since", "hold_until", "hold_ticket_id", "hold_note"]
MANUAL_KINDS = ("promise", "exclusion")


class HoldError(ValueError):
    """A row of `dunning_holds` that cannot be honoured as written; names the row and field."""


def validate_manual_holds(manual: pd.DataFrame) -> None:
    """Refuse rows that the table's constraints would refuse too (frames built by hand)."""
    if manual.empty:
        return
    kind_ok = manual["kind"].isin(MANUAL_KINDS)
    if not kind_ok.all():
        row = manual[~kind_ok].iloc[0]
        raise HoldError(f"dunning_holds row id={row['id']}: field 'kind' is {row['kind']!r}, "
                        f"expected one of {', '.join(MANUAL_KINDS)}")
    no_target = manual["customer_id"].isna() & manual["invoice_id"].isna()
    if no_target.any():
        row = manual[no_target].iloc[0]
        raise HoldError(f"dunning_holds row id={row['id']}: fields 'customer_id' and 'invoice_id' are both "
                        f"empty; set the customer or the invoice the hold is for")
    no_until = (manual["kind"] == "promise") & manual["until"].isna()
    if no_until.any():
        row = manual[no_until].iloc[0]
        raise HoldError(f"dunning_holds row id={row['id']}: a promise needs field 'until' (the promised day)")


def manual_holds(manual: pd.DataFrame, customers: pd.DataFrame, as_of: date, tz: ZoneInfo) -> pd.DataFrame:
    """Active rows of `dunning_holds` as of the day: customer_id (commercial partner) or
    invoice_id, reason, since, until, note.

    A hold counts from its `effective_date` (an accountant may date a promise back to the call
    it was made on), by default the day it was created. A night only knows the holds entered by
    its end (created on or before the day, in `tz`): so a replay of a past day sees the holds
    that night saw, and a hold dated back applies from the night it was entered on, frozen as
    of its effective date (`since`), never rewriting the nights before."""
    validate_manual_holds(manual)
    as_of_ts = pd.Timestamp(as_of)
    entered = local_day(manual["created_at"], tz) if len(manual) else pd.Series(dtype="datetime64[s]")
    since = entered
    if "effective_date" in manual and len(manual):
        since = pd.to_datetime(manual["effective_date"]).astype("datetime64[s]").fillna(entered)
    until = pd.to_datetime(manual["until"])
    known = entered.isna() | (entered <= as_of_ts)
    active = known & (since.fillna(as_of_ts) <= as_of_ts) & (until.isna() | (until >= as_of_ts))
    if "released_at" in manual and len(manual):  # released early: no longer applies from that day
        released = local_day(manual["released_at"], tz)
        active &= released.isna() | (released > as_of_ts)
    cp_of = commercial_partner_map(customers) if len(customers) else pd.Series(dtype="int64")
    customer = manual["customer_id"].astype("Int64")
    customer = customer.map(cp_of).astype("Int64").fillna(customer)  # a contact counts for its company
    note = manual["note"].astype("str").where(manual["note"].notna(), None)
    by = manual["created_by"].astype("str").where(manual["created_by"].notna(), None)
    note = (note.fillna("") + " (" + by.fillna("?") + ")").str.strip()
    out = pd.DataFrame({
        "customer_id": customer, "invoice_id": manual["invoice_id"].astype("Int64"),
        "reason": manual["kind"].astype("str"), "since": since, "until": until,
        "ticket_id": pd.array([pd.NA] * len(manual), dtype="Int64"), "note": note,
    })
    return out[active.to_numpy(dtype=bool)].reset_index(drop=True)


def _ticket_hold_kinds(communications: pd.DataFrame) -> pd.Series:
    """hold_kind per row; tables written before the column existed hold disputes only."""
    if "hold_kind" in communications:
        return communications["hold_kind"].where(communications["hold_kind"].notna(), None)
    return pd.Series(np.where(communications["is_dispute"].astype(bool), "dispute", None),
                     index=communications.index, dtype=object)


def ticket_holds(communications: pd.DataFrame, tz: ZoneInfo) -> pd.DataFrame:
    """Disputes, payment claims and parsed promises from tickets: customer_id or invoice_id,
    reason, since, until, ticket_id. An invoice-level row holds one invoice, a customer-level
    row all of them. A payment claim's `until` is its last day (expired ones are dropped later)."""
    kinds = _ticket_hold_kinds(communications)
    held = communications[kinds.notna().to_numpy(dtype=bool) & communications["customer_id"].notna().to_numpy()]
    until = (pd.to_datetime(held["hold_until"]) if "hold_until" in held
             else pd.Series(pd.NaT, index=held.index, dtype="datetime64[s]"))
    out = [pd.DataFrame({
        "customer_id": held["customer_id"].astype("Int64"),
        "invoice_id": held["invoice_id"].astype("Int64"),
        "reason": kinds[held.index],
        "since": local_day(held["mentioned_at"], tz),
        "until": until,
        "ticket_id": held["ticket_id"].astype("Int64"),
        # A claim is for the accountant to check against the bank, not a dispute to settle.
        "note": held["subject"].where(kinds[held.index] != "payment_claimed",
                                      "customer says paid, check the bank: " + held["subject"].fillna("")),
    })]
    promised = communications[communications["is_open"] & communications["customer_id"].notna()
                              & communications["promise_until"].notna()]
    if len(promised):
        out.append(pd.DataFrame({
            "customer_id": promised["customer_id"].astype("Int64"),
            "invoice_id": promised["invoice_id"].astype("Int64"),
            "reason": "promise",
            "since": local_day(promised["ticket_created_at"], tz),
            "until": pd.to_datetime(promised["promise_until"]),
            "ticket_id": promised["ticket_id"].astype("Int64"),
            "note": promised["subject"],
        }))
    return pd.concat(out, ignore_index=True)


def resolve_holds(
    receivables: pd.DataFrame,
    candidates: list[pd.DataFrame],
    covered: pd.Series | None,
    as_of: date,
    tz: ZoneInfo,
    credit_since: pd.Series | None = None,
) -> pd.DataFrame:
    """The hold of each receivable (index aligned): hold_reason, hold_since, hold_until,
    hold_ticket_id, hold_note; all null where none applies. Only invoices are held.

    `candidates` are frames with customer_id or invoice_id (a customer-level row applies to all
    the customer's invoices), reason, since, until, ticket_id, note. `covered` flags invoices
    fully covered by credit notes (hold `net_credit`, since `credit_since`)."""
    as_of_ts = pd.Timestamp(as_of)
    inv = receivables[receivables["move_type"] == INVOICE]
    keys = pd.DataFrame({"row": inv.index.to_numpy(), "invoice_id": inv["invoice_id"].to_numpy(),
                         "customer_id": inv["customer_id"].to_numpy()})
    parts = []
    for cand in candidates:
        if cand is None or cand.empty:
            continue
        by_invoice = cand[cand["invoice_id"].notna()].astype({"invoice_id": "int64"})
        by_customer = cand[cand["invoice_id"].isna() & cand["customer_id"].notna()].astype({"customer_id": "int64"})
        parts.append(keys.merge(by_invoice.drop(columns=["customer_id"]), on="invoice_id"))
        parts.append(keys.merge(by_customer.drop(columns=["invoice_id"]), on="customer_id"))
    in_payment = inv["receivable_status"] == IN_PAYMENT
    if in_payment.any():
        ip = inv[in_payment]
        since = local_day(ip["write_date"], tz)  # the day Odoo last changed it: when the payment came
        parts.append(pd.DataFrame({"row": ip.index.to_numpy(), "reason": IN_PAYMENT,
                                   "since": since.where(since <= as_of_ts, as_of_ts).fillna(as_of_ts).to_numpy(),
                                   "until": pd.NaT, "ticket_id": pd.NA,
                                   "note": "payment registered, not yet reconciled"}))
    if "payment_state" in inv and (inv["payment_state"] == BLOCKED).any():
        bl = inv[inv["payment_state"] == BLOCKED]
        since = local_day(bl["write_date"], tz)  # the day Odoo last changed it: when it was blocked
        parts.append(pd.DataFrame({"row": bl.index.to_numpy(), "reason": BLOCKED,
                                   "since": since.where(since <= as_of_ts, as_of_ts).fillna(as_of_ts).to_numpy(),
                                   "until": pd.NaT, "ticket_id": pd.NA,
                                   "note": "payment blocked in Odoo (still owed)"}))
    if covered is not None:
        cov = covered.reindex(inv.index, fill_value=False).to_numpy(dtype=bool)
        if cov.any():
            since = (credit_since.reindex(inv.index) if credit_since is not None
                     else pd.Series(as_of_ts, index=inv.index))[cov]
            parts.append(pd.DataFrame({"row": inv.index[cov], "reason": "net_credit",
                                       "since": since.fillna(as_of_ts).clip(upper=as_of_ts).to_numpy(),
                                       "until": pd.NaT, "ticket_id": pd.NA,
                                       "note": "open credit notes cover this invoice"}))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({"hold_reason": pd.Series(None, index=receivables.index, dtype=object),
                             "hold_since": pd.Series(pd.NaT, index=receivables.index, dtype="datetime64[s]"),
                             "hold_until": pd.Series(pd.NaT, index=receivables.index, dtype="datetime64[s]"),
                             "hold_ticket_id": pd.Series(pd.NA, index=receivables.index, dtype="Int64"),
                             "hold_note": pd.Series(None, index=receivables.index, dtype=object)})
    cols = ["row", "reason", "since", "until", "ticket_id", "note"]
    allh = pd.concat([p[cols] for p in parts], ignore_index=True)
    allh["since"] = pd.to_datetime(allh["since"]).fillna(as_of_ts).clip(upper=as_of_ts)
    allh["until"] = pd.to_datetime(allh["until"])
    allh = allh[allh["until"].isna() | (allh["until"] >= as_of_ts)]
    allh["priority"] = allh["reason"].map({r: i for i, r in enumerate(PRIORITY)})
    allh = allh.sort_values(["row", "priority", "since", "ticket_id"], kind="stable", na_position="last")
    # The first hold in priority order names it; the stage freezes as of the earliest start.
    chosen = allh.drop_duplicates("row").set_index("row").reindex(receivables.index)
    earliest = allh.groupby("row")["since"].min().reindex(receivables.index)
    return pd.DataFrame({
        "hold_reason": chosen["reason"].astype(object).where(chosen["reason"].notna(), None),
        "hold_since": earliest.astype("datetime64[s]"),
        "hold_until": chosen["until"].astype("datetime64[s]"),
        "hold_ticket_id": pd.to_numeric(chosen["ticket_id"]).astype("Int64"),
        "hold_note": chosen["note"].astype(object).where(chosen["note"].notna(), None),
    }, index=receivables.index)


"""The aging table: every receivable as of a day, with its bucket, stage, hold and net balance.

Days overdue = as-of day minus due date (negative: not yet due; an invoice without a due date
falls due on its invoice date, as in Odoo). Buckets by days overdue from the policy (current,
1-30, 31-60, 61-90, 90+ by default). Credit notes are aged too (their amounts are negative) so
the buckets add up to the open balance, but they are never dunned.

The stage in effect comes from `stages` (calendar, frozen by holds), the holds from `holds`,
the credit-note netting from `netting`. Customer-level columns (per commercial partner and
company, company currency): the overdue balance, the open credit, the net overdue balance, and
the highest stage of the customer's dunned invoices. Pure pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from dunning_pipeline import lazy, money
from dunning_pipeline.dunning import holds as holds_mod
from dunning_pipeline.dunning import instalments as instalments_mod
from dunning_pipeline.dunning import netting, stages
from dunning_pipeline.dunning.policy import DunningPolicy
from dunning_pipeline.dunning.receivables import CREDIT_NOTE, EXCLUSION_COLUMNS

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

AGING_COLUMNS = [
    "invoice_id", "invoice_number", "move_type", "customer_id", "customer_name", "segment", "policy",
    "company_id", "currency", "company_currency", "receivable_status", "amount_residual",
    "amount_residual_company", "net_residual_company", "invoice_date", "invoice_date_due", "days_overdue",
    "aging_bucket", "due_date", "instalment_number", "instalments_total", "instalments_open",
    "due_stage", "stage", "stage_rank", "action", "tone", "manual_only", "dunning_status",
    "hold_reason", "hold_since", "hold_until", "hold_ticket_id", "hold_note", "customer_overdue_company",
    "customer_credit_company", "customer_net_overdue_company", "customer_stage", "customer_last_inbound_at",
    "customer_last_outbound_at", "as_of_date", "run_id",
]

DUNNED, ON_HOLD, NOT_IN_DUNNING, CREDIT = "dunned", "on_hold", "not_in_dunning", "credit_note"


@dataclass(frozen=True)
class AgingResult:
    aging: pd.DataFrame
    excluded: pd.DataFrame  # receivables that could not be aged, with the reason
    # One row per open instalment (instalments.INSTALMENT_COLUMNS): the buckets add up from these.
    instalments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=instalments_mod.INSTALMENT_COLUMNS))


def build_aging(
    receivables: pd.DataFrame,
    policy: DunningPolicy,
    as_of: date,
    tz: ZoneInfo,
    *,
    communications: pd.DataFrame | None = None,
    manual_holds: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    prev_state: pd.DataFrame | None = None,
    run_id: str | None = None,
    lines: pd.DataFrame | None = None,
) -> AgingResult:
    """One row per receivable (see AGING_COLUMNS), and one per open instalment.

    `prev_state` (invoice_id, stage) is the history's last recorded stage per invoice; it only
    matters for invoices on hold (a hold never lowers a recorded stage). `lines` are the
    receivable lines (`odoo_receivable_lines`): the invoice's days overdue, bucket and stage
    follow its oldest open instalment (see `instalments`)."""
    as_of_ts = pd.Timestamp(as_of)
    r = receivables.reset_index(drop=True)
    inst = instalments_mod.open_instalments(r, lines)
    deciding = instalments_mod.deciding_instalment(inst, r.index, r["invoice_id"])
    due = pd.to_datetime(deciding["due_date"])
    undated = due.isna()
    excluded = pd.DataFrame(columns=EXCLUSION_COLUMNS)
    if undated.any():
        excluded = r.loc[undated, ["invoice_id", "invoice_number", "customer_id"]].assign(
            reason="no_due_date", detail="neither invoice_date_due nor invoice_date is set")[EXCLUSION_COLUMNS]
        r, due = r[~undated].reset_index(drop=True), due[~undated].reset_index(drop=True)
        deciding = deciding[~undated.to_numpy()].reset_index(drop=True)

    days = (as_of_ts - due).dt.days.astype("int64")
    inst = inst[inst["invoice_id"].isin(r["invoice_id"])].reset_index(drop=True)
    inst_days = (as_of_ts - inst["date_maturity"]).dt.days.astype("int64")
    # Only the instalments past due count as overdue; the oldest open one orders the netting.
    overdue = inst["amount_residual_company"].where(inst_days > 0, 0).groupby(inst["invoice_id"]).sum()
    net = netting.net_credit_notes(r, days, overdue_company=r["invoice_id"].map(overdue).fillna(0), due=due)
    covered = netting.fully_covered(net, r)

    customers = customers if customers is not None else pd.DataFrame(columns=["id", "commercial_partner_id"])
    candidates = []
    if manual_holds is not None and len(manual_holds):
        candidates.append(holds_mod.manual_holds(manual_holds, customers, as_of, tz))
    if communications is not None and len(communications):
        candidates.append(holds_mod.ticket_holds(communications, tz))
    held = holds_mod.resolve_holds(r, candidates, covered, as_of, tz, credit_since=net["credit_since"])

    prev = pd.Series(None, index=r.index, dtype=object)
    if prev_state is not None and len(prev_state):
        live = prev_state[prev_state["stage"] != "closed"]
        prev = r["invoice_id"].map(live.set_index("invoice_id")["stage"]).astype(object)

    is_credit = (r["move_type"] == CREDIT_NOTE).to_numpy()
    hold_since = pd.to_datetime(held["hold_since"]).where(~is_credit)
    due_rank, eff_rank = stages.effective_ranks(policy, r["policy"], due, as_of, hold_since, prev)
    due_rank = due_rank.where(~is_credit, -1)
    eff_rank = eff_rank.where(~is_credit, -1)

    # Columns are assembled one by one (no merge of the wide frame: at a million rows every
    # merge would copy all of them).
    cols: dict[str, object] = {c: r[c] for c in AGING_COLUMNS if c in r.columns}
    cols["invoice_date_due"] = pd.to_datetime(r["invoice_date_due"]).fillna(pd.to_datetime(r["invoice_date"]))
    cols["days_overdue"] = days
    for col in instalments_mod.INVOICE_COLUMNS:
        cols[col] = deciding[col]
    cols["due_date"] = due
    cols["aging_bucket"] = policy.aging_bucket(r["company_id"], days)
    cols["net_residual_company"] = net["net_residual_company"]
    for col in ("customer_overdue_company", "customer_credit_company", "customer_net_overdue_company"):
        cols[col] = net[col].astype("int64")
    for col in holds_mod.HOLD_COLUMNS:
        cols[col] = held[col]
    cols["due_stage"] = policy.stage_name(r["policy"], due_rank)
    cols["stage"] = stage = policy.stage_name(r["policy"], eff_rank)
    cols["stage_rank"] = pd.Series(eff_rank, dtype="Int64").where(eff_rank >= 0)
    attrs = policy.stage_attributes(r["policy"], stage)
    for col in ("action", "tone", "manual_only"):
        cols[col] = attrs[col]

    on_hold = held["hold_reason"].notna().to_numpy()
    status = np.select([is_credit, on_hold, stage.isna().to_numpy()], [CREDIT, ON_HOLD, NOT_IN_DUNNING], default=DUNNED)
    cols["dunning_status"] = pd.Series(status, index=r.index, dtype=object)

    # The customer's highest stage among its dunned invoices (per company: one policy each).
    dunned_rank = pd.Series(np.where(status == DUNNED, eff_rank, -1), index=r.index)
    company = r["company_id"].astype("Int64").fillna(-1)
    top = dunned_rank.groupby([r["customer_id"], company], sort=False).transform("max")
    cols["customer_stage"] = policy.stage_name(r["policy"], top)

    if communications is not None and len(communications):
        from dunning_pipeline.dunning.communications import customer_contacts
        contacts = customer_contacts(communications)
        contacts = contacts.set_index(contacts["customer_id"].astype("int64"))
        for col in ("customer_last_inbound_at", "customer_last_outbound_at"):
            values = contacts[col].astype("datetime64[us]").reindex(r["customer_id"].to_numpy())
            cols[col] = pd.Series(values.to_numpy(), index=r.index)
    else:
        cols["customer_last_inbound_at"] = pd.Series(pd.NaT, index=r.index, dtype="datetime64[us]")
        cols["customer_last_outbound_at"] = pd.Series(pd.NaT, index=r.index, dtype="datetime64[us]")
    cols["as_of_date"] = pd.Series(as_of_ts, index=r.index)
    cols["run_id"] = pd.Series(run_id, index=r.index, dtype=object)
    out = pd.DataFrame({c: cols[c] for c in AGING_COLUMNS}, index=r.index)
    if not out["invoice_id"].is_monotonic_increasing:
        out = out.sort_values("invoice_id", kind="stable")
    return AgingResult(aging=out.reset_index(drop=True), excluded=excluded,
                       instalments=_instalment_rows(inst, inst_days, r, policy, as_of_ts, run_id))


def _instalment_rows(inst: pd.DataFrame, days: pd.Series, r: pd.DataFrame, policy: DunningPolicy,
                     as_of_ts: pd.Timestamp, run_id: str | None) -> pd.DataFrame:
    """The open instalments with their invoice's identity, days overdue and own bucket."""
    ident = r.set_index(r["invoice_id"].astype("int64"))
    out = inst.copy()
    for col in ("invoice_number", "company_id", "customer_id", "currency", "company_currency"):
        out[col] = out["invoice_id"].map(ident[col]).to_numpy()
    out["days_overdue"] = days.to_numpy()
    out["aging_bucket"] = policy.aging_bucket(out["company_id"], out["days_overdue"]).to_numpy()
    out["as_of_date"] = as_of_ts
    out["run_id"] = pd.Series(run_id, index=out.index, dtype=object)
    return out[instalments_mod.INSTALMENT_COLUMNS]


# -- report helpers (used for metadata; pure) --------------------------------------------------
def bucket_totals(aging: pd.DataFrame, bucket_order: tuple[str, ...]) -> pd.DataFrame:
    """Residual per currency and bucket (int64 units), with the row total; one row per currency."""
    if aging.empty:
        return pd.DataFrame(columns=["currency", *bucket_order, "total"])
    pivot = aging.pivot_table(index="currency", columns="aging_bucket", values="amount_residual",
                              aggfunc="sum", fill_value=0)
    extra = [b for b in pivot.columns if b not in bucket_order]
    pivot = pivot.reindex(columns=[*bucket_order, *extra], fill_value=0).astype("int64")
    pivot["total"] = pivot.sum(axis=1)
    return pivot.reset_index()


def bucket_totals_markdown(totals: pd.DataFrame, open_totals: pd.Series) -> str:
    """Bucket totals per currency with exact amounts and whether they reconcile with the open
    residual total per currency (`open_totals`: currency -> int64 units)."""
    if totals.empty:
        return "_no open receivables_"
    buckets = [c for c in totals.columns if c not in ("currency", "total")]
    head = "| Currency | " + " | ".join(buckets) + " | Total | Open residual | Reconciles |"
    sep = "|---|" + "---:|" * (len(buckets) + 2) + "---|"
    lines = [head, sep]
    for _, row in totals.iterrows():  # one row per currency
        cur = row["currency"]
        cells = [money.format_amount(int(row[b]), cur, with_code=False) for b in [*buckets, "total"]]
        open_total = int(open_totals.get(cur, 0))
        ok = "yes" if int(row["total"]) == open_total else "**NO**"
        lines.append(f"| {cur} | " + " | ".join(cells)
                     + f" | {money.format_amount(open_total, cur, with_code=False)} | {ok} |")
    return "\n".join(lines)

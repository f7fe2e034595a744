"""The dunning history: an append-only audit log, one row per stage change of an invoice.

Each night compares the aging table (the stage in effect and the hold of every open invoice)
with the last recorded row of each invoice and appends a row where they differ:

- entering dunning (`from_stage` null; reason `days_overdue`, or `hold` if it enters on hold,
  or `reopened` after it had been closed);
- moving up the ladder (`days_overdue`); after missed nights the jump is ONE row from the old
  stage to the new one, with `stages_skipped` counting the stages in between;
- going on hold or changing hold (`hold`), coming off it (`released`, straight to the calendar
  stage), a policy or segment change (`policy_change`), a due date moved (`due_date_changed`);
- `closed` when the invoice leaves the open set: `paid` (also settled within the tolerance),
  `credited` (reversed by a credit note), `cancelled` (cancelled or reset to draft), `removed`
  (no longer in Odoo, or a payment state that is not a receivable's).

Idempotent: an invoice that already has a row for the as-of day gets no other (the table's
unique key (invoice_id, as_of_date) backs this), so re-running a day adds nothing.

Forward-only: the history is a chain; a row dated before the latest recorded day would be
inserted behind rows that already assumed its absence. So a run whose as-of day is before the
latest recorded one records nothing and says so (`RecordResult.skipped`); it does not fail,
because replaying a past day to look at its aging table is a legitimate use of the pipeline.

The log is never updated or deleted (database triggers refuse it, see `tables.py`).
`dunning_state` holds each invoice's last row, written in the same transaction, so a night
reads one row per invoice instead of scanning the log. Quarantined invoices are left as they
are: no row until the data is fixed. Pure pandas, plus `record` which writes through the
warehouse in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from dunning_pipeline import lazy
from dunning_pipeline.dunning.policy import CLOSED, NO_STAGE, DunningPolicy
from dunning_pipeline.dunning.receivables import (
    CREDIT_NOTE,
    INVOICE,
    OPEN_PAYMENT_STATES,
)

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")

HISTORY_COLUMNS = [
    "invoice_id", "invoice_number", "move_type", "customer_id", "customer_name", "company_id", "currency",
    "company_currency", "from_stage", "to_stage", "as_of_date", "run_id", "reason", "stages_skipped",
    "days_overdue", "invoice_date_due", "amount_residual", "amount_residual_company", "hold_reason",
    "ticket_id", "recorded_at", "on_hold", "hold_since", "hold_until", "policy", "segment", "action",
    "manual_only",
]
STATE_COLUMNS = [
    "invoice_id", "invoice_number", "customer_id", "customer_name", "company_id", "currency",
    "company_currency", "move_type", "stage", "on_hold", "hold_reason", "hold_since", "policy", "segment",
    "invoice_date_due", "amount_residual", "amount_residual_company", "as_of_date", "history_id",
]


def empty_state() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in STATE_COLUMNS})


def _identity(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The invoice and customer columns a history row copies from an aging or state row."""
    return {
        "invoice_id": frame["invoice_id"].astype("int64"),
        "invoice_number": frame["invoice_number"],
        "move_type": frame["move_type"],
        "customer_id": frame["customer_id"].astype("int64"),
        "customer_name": frame["customer_name"],
        "company_id": frame["company_id"],
        "currency": frame["currency"],
        "company_currency": frame["company_currency"],
    }


def _none(s: pd.Series) -> pd.Series:
    """Object column with None for every kind of missing value (for exact comparisons)."""
    return s.astype(object).where(s.notna(), None)


def closure_reasons(raw_invoices: pd.DataFrame, invoice_ids: pd.Index, policy: DunningPolicy) -> pd.DataFrame:
    """Why invoices left the open set, from their raw Odoo record: invoice_id, reason (None:
    still an open receivable, e.g. held back by a data-quality check), and the residuals."""
    raw = raw_invoices[raw_invoices["id"].isin(invoice_ids)].drop_duplicates("id", keep="last")
    sign = np.where(raw["move_type"].to_numpy() == CREDIT_NOTE, -1, 1)
    residual = raw["amount_residual"].astype("Int64").abs() * sign
    residual_company = raw["amount_residual_signed"].astype("Int64").abs() * sign
    tolerance = policy.tolerance_units(raw["company_id"], raw["currency"])
    open_state = raw["payment_state"].isin(OPEN_PAYMENT_STATES)
    settled = (residual.abs().fillna(0) <= tolerance).to_numpy(dtype=bool)
    reason = np.select(
        [raw["state"].isin(["cancel", "draft"]).to_numpy(),
         (raw["payment_state"] == "reversed").to_numpy(),
         (raw["payment_state"] == "paid").to_numpy(),
         (open_state.to_numpy() & settled),
         (open_state | (raw["payment_state"] == "in_payment")).to_numpy()],
        ["cancelled", "credited", "paid", "paid", "__open__"], default="removed")
    found = pd.DataFrame({"invoice_id": raw["id"].astype("int64").to_numpy(), "reason": reason,
                          "amount_residual": residual.to_numpy(),
                          "amount_residual_company": residual_company.to_numpy()})
    missing = pd.Index(invoice_ids).difference(found["invoice_id"])
    gone = pd.DataFrame({"invoice_id": np.asarray(missing, dtype=np.int64), "reason": "removed",
                         "amount_residual": pd.array([pd.NA] * len(missing), dtype="Int64"),
                         "amount_residual_company": pd.array([pd.NA] * len(missing), dtype="Int64")})
    out = pd.concat([found, gone], ignore_index=True)
    out["reason"] = out["reason"].where(out["reason"] != "__open__", None)
    return out.set_index("invoice_id")


def transitions(
    aging: pd.DataFrame,
    prev_state: pd.DataFrame,
    raw_invoices: pd.DataFrame,
    policy: DunningPolicy,
    as_of: date,
    run_id: str,
    recorded_at: datetime | None = None,
    excluded_ids: set[int] | frozenset[int] = frozenset(),
) -> pd.DataFrame:
    """The history rows of one night (columns HISTORY_COLUMNS), given the night's aging table
    and each invoice's last recorded state. Credit notes are never dunned and get no rows."""
    as_of_ts = pd.Timestamp(as_of)
    a = aging[aging["move_type"] == INVOICE].set_index("invoice_id", drop=False)
    p = prev_state.set_index(prev_state["invoice_id"].astype("int64"), drop=False) if len(prev_state) else None
    done_today = (set(p.index[pd.to_datetime(p["as_of_date"]) >= as_of_ts]) if p is not None else set())

    a = a[~a.index.isin(done_today)]
    if p is not None:
        pa = p.reindex(a.index)
        has_prev = pa["stage"].notna().to_numpy()
        prev_stage = _none(pa["stage"])
        prev_hold = pa["on_hold"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        prev_reason = _none(pa["hold_reason"])
        prev_policy = _none(pa["policy"])
        prev_due = pd.to_datetime(pa["invoice_date_due"])
    else:
        has_prev = np.zeros(len(a), dtype=bool)
        prev_stage = prev_reason = prev_policy = pd.Series(None, index=a.index, dtype=object)
        prev_hold = np.zeros(len(a), dtype=bool)
        prev_due = pd.Series(pd.NaT, index=a.index)
    was_closed = has_prev & (prev_stage == CLOSED).to_numpy()
    active = has_prev & ~was_closed

    stage = _none(a["stage"])
    hold = a["hold_reason"].notna().to_numpy()
    reason_now = _none(a["hold_reason"])
    policy_now = _none(a["policy"])
    to_stage = stage.where(stage.notna() | ~pd.Series(active, index=a.index), NO_STAGE)

    # Invoices without a recorded state (or closed) enter when they have a stage.
    enter = ~active & stage.notna().to_numpy()
    enter_reason = np.where(hold, "hold", np.where(was_closed, "reopened", "days_overdue"))

    rank_from = policy.rank_of_names(a["policy"], prev_stage)
    rank_to = policy.rank_of_names(a["policy"], to_stage)
    hold_changed = hold & (~prev_hold | (reason_now != prev_reason).to_numpy())
    released = ~hold & prev_hold
    policy_changed = (policy_now != prev_policy).to_numpy()
    moved = (to_stage != prev_stage).to_numpy()
    change = active & (moved | hold_changed | released | policy_changed)
    up = (rank_to > rank_from).fillna(False).to_numpy(dtype=bool)
    # The due date the stage follows: the oldest open instalment's (an instalment paid moves it).
    due_now = pd.to_datetime(a["due_date"] if "due_date" in a else a["invoice_date_due"])
    due_moved = (due_now != prev_due).to_numpy() & prev_due.notna().to_numpy()
    change_reason = np.select(
        [hold_changed, released, policy_changed, up, due_moved],
        ["hold", "released", "policy_change", "days_overdue", "due_date_changed"], default="policy_change")

    emit = enter | change
    rows = a[emit]
    skipped = (rank_to - rank_from - 1).clip(lower=0).fillna(0).astype("int64")
    live = pd.DataFrame({
        **_identity(rows),
        "from_stage": prev_stage[emit].where(has_prev[emit], None),
        "to_stage": to_stage[emit],
        "reason": np.where(enter, enter_reason, change_reason)[emit],
        "stages_skipped": np.where(up | enter, skipped, 0)[emit],
        "days_overdue": rows["days_overdue"].astype("int64"),
        "invoice_date_due": due_now[emit],
        "amount_residual": rows["amount_residual"].astype("Int64"),
        "amount_residual_company": rows["amount_residual_company"].astype("Int64"),
        "hold_reason": rows["hold_reason"],
        "ticket_id": rows["hold_ticket_id"].astype("Int64"),
        "on_hold": hold[emit],
        "hold_since": rows["hold_since"],
        "hold_until": rows["hold_until"],
        "policy": rows["policy"],
        "segment": rows["segment"],
        "action": rows["action"].where(to_stage[emit] != NO_STAGE, None),
        "manual_only": rows["manual_only"].astype("boolean"),
    })

    parts = [live]
    if p is not None:
        gone = p[(p["stage"] != CLOSED) & ~p.index.isin(aging["invoice_id"]) & ~p.index.isin(done_today)
                 & ~p.index.isin(list(excluded_ids))]
        if len(gone):
            why = closure_reasons(raw_invoices, gone.index, policy).reindex(gone.index)
            gone, why = gone[why["reason"].notna()], why[why["reason"].notna()]
            due = pd.to_datetime(gone["invoice_date_due"])
            parts.append(pd.DataFrame({
                **_identity(gone),
                "from_stage": gone["stage"],
                "to_stage": CLOSED,
                "reason": why["reason"],
                "stages_skipped": 0,
                "days_overdue": (as_of_ts - due).dt.days.astype("Int64"),
                "invoice_date_due": due,
                "amount_residual": why["amount_residual"].astype("Int64"),
                "amount_residual_company": why["amount_residual_company"].astype("Int64"),
                "hold_reason": None,
                "ticket_id": pd.array([pd.NA] * len(gone), dtype="Int64"),
                "on_hold": False,
                "hold_since": pd.NaT,
                "hold_until": pd.NaT,
                "policy": gone["policy"],
                "segment": gone["segment"],
                "action": None,
                "manual_only": pd.array([pd.NA] * len(gone), dtype="boolean"),
            }))
    out = pd.concat([x for x in parts if len(x)] or [live], ignore_index=True)
    out["as_of_date"] = as_of_ts
    out["run_id"] = run_id
    out["recorded_at"] = pd.Timestamp(recorded_at) if recorded_at is not None else pd.NaT
    return out[HISTORY_COLUMNS].sort_values("invoice_id", kind="stable").reset_index(drop=True)


def apply_transitions(prev_state: pd.DataFrame, rows: pd.DataFrame,
                      history_ids: pd.Series | None = None) -> pd.DataFrame:
    """The state after `rows`: each invoice's last row wins (pure; mirrors `dunning_state`)."""
    if rows.empty:
        return prev_state.copy()
    new = state_from_rows(rows, history_ids)
    kept = prev_state[~prev_state["invoice_id"].isin(new["invoice_id"])] if len(prev_state) else None
    parts = [x for x in (kept, new) if x is not None and len(x)]
    return pd.concat(parts, ignore_index=True)[STATE_COLUMNS]


def state_from_rows(rows: pd.DataFrame, history_ids: pd.Series | None = None) -> pd.DataFrame:
    """State rows (STATE_COLUMNS) from history rows; the last row of each invoice wins."""
    last = rows.drop_duplicates("invoice_id", keep="last")
    on_hold = last["hold_reason"].notna()  # rows written before the on_hold column existed
    if "on_hold" in last:
        on_hold = last["on_hold"].astype("boolean").fillna(on_hold).astype(bool)
    out = pd.DataFrame({
        "invoice_id": last["invoice_id"].astype("int64"),
        "invoice_number": last["invoice_number"],
        "customer_id": last["customer_id"].astype("int64"),
        "customer_name": last["customer_name"],
        "company_id": last["company_id"],
        "currency": last["currency"],
        "company_currency": last["company_currency"],
        "move_type": last["move_type"],
        "stage": last["to_stage"],
        "on_hold": on_hold,
        "hold_reason": last["hold_reason"],
        "hold_since": last["hold_since"],
        "policy": last["policy"],
        "segment": last["segment"],
        "invoice_date_due": last["invoice_date_due"],
        "amount_residual": last["amount_residual"],
        "amount_residual_company": last["amount_residual_company"],
        "as_of_date": last["as_of_date"],
        "history_id": _history_ids(last, history_ids),
    })
    return out.reset_index(drop=True)


def _history_ids(last: pd.DataFrame, history_ids: pd.Series | None) -> pd.Series:
    if history_ids is not None:
        return last["invoice_id"].map(history_ids).astype("Int64")
    if "id" in last:
        return last["id"].astype("Int64")
    return pd.Series(pd.NA, index=last.index, dtype="Int64")


# -- the warehouse side ------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordResult:
    rows: pd.DataFrame          # the rows appended by this run (empty if none or skipped)
    skipped: bool               # True: the as-of day is before the latest recorded one
    latest_recorded: date | None


def latest_recorded(warehouse, conn=None) -> date | None:
    """The latest as-of day in the log, or None when it is empty."""
    stmt = sa.select(sa.func.max(warehouse.table("dunning_history").c.as_of_date))
    if conn is not None:
        value = conn.execute(stmt).scalar_one_or_none()
    else:
        with warehouse.begin() as own:
            value = own.execute(stmt).scalar_one_or_none()
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def state_from_history(warehouse, before: date | None = None, conn=None) -> pd.DataFrame:
    """Each invoice's last history row (optionally only rows before a day), as state."""
    t = warehouse.table("dunning_history")
    where = t.c.as_of_date < before if before is not None else None
    rows = warehouse.read("dunning_history", where=where, order_by=["invoice_id", "as_of_date", "id"], conn=conn)
    if rows.empty:
        return empty_state()
    return state_from_rows(rows)


def load_state(warehouse, as_of: date, conn=None, *, active_only: bool = False) -> pd.DataFrame:
    """The recorded state as the night of `as_of` should see it: `dunning_state` normally; the
    log itself when replaying a day before the latest recorded one, or if the state is missing.
    `active_only` leaves out closed invoices (all that the aging table needs)."""
    state = _load_state(warehouse, as_of, conn, active_only)[0]
    return state[state["stage"] != CLOSED] if active_only else state


def _load_state(warehouse, as_of: date, conn=None, active_only: bool = False) -> tuple[pd.DataFrame, bool]:
    """(state, rebuilt): rebuilt is True when the state had to be derived from the log."""
    latest = latest_recorded(warehouse, conn)
    if latest is None:
        return empty_state(), False
    if as_of < latest:
        return state_from_history(warehouse, before=as_of, conn=conn), True
    t = warehouse.table("dunning_state")
    state = warehouse.read("dunning_state", where=t.c.stage != CLOSED if active_only else None, conn=conn)
    if state.empty and warehouse.count("dunning_state", conn=conn) == 0:  # e.g. restored from the log alone
        return state_from_history(warehouse, conn=conn), True
    return state, False


def record(
    warehouse,
    aging: pd.DataFrame,
    raw_invoices: pd.DataFrame,
    policy: DunningPolicy,
    as_of: date,
    run_id: str,
    recorded_at: datetime,
    excluded_ids: set[int] | frozenset[int] = frozenset(),
    on_recorded=None,
) -> RecordResult:
    """Append the night's transitions and update `dunning_state`, in one transaction;
    `on_recorded(conn)` runs in it when the day was recorded (not skipped), e.g. to note the build."""
    with warehouse.begin() as conn:
        if warehouse.dialect == "postgresql":
            # One writer at a time: a concurrent run of the same day waits, then adds nothing.
            conn.exec_driver_sql("LOCK TABLE dunning_history, dunning_state IN SHARE ROW EXCLUSIVE MODE")
        latest = latest_recorded(warehouse, conn)
        if latest is not None and as_of < latest:
            return RecordResult(rows=pd.DataFrame(columns=HISTORY_COLUMNS), skipped=True, latest_recorded=latest)
        prev, rebuilt = _load_state(warehouse, as_of, conn)
        if rebuilt and len(prev):
            warehouse.upsert("dunning_state", prev, conn=conn)
        rows = transitions(aging, prev, raw_invoices, policy, as_of, run_id, recorded_at, excluded_ids)
        if len(rows):
            warehouse.append("dunning_history", rows, conn=conn)
            t = warehouse.table("dunning_history")
            ids = warehouse.read("dunning_history", columns=["id", "invoice_id"],
                                 where=sa.and_(t.c.as_of_date == as_of, t.c.run_id == run_id), conn=conn)
            history_ids = pd.Series(ids["id"].to_numpy(), index=ids["invoice_id"].to_numpy())
            warehouse.upsert("dunning_state", state_from_rows(rows, history_ids), conn=conn)
        if on_recorded is not None:
            on_recorded(conn)
        return RecordResult(rows=rows, skipped=False, latest_recorded=latest)

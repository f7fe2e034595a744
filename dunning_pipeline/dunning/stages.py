"""Stages: where each invoice stands on its policy's ladder, as of a day.

The stage follows from the calendar: an invoice is at the last stage of its policy whose
`days` (relative to the due date) it has reached on the as-of day. So a missed night or week
never leaves an invoice behind: the next run puts it where the calendar says, and the history
records the jump.

A hold freezes the stage as of the day the hold began: the invoice stays at the stage it had
reached that day (or at the stage it was recorded in, if that is higher; a hold never lowers a
stage). Because the freeze depends on the hold's start and not on which nights ran, a
catch-up run reaches the same stage as nightly runs would have. When the hold ends, the
invoice goes straight to its calendar stage ("released").

Ranks are 0-based positions in the policy's ladder; -1 is "before the first stage".
Pure pandas/numpy: no loop over invoices.
"""

from __future__ import annotations

from datetime import date

from dunning_pipeline import lazy
from dunning_pipeline.dunning.policy import DunningPolicy

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
np = lazy.module("numpy")
pd = lazy.module("pandas")


def days_overdue(due: pd.Series, as_of: date) -> pd.Series:
    """As-of day minus due date, in whole days (negative: not yet due)."""
    return (pd.Timestamp(as_of) - pd.to_datetime(due)).dt.days


def due_ranks(policy: DunningPolicy, policies: pd.Series, due: pd.Series, as_of: date) -> pd.Series:
    """Rank of the calendar stage of each invoice on the as-of day."""
    return policy.stage_rank(policies, days_overdue(due, as_of))


def effective_ranks(
    policy: DunningPolicy,
    policies: pd.Series,
    due: pd.Series,
    as_of: date,
    hold_since: pd.Series,
    prev_stage: pd.Series,
) -> tuple[pd.Series, pd.Series]:
    """(calendar rank, rank in effect) per invoice.

    `hold_since` is the start of the invoice's hold (NaT: not on hold); `prev_stage` the stage
    last recorded in the history (null: none, or closed)."""
    due_rank = due_ranks(policy, policies, due, as_of)
    on_hold = hold_since.notna().to_numpy()
    if not on_hold.any():
        return due_rank, due_rank.copy()
    since = pd.to_datetime(hold_since).where(on_hold, pd.Timestamp(as_of))
    since_rank = policy.stage_rank(policies, (since - pd.to_datetime(due)).dt.days)
    since_rank = np.minimum(since_rank.to_numpy(), due_rank.to_numpy())  # a hold cannot start in the future
    prev_rank = policy.rank_of_names(policies, prev_stage).fillna(-1).to_numpy(dtype=np.int64)
    frozen = np.maximum(since_rank, prev_rank)
    eff = np.where(on_hold, frozen, due_rank.to_numpy())
    return due_rank, pd.Series(eff, index=due_rank.index, dtype="int64")

"""One night of the engine in memory: raw frames in, receivables, aging and history rows out.

The assets run the same steps one by one through the warehouse; this composition is for the
tests, the benchmark and anyone who wants to try a policy on an extract. Pure pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from dunning_pipeline.dunning import history
from dunning_pipeline.dunning.aging import build_aging
from dunning_pipeline.dunning.communications import build_communications
from dunning_pipeline.dunning.policy import DunningPolicy
from dunning_pipeline.dunning.receivables import build_receivables, quarantined_ids

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Night:
    receivables: pd.DataFrame
    excluded: pd.DataFrame
    communications: pd.DataFrame | None
    aging: pd.DataFrame
    instalments: pd.DataFrame  # one row per open instalment
    rows: pd.DataFrame      # history rows of the night
    state: pd.DataFrame     # each invoice's last history row after the night


def run_night(
    invoices: pd.DataFrame,
    customers: pd.DataFrame,
    policy: DunningPolicy,
    as_of: date,
    prev_state: pd.DataFrame | None = None,
    *,
    tickets: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    comments: pd.DataFrame | None = None,
    manual_holds: pd.DataFrame | None = None,
    quarantine: pd.DataFrame | None = None,
    lines: pd.DataFrame | None = None,
    run_id: str = "in-memory",
    tz: ZoneInfo = UTC_ZONE,
    recorded_at: datetime | None = None,
) -> Night:
    prev_state = history.empty_state() if prev_state is None else prev_state
    recv, excluded = build_receivables(invoices, customers, policy, as_of, quarantine)
    comms = None
    if tickets is not None:
        comms = build_communications(tickets, users, comments, customers, invoices, policy, as_of, tz)
    result = build_aging(recv, policy, as_of, tz, communications=comms, manual_holds=manual_holds,
                         customers=customers, prev_state=prev_state, run_id=run_id, lines=lines)
    recorded_at = recorded_at or datetime(as_of.year, as_of.month, as_of.day)  # no clock in here
    rows = history.transitions(result.aging, prev_state, invoices, policy, as_of, run_id, recorded_at,
                               excluded_ids=quarantined_ids(quarantine, "odoo_invoices"))
    state = history.apply_transitions(prev_state, rows)
    return Night(recv, pd.concat([excluded, result.excluded], ignore_index=True), comms, result.aging,
                 result.instalments, rows, state)

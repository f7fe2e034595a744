"""Stages: the calendar stage of an invoice on the boundary days of each threshold, and the stage
in effect under a hold (frozen as of the hold's start, never below the recorded stage).

Expectations are written from the default policy (policies.default: pre_due -3, reminder_1 1,
reminder_2 8, call 15, final_notice 31, collection 45; key_accounts the same 14 days later after
the due date), not computed by the code under test."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from dunning_pipeline.dunning.policy import PolicyError, load_policy
from dunning_pipeline.dunning.stages import days_overdue, due_ranks, effective_ranks

POLICY = load_policy()
AS_OF = date(2026, 3, 2)
PRE_DUE, REMINDER_1, REMINDER_2, CALL, FINAL_NOTICE, COLLECTION = range(6)


def _due(days_overdue_on_as_of: int) -> pd.Timestamp:
    return pd.Timestamp(AS_OF) - pd.Timedelta(days=days_overdue_on_as_of)


def test_days_overdue_counts_whole_days_from_the_due_date():
    due = pd.Series([pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-02"), pd.Timestamp("2026-03-05"),
                     pd.Timestamp("2025-12-02")], index=[7, 8, 9, 10])
    got = days_overdue(due, AS_OF)
    assert got.to_dict() == {7: 1, 8: 0, 9: -3, 10: 90}


# (days overdue on the as-of day, rank by the default ladder): the day before and the day of
# each threshold, so a stage is reached on its own day (>=), not the day after (>).
DEFAULT_BOUNDARIES = [
    (-400, -1), (-4, -1), (-3, PRE_DUE), (0, PRE_DUE), (1, REMINDER_1), (7, REMINDER_1),
    (8, REMINDER_2), (14, REMINDER_2), (15, CALL), (30, CALL), (31, FINAL_NOTICE), (44, FINAL_NOTICE),
    (45, COLLECTION), (4000, COLLECTION),
]


def test_the_calendar_stage_is_reached_on_its_threshold_day_and_not_before():
    days = [d for d, _ in DEFAULT_BOUNDARIES]
    due = pd.Series([_due(d) for d in days], index=range(100, 100 + len(days)))
    got = due_ranks(POLICY, pd.Series(["default"] * len(days), index=due.index), due, AS_OF)
    assert list(got.index) == list(due.index)
    assert dict(zip(days, got)) == dict(DEFAULT_BOUNDARIES)


def test_each_invoice_is_ranked_by_its_own_policy():
    # key_accounts: reminder_1 at 15 days, reminder_2 at 22, call at 29; pre_due stays at -3.
    cases = [("key_accounts", -3, PRE_DUE), ("key_accounts", 14, PRE_DUE), ("key_accounts", 15, REMINDER_1),
             ("key_accounts", 22, REMINDER_2), ("key_accounts", 29, CALL), ("default", 14, REMINDER_2),
             ("default", 15, CALL)]
    policies = pd.Series([c[0] for c in cases])
    due = pd.Series([_due(c[1]) for c in cases])
    assert list(due_ranks(POLICY, policies, due, AS_OF)) == [c[2] for c in cases]


def test_an_unknown_policy_name_is_refused():
    with pytest.raises(PolicyError, match="nonexistent"):
        due_ranks(POLICY, pd.Series(["nonexistent"]), pd.Series([_due(20)]), AS_OF)


def _effective(days: list[int], hold_since: list, prev_stage: list, policy: str = "default"):
    index = pd.Index(range(500, 500 + len(days)))
    due = pd.Series([_due(d) for d in days], index=index)
    since = pd.Series(pd.to_datetime(hold_since), index=index)
    prev = pd.Series(prev_stage, index=index, dtype=object)
    calendar, eff = effective_ranks(POLICY, pd.Series([policy] * len(days), index=index), due, AS_OF, since, prev)
    assert list(calendar.index) == list(index) and list(eff.index) == list(index)
    return list(calendar), list(eff)


def test_without_holds_the_stage_in_effect_is_the_calendar_stage():
    calendar, eff = _effective([-5, 1, 20, 50], [None] * 4, [None, "pre_due", "reminder_1", "final_notice"])
    assert calendar == [-1, REMINDER_1, CALL, COLLECTION]
    assert eff == calendar


def test_a_hold_freezes_the_stage_reached_on_the_day_it_began():
    # 20 days overdue today (calendar: call); held since day 10 (reminder_2 since day 8).
    since_day_10 = _due(20) + pd.Timedelta(days=10)
    calendar, eff = _effective([20], [since_day_10], [None])
    assert (calendar, eff) == ([CALL], [REMINDER_2])


def test_a_hold_that_began_on_a_threshold_day_keeps_that_days_stage():
    # Held from day 15, the day the call stage is reached: the call stands; from day 14, it does not.
    on_15 = _due(40) + pd.Timedelta(days=15)
    on_14 = _due(40) + pd.Timedelta(days=14)
    calendar, eff = _effective([40, 40], [on_15, on_14], [None, None])
    assert calendar == [FINAL_NOTICE, FINAL_NOTICE]
    assert eff == [CALL, REMINDER_2]


def test_a_hold_never_lowers_the_recorded_stage():
    # Held since day 2 (reminder_1), but the history already recorded the call.
    since_day_2 = _due(20) + pd.Timedelta(days=2)
    _calendar, eff = _effective([20, 20], [since_day_2, since_day_2], ["call", "reminder_1"])
    assert eff == [CALL, REMINDER_1]


def test_a_hold_before_the_first_stage_keeps_the_invoice_unstaged():
    # Disputed before pre_due (and nothing recorded, or recorded as `none` or closed): no stage.
    before = _due(20) - pd.Timedelta(days=30)
    _calendar, eff = _effective([20, 20], [before, before], [None, "none"])
    assert eff == [-1, -1]


def test_a_recorded_stage_the_policy_no_longer_has_does_not_lift_a_hold():
    since_day_2 = _due(20) + pd.Timedelta(days=2)
    before = _due(20) - pd.Timedelta(days=30)
    _calendar, eff = _effective([20, 20], [since_day_2, before], ["retired_stage", "retired_stage"])
    assert eff == [REMINDER_1, -1]


def test_a_hold_dated_after_the_as_of_day_cannot_raise_the_stage_above_the_calendar():
    # A hold entered with a start in the future is frozen at today's calendar stage, not later.
    calendar, eff = _effective([14], [pd.Timestamp(AS_OF) + pd.Timedelta(days=5)], [None])
    assert (calendar, eff) == ([REMINDER_2], [REMINDER_2])


def test_only_held_invoices_are_frozen():
    since_day_2 = _due(40) + pd.Timedelta(days=2)
    calendar, eff = _effective([40, 40, 3], [since_day_2, None, None], [None, "reminder_1", None])
    assert calendar == [FINAL_NOTICE, FINAL_NOTICE, REMINDER_1]
    assert eff == [REMINDER_1, FINAL_NOTICE, REMINDER_1]


def test_the_freeze_follows_the_invoices_own_policy():
    # key_accounts: held from day 20, between reminder_1 (15) and reminder_2 (22).
    since_day_20 = _due(40) + pd.Timedelta(days=20)
    calendar, eff = _effective([40], [since_day_20], [None], policy="key_accounts")
    assert (calendar, eff) == ([CALL], [REMINDER_1])

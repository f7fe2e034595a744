"""Property tests (hypothesis): buckets partition the open amount, stages never go back as days
grow, netting never makes a balance negative, and catch-up after missed nights records the same
history as running every night, apart from the recorded jumps."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dunning_pipeline.dunning import history, netting
from dunning_pipeline.dunning.aging import bucket_totals, build_aging
from dunning_pipeline.dunning.policy import CLOSED, bucket_labels, load_policy, parse_policy
from dunning_pipeline.dunning.receivables import build_receivables

POLICY = load_policy()
_UTC = ZoneInfo("UTC")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _policy_with(bounds: list[int], company_bounds: list[int], stage_days: list[int]) -> object:
    stages = "\n".join(f"      - {{name: s{i}, days: {d}, action: email, tone: polite}}" for i, d in enumerate(stage_days))
    return parse_policy(
        f"aging_buckets: {bounds}\npolicies:\n  default:\n    stages:\n{stages}\n"
        f"companies:\n  2:\n    aging_buckets: {company_bounds}\n")


bounds_strategy = st.lists(st.integers(1, 400), min_size=1, max_size=6, unique=True).map(sorted)
ladder_strategy = st.lists(st.integers(-30, 200), min_size=1, max_size=8, unique=True).map(sorted)


@FAST
@given(
    bounds=bounds_strategy,
    company_bounds=bounds_strategy,
    rows=st.lists(st.tuples(st.integers(-500, 500), st.integers(-10**13, 10**13), st.sampled_from(["EUR", "USD", "JPY"]),
                            st.sampled_from([1, 2])), min_size=1, max_size=80),
)
def test_buckets_partition_the_open_amount_exactly(bounds, company_bounds, rows):
    policy = _policy_with(bounds, company_bounds, [1])
    frame = pd.DataFrame(rows, columns=["days_overdue", "amount_residual", "currency", "company_id"])
    frame["aging_bucket"] = policy.aging_bucket(frame["company_id"], frame["days_overdue"])
    for row in frame.itertuples():
        own = bounds if row.company_id == 1 else company_bounds
        # exactly one bucket of the company's own set contains the row's days
        containing = [label for label, lo, hi in _intervals(own) if lo <= row.days_overdue <= hi]
        assert containing == [row.aging_bucket]
    totals = bucket_totals(frame, policy.all_bucket_labels()).set_index("currency")
    expected = frame.groupby("currency")["amount_residual"].sum()
    buckets = [c for c in totals.columns if c != "total"]
    for cur, total in expected.items():
        assert int(totals.loc[cur, buckets].sum()) == int(total) == int(totals.loc[cur, "total"])


def _intervals(bounds: list[int]):
    labels = bucket_labels(tuple(bounds))
    edges = [-(10**9), 0, *bounds, 10**9]
    return [(label, lo + 1 if i else lo, hi) for i, (label, lo, hi) in enumerate(zip(labels, edges, edges[1:], strict=False))]


@FAST
@given(ladder=ladder_strategy, delay=st.integers(0, 30), days=st.lists(st.integers(-400, 400), min_size=2, max_size=60))
def test_stage_never_decreases_as_days_overdue_grow(ladder, delay, days):
    stages = "\n".join(f"      - {{name: s{i}, days: {d}, action: email, tone: polite}}" for i, d in enumerate(ladder))
    text = f"policies:\n  default:\n    stages:\n{stages}\n  later:\n    extends: default\n    delay_days: {delay}\n"
    # Any sorted ladder with any non-negative delay is a valid policy: no error may be swallowed.
    policy = parse_policy(text)
    ordered = pd.Series(sorted(days))
    for name in ("default", "later"):
        ranks = policy.stage_rank(pd.Series([name] * len(ordered)), ordered).to_numpy()
        assert (np.diff(ranks) >= 0).all()
        thresholds = [s.days for s in policy.ladders[name].stages]
        assert ranks.tolist() == [sum(t <= d for t in thresholds) - 1 for d in ordered]
    # the shipped ladders too
    for name in POLICY.ladders:
        ranks = POLICY.stage_rank(pd.Series([name] * len(ordered)), ordered).to_numpy()
        assert (np.diff(ranks) >= 0).all()


@FAST
@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["out_invoice", "out_refund"]),
                          st.integers(0, 10**10), st.integers(-60, 60), st.sampled_from(["open", "open", "in_payment"])),
                min_size=1, max_size=40))
def test_netting_never_makes_a_balance_negative(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "move_type", "amount", "days", "receivable_status"])
    sign = np.where(frame["move_type"] == "out_refund", -1, 1)
    recv = pd.DataFrame({
        "invoice_id": np.arange(len(frame)) + 1, "customer_id": frame["customer_id"], "company_id": 1,
        "move_type": frame["move_type"], "receivable_status": frame["receivable_status"],
        "amount_residual_company": frame["amount"] * sign,
        "invoice_date": pd.Timestamp("2026-01-01"),
        "invoice_date_due": pd.Timestamp("2026-03-01") - pd.to_timedelta(frame["days"], unit="D"),
    })
    days = frame["days"]
    net = netting.net_credit_notes(recv, days)
    invoices = (recv["move_type"] == "out_invoice") & (recv["receivable_status"] == "open")
    owed = recv["amount_residual_company"].where(invoices, 0)
    n = net["net_residual_company"]
    assert (n[invoices] >= 0).all() and (n[invoices] <= owed[invoices]).all()
    assert n[~invoices].isna().all()
    for _customer, grp in recv.groupby("customer_id"):
        credits = -grp["amount_residual_company"][(grp["move_type"] == "out_refund") & (grp["receivable_status"] == "open")].sum()
        covered = net.loc[grp.index, "covered_company"].sum()
        assert covered == min(credits, owed[grp.index].sum())
        overdue = owed[grp.index][days[grp.index] > 0].sum()
        assert (net.loc[grp.index, "customer_net_overdue_company"] == overdue - credits).all()
        if overdue - credits <= 0:  # net not positive: none of its overdue invoices is left to dun
            mask = invoices[grp.index] & (days[grp.index] > 0)
            assert (n[grp.index][mask] == 0).all()
        # oldest due first: an invoice with something left means no later-due invoice took credit
        inv = grp[invoices[grp.index]].assign(net=n[grp.index], cov=net.loc[grp.index, "covered_company"])
        inv = inv.sort_values(["invoice_date_due", "invoice_id"])
        left = inv["net"].to_numpy() > 0
        if left.any():
            assert (inv["cov"].to_numpy()[np.argmax(left) + 1:] == 0).all()


# -- 60 nights: every night versus catch-up after gaps ----------------------------------------
START = date(2026, 1, 5)
NIGHTS = 60

invoice_strategy = st.fixed_dictionaries({
    "due": st.integers(-10, 55),                      # due date, days after the first night
    "customer": st.sampled_from([1, 2]),              # 2 is a key account (another ladder)
    "paid": st.one_of(st.none(), st.integers(0, NIGHTS - 1)),
    "in_payment_days": st.integers(0, 3),             # payment on its way that many days before it is paid
    "promise": st.one_of(st.none(), st.tuples(st.integers(0, NIGHTS - 1), st.integers(0, 12))),
    "exclusion": st.one_of(st.none(), st.tuples(st.integers(0, NIGHTS - 1), st.integers(1, 20))),
})


def _raw_invoices(invoices: list[dict], night: int) -> pd.DataFrame:
    rows = []
    for i, spec in enumerate(invoices):
        paid = spec["paid"] is not None and night >= spec["paid"]
        in_payment = (spec["paid"] is not None and not paid and spec["in_payment_days"] > 0
                      and night >= spec["paid"] - spec["in_payment_days"])
        state_night = (spec["paid"] - spec["in_payment_days"]) if in_payment else 0
        rows.append({
            "id": 1000 + i, "name": f"INV/2026/{1000 + i:05d}", "move_type": "out_invoice", "state": "posted",
            "payment_state": "paid" if paid else ("in_payment" if in_payment else "not_paid"),
            "partner_id": spec["customer"], "partner_name": "x", "commercial_partner_id": spec["customer"],
            "company_id": 1, "company_name": "c", "currency": "EUR", "company_currency": "EUR",
            "invoice_date": pd.Timestamp(START) + pd.Timedelta(days=spec["due"] - 30),
            "invoice_date_due": pd.Timestamp(START) + pd.Timedelta(days=spec["due"]),
            "amount_total": 1_000_000, "amount_residual": 0 if paid else 1_000_000,
            "amount_total_signed": 1_000_000, "amount_residual_signed": 0 if paid else 1_000_000,
            "write_date": pd.Timestamp(START) + pd.Timedelta(days=state_night, hours=10),
        })
    return pd.DataFrame(rows)


def _manual_holds(invoices: list[dict]) -> pd.DataFrame:
    rows = []
    for i, spec in enumerate(invoices):
        if spec["promise"] is not None:
            start, length = spec["promise"]
            rows.append({"id": len(rows) + 1, "customer_id": None, "invoice_id": 1000 + i, "kind": "promise",
                         "until": pd.Timestamp(START) + pd.Timedelta(days=start + length), "note": "p",
                         "created_by": "t", "created_at": pd.Timestamp(START) + pd.Timedelta(days=start, hours=9)})
        if spec["exclusion"] is not None:
            start, length = spec["exclusion"]
            rows.append({"id": len(rows) + 1, "customer_id": None, "invoice_id": 1000 + i, "kind": "exclusion",
                         "until": pd.Timestamp(START) + pd.Timedelta(days=start + length), "note": "e",
                         "created_by": "t", "created_at": pd.Timestamp(START) + pd.Timedelta(days=start, hours=9)})
    cols = ["id", "customer_id", "invoice_id", "kind", "until", "note", "created_by", "created_at"]
    return pd.DataFrame(rows, columns=cols)


CUSTOMERS = pd.DataFrame({"id": [1, 2], "name": ["One", "Two"], "email": [None, None], "phone": None, "lang": None,
                          "country": None, "vat": None, "commercial_partner_id": [1, 2],
                          "tags": ["[]", '["Key Account"]']})


def _snapshot(state: pd.DataFrame) -> dict[int, tuple]:
    """Invoices in dunning and where they stand. Closed ones are left out: an invoice that entered
    and left dunning while no run happened was never dunned, so a catch-up rightly has no row."""
    if state.empty:
        return {}
    return {int(r.invoice_id): (r.stage, bool(r.on_hold), None if pd.isna(r.hold_reason) else r.hold_reason)
            for r in state.itertuples() if r.stage != CLOSED}


# Each example runs the engine on 60 + up to 9 nights, so few examples; no shrinking (it would
# re-run whole simulations for minutes): a failure prints the generated example as it is.
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(invoices=st.lists(invoice_strategy, min_size=1, max_size=12),
       gap_nights=st.sets(st.integers(0, NIGHTS - 2), max_size=8))
def test_sixty_nights_one_by_one_or_after_gaps_give_the_same_history(invoices, gap_nights):
    manual = _manual_holds(invoices)
    schedule = sorted(gap_nights | {NIGHTS - 1})
    nightly_state, gap_state = history.empty_state(), history.empty_state()
    nightly_rows: list[pd.DataFrame] = []
    states: dict[int, dict] = {-1: {}}
    for night in range(NIGHTS):
        as_of = START + timedelta(days=night)
        raw = _raw_invoices(invoices, night)
        recv, _ = build_receivables(raw, CUSTOMERS, POLICY, as_of)

        def step(prev, recv=recv, raw=raw, as_of=as_of, night=night):
            aging = build_aging(recv, POLICY, as_of, _UTC, manual_holds=manual, customers=CUSTOMERS,
                                prev_state=prev).aging
            rows = history.transitions(aging, prev, raw, POLICY, as_of, f"run-{night}")
            return rows, history.apply_transitions(prev, rows)

        rows, nightly_state = step(nightly_state)
        nightly_rows.append(rows.assign(night=night))
        states[night] = _snapshot(nightly_state)
        if night in schedule:
            gap_rows, gap_state = step(gap_state)
            # 1. after a catch-up the recorded state is exactly the every-night state
            assert _snapshot(gap_state) == states[night]
            # 2. the catch-up records one row per invoice whose state changed since its last run,
            #    from the state then to the state now; nothing for invoices that ended where they began
            before = states[max([s for s in schedule if s < night], default=-1)]
            changed = {i for i in set(before) | set(states[night]) if before.get(i) != states[night].get(i)}
            assert set(gap_rows["invoice_id"]) == changed
            for row in gap_rows.itertuples():
                was = before.get(row.invoice_id)
                assert (row.from_stage if isinstance(row.from_stage, str) else None) == (was[0] if was else None)
                assert row.to_stage == states[night].get(row.invoice_id, (CLOSED,))[0]
                # 3. a jump up the ladder counts the stages the nightly run went through one by one
                window = pd.concat(nightly_rows)
                window = window[(window["invoice_id"] == row.invoice_id)
                                & (window["night"] > max([s for s in schedule if s < night], default=-1))]
                if row.reason == "days_overdue" and (window["reason"] == "days_overdue").all():
                    assert row.stages_skipped == int((window["stages_skipped"] + 1).sum()) - 1
    # a paid invoice is out of dunning, its last row says paid; the nightly log moved one stage at a time
    final = states[NIGHTS - 1]
    log = pd.concat(nightly_rows)
    for i, spec in enumerate(invoices):
        if spec["paid"] is not None:
            assert (1000 + i) not in final
            mine = log[log["invoice_id"] == 1000 + i]
            if len(mine):
                assert (mine["to_stage"].iloc[-1], mine["reason"].iloc[-1]) == (CLOSED, "paid")
    moving = log[(log["reason"] == "days_overdue") & log["from_stage"].notna()]
    assert (moving["stages_skipped"] == 0).all()



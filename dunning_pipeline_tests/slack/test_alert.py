"""Exactly-once delivery of the weekly alert against the sandbox's Slack and a real warehouse
(SQLite and PostgreSQL): retries, duplicate ticks, re-runs, and failures half-way."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.alert import AlertInProgressError, deliver
from dunning_pipeline.slack.delivery import SlackDeliveryError, SlackPoster
from dunning_pipeline.slack.digest import FIRST_ALERT, LONG_GAP, Limits, Links, Period, render_digest
from dunning_pipeline.slack.tables import alert_deliveries, alert_delivery_parts
from dunning_pipeline_tests.slack.history import frame, row
from dunning_pipeline_tests.slack.test_digest import _texts

MAR2, MAR9 = date(2026, 3, 2), date(2026, 3, 9)
# Small messages so that a handful of customers needs several parts.
SMALL = Limits(blocks_per_message=6, section_chars=400)


class Log:
    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


def week(wh, end: date, customers: int = 12, first_id: int = 1):
    """`customers` invoices entering call during the week ending `end`."""
    rows = [row(first_id + i, first_id + i, f"Customer {first_id + i}", "reminder_2", "call",
                end - timedelta(days=i % 7), amount=f"{100 * (i + 1)}.00", due=end - timedelta(days=20))
            for i in range(customers)]
    wh.append("dunning_history", frame(rows))


def run(wh, sandbox, end, *, run_id="run-1", active=lambda _r: False, dry_run=False, log=None, limits=SMALL):
    poster = SlackPoster(sandbox.env["SLACK_BOT_TOKEN"], api_url=sandbox.slack_api_url)
    return deliver(
        wh, poster, period_end=end, channel="#dunning", run_id=run_id,
        render=lambda history, period: render_digest(history, period, links=Links(), limits=limits),
        is_run_active=active, log=log or Log(), dry_run=dry_run,
    )


def parts(wh, end=MAR2):
    return ledger.get_delivery(wh, "weekly_dunning", end).parts


def test_a_retried_run_a_duplicate_tick_and_a_manual_rerun_post_nothing_again(warehouse, sandbox):
    week(warehouse, MAR2)
    first = run(warehouse, sandbox, MAR2, run_id="run-1")
    n = len(first.messages)
    assert first.status == "posted" and n >= 3
    sent = sandbox.slack_messages
    assert [m["text"] for m in sent] == [m.text for m in first.messages]
    assert [m["blocks"] for m in sent] == [m.blocks for m in first.messages]
    # Part 1 goes to the channel; the others reply in its thread.
    assert "thread_ts" not in sent[0] and all(m["thread_ts"] == sent[0]["ts"] for m in sent[1:])
    assert [(p.status, p.ts) for p in parts(warehouse)] == [("posted", m["ts"]) for m in sent]

    for run_id in ("run-1", "run-1-retry", "run-manual"):
        again = run(warehouse, sandbox, MAR2, run_id=run_id)
        assert (again.status, again.posted_now, again.posted_before) == ("already_delivered", [], n)
    assert len(sandbox.slack_messages) == n
    assert ledger.get_delivery(warehouse, "weekly_dunning", MAR2).status == "delivered"


def test_after_a_failure_half_way_the_next_run_posts_only_the_missing_parts(warehouse, sandbox):
    week(warehouse, MAR2)
    sandbox.faults.set("slack", "slow", path="chat.postMessage", delay=0)  # the first message goes through
    sandbox.faults.set("slack", "slack_error", path="chat.postMessage", error="fatal_error")  # the second fails
    with pytest.raises(SlackDeliveryError) as err:
        run(warehouse, sandbox, MAR2, run_id="run-1")
    assert err.value.code == "fatal_error"
    assert len(sandbox.slack_messages) == 1
    state = parts(warehouse)
    assert [(p.status, p.last_error) for p in state[:3]] == [("posted", None), ("pending", "fatal_error"),
                                                            ("pending", None)]

    resumed = run(warehouse, sandbox, MAR2, run_id="run-2")
    sent = sandbox.slack_messages
    assert (resumed.status, resumed.posted_before) == ("posted", 1)
    assert [p for p, _ts in resumed.posted_now] == list(range(2, len(state) + 1))
    # Every part exactly once, in order, the late ones in the first one's thread.
    assert [m["text"] for m in sent] == [p.text for p in state]
    assert all(m["thread_ts"] == sent[0]["ts"] for m in sent[1:])
    after = parts(warehouse)
    assert [p.ts for p in after] == [m["ts"] for m in sent]
    assert after[1].attempts == 2 and after[1].last_error is None
    assert run(warehouse, sandbox, MAR2, run_id="run-3").status == "already_delivered"
    assert len(sandbox.slack_messages) == len(state)


def test_a_week_that_never_reached_slack_is_covered_by_the_next_alert(warehouse, sandbox):
    week(warehouse, MAR2, customers=2, first_id=1)
    sandbox.faults.set("slack", "slack_error", path="chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackDeliveryError):
        run(warehouse, sandbox, MAR2, run_id="run-1")
    week(warehouse, MAR9, customers=2, first_id=100)
    outcome = run(warehouse, sandbox, MAR9, run_id="run-2")
    assert (outcome.status, outcome.superseded) == ("posted", [MAR2])
    text = str([m["blocks"] for m in sandbox.slack_messages])
    for name in ("Customer 1", "Customer 2", "Customer 100", "Customer 101"):
        assert f"*{name}*" in text
    assert ledger.get_delivery(warehouse, "weekly_dunning", MAR2).status == "superseded"
    assert outcome.history_rows == 4


def test_a_half_posted_older_alert_is_finished_before_the_new_one(warehouse, sandbox):
    week(warehouse, MAR2)
    sandbox.faults.set("slack", "slow", path="chat.postMessage", delay=0)
    sandbox.faults.set("slack", "slack_error", path="chat.postMessage", error="fatal_error")
    with pytest.raises(SlackDeliveryError):
        run(warehouse, sandbox, MAR2, run_id="run-1")
    old = parts(warehouse, MAR2)
    week(warehouse, MAR9, customers=1, first_id=500)
    outcome = run(warehouse, sandbox, MAR9, run_id="run-2")
    assert outcome.finished_earlier == [MAR2]
    sent = sandbox.slack_messages
    assert [m["text"] for m in sent[: len(old)]] == [p.text for p in old]
    assert all(m["thread_ts"] == sent[0]["ts"] for m in sent[1: len(old)])
    new = sent[len(old):]
    assert "thread_ts" not in new[0] and "Dunning changes 2026-03-03 to 2026-03-09" in new[0]["text"]
    assert "*Customer 500*" in str(new) and "*Customer 1*" not in str(new)
    assert ledger.get_delivery(warehouse, "weekly_dunning", MAR2).status == "delivered"


def test_a_part_another_live_run_is_posting_is_left_alone_and_taken_over_once_that_run_ended(warehouse, sandbox):
    week(warehouse, MAR2, customers=1)
    messages = render_digest(warehouse.read("dunning_history"), Period(end=MAR2), limits=SMALL)
    ledger.create_delivery(warehouse, alert="weekly_dunning", cover=ledger.Coverage(MAR2), period_start=None,
                           id_max=ledger.history_id_max(warehouse, MAR2), history_rows=1, invoices=1,
                           customers=1, channel="#dunning", messages=[m.to_dict() for m in messages],
                           run_id="run-other")
    assert ledger.claim_part(warehouse, "weekly_dunning", MAR2, 1, "run-other")

    with pytest.raises(AlertInProgressError, match="Run run-other is posting part 1"):
        run(warehouse, sandbox, MAR2, run_id="run-2", active=lambda r: r == "run-other")
    assert sandbox.slack_messages == []

    log = Log()  # run-other has crashed: whether Slack got its message is unknown
    outcome = run(warehouse, sandbox, MAR2, run_id="run-3", active=lambda _r: False, log=log)
    assert outcome.status == "posted" and len(sandbox.slack_messages) == len(messages)
    # It looked in the channel first (by the part's metadata): not there, so it posted it.
    assert log.warnings[0].endswith("ended without recording Slack's answer: not in the channel, posting it.")
    assert sandbox.slack_messages[0]["metadata"]["event_type"] == "dunning_alert_part"


def test_history_recorded_late_for_a_covered_week_comes_in_the_next_alert(warehouse, sandbox):
    week(warehouse, MAR2, customers=1, first_id=1)
    run(warehouse, sandbox, MAR2, run_id="run-1")
    before = len(sandbox.slack_messages)
    # A replay of an old night adds a row dated inside the delivered week.
    warehouse.append("dunning_history", frame([row(77, 77, "Latecomer", None, "reminder_1", date(2026, 2, 27))]))
    outcome = run(warehouse, sandbox, MAR9, run_id="run-2")
    assert outcome.history_rows == 1 and outcome.period.late_rows == 1
    new = sandbox.slack_messages[before:]
    summary = new[0]["blocks"][1]["text"]["text"]
    assert summary.endswith("Includes 1 change dated before 2026-03-03 that was recorded after the previous alert.")
    assert "*Latecomer*" in str(new) and "*Customer 1*" not in str(new)


def test_an_empty_week_is_one_short_line_and_an_older_as_of_date_posts_nothing(warehouse, sandbox):
    week(warehouse, MAR2, customers=1)
    run(warehouse, sandbox, MAR2, run_id="run-1")
    empty = run(warehouse, sandbox, MAR9, run_id="run-2")
    assert empty.status == "posted"
    last = sandbox.slack_messages[-1]
    assert last["text"] == "No dunning stage changes from 2026-03-03 to 2026-03-09."
    assert len(last["blocks"]) == 1
    count = len(sandbox.slack_messages)
    older = run(warehouse, sandbox, date(2026, 3, 5), run_id="run-3")
    assert older.status == "already_covered" and len(sandbox.slack_messages) == count


def test_a_dry_run_renders_everything_and_writes_and_posts_nothing(warehouse, sandbox):
    week(warehouse, MAR2)
    outcome = run(warehouse, sandbox, MAR2, dry_run=True)
    assert outcome.status == "dry_run" and len(outcome.messages) >= 3
    expected = render_digest(warehouse.read("dunning_history", order_by=["as_of_date", "id"]),
                             outcome.period, links=Links(), limits=SMALL)
    assert [m.to_dict() for m in outcome.messages] == [m.to_dict() for m in expected]
    assert sandbox.slack_messages == [] and sandbox.requests["slack"] == []
    assert warehouse.count("alert_deliveries") == 0
    with warehouse.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_delivery_parts)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_deliveries)).scalar_one() == 0


# -- what the accountant reads, through the real path (warehouse, ledger, sandbox Slack) ---------
def aging(wh, as_of: date, rows: list[dict]) -> None:
    """`invoice_aging` as the nightly job leaves it for the alert's day."""
    wh.append("invoice_aging", pd.DataFrame([{
        "move_type": "out_invoice", "aging_bucket": "1-30", "dunning_status": "dunned",
        "as_of_date": pd.Timestamp(as_of), "run_id": "night", **r} for r in rows]))


def test_the_posted_alert_shows_yen_as_of_the_alert_payments_on_their_way_and_a_summary_first(warehouse, sandbox):
    f = frame([row(1, 1, "Tokai Trading K.K.", "reminder_2", "call", MAR2 - timedelta(days=3),
                   amount="2000.00", due=MAR2 - timedelta(days=18), currency="USD"),
               row(2, 2, "Bayern Handel GmbH", "final_notice", "final_notice", MAR2 - timedelta(days=1),
                   amount="0", due=MAR2 - timedelta(days=36), reason="hold", hold="in_payment")])
    f["currency"] = ["JPY", "EUR"]
    f["company_currency"] = ["USD", "EUR"]
    warehouse.append("dunning_history", f)
    # Since the change half of the yen invoice was paid; the payment of the other is on its way.
    aging(warehouse, MAR2, [
        {"invoice_id": 1, "invoice_number": "INV/2026/00001", "customer_id": 1, "currency": "JPY",
         "company_currency": "USD", "amount_residual": 150_000 * 10_000,
         "amount_residual_company": 1000 * 10_000, "days_overdue": 18},
        {"invoice_id": 2, "invoice_number": "INV/2026/00002", "customer_id": 2, "currency": "EUR",
         "company_currency": "EUR", "amount_residual": 0, "amount_residual_company": 0,
         "days_overdue": 36, "dunning_status": "on_hold", "hold_reason": "in_payment"}])
    warehouse.append("receivables", pd.DataFrame([{
        "invoice_id": 2, "move_type": "out_invoice", "receivable_status": "in_payment", "customer_id": 2,
        "segment": "default", "policy": "default", "currency": "EUR", "company_currency": "EUR",
        "amount_total": 12_345 * 10_000, "amount_residual": 0, "amount_total_company": 12_345 * 10_000,
        "amount_residual_company": 0, "as_of_date": pd.Timestamp(MAR2)}]))

    first = run(warehouse, sandbox, MAR2, run_id="run-1", limits=Limits())
    assert first.status == "posted" and first.period.summary == FIRST_ALERT
    sent = sandbox.slack_messages
    top = "\n".join(t for b in sent[0]["blocks"] for t in _texts(b))
    assert "First alert since installation: a summary." in top
    assert "*1* invoice with payment on its way, 12,345.00 EUR: not dunned, each shown on its customer's line." in top
    assert ("*Tokai Trading K.K.* · Call: phone the customer · 1 invoice · *150,000 JPY* · 18 days overdue"
            " on 2026-03-02") in top
    assert "*Call*\n1,000.00 USD" in top
    assert "Bayern" not in top and "0.00 EUR" not in top
    thread = "\n".join(t for m in sent[1:] for b in m["blocks"] for t in _texts(b))
    assert all(m["thread_ts"] == sent[0]["ts"] for m in sent[1:])
    assert ("*Bayern Handel GmbH* · payment on its way · 1 invoice · *12,345.00 EUR*\n"
            "INV/2026/00002 (12,345.00 EUR, was at Final notice)") in thread

    # The next week's alert is an ordinary one; one after a long gap is a summary again.
    week(warehouse, MAR9, customers=1, first_id=50)
    assert run(warehouse, sandbox, MAR9, run_id="run-2").period.summary is None
    later = MAR9 + timedelta(days=21)
    week(warehouse, later, customers=1, first_id=60)
    outcome = run(warehouse, sandbox, later, run_id="run-3")
    assert outcome.period.summary == LONG_GAP
    assert "First alert in 21 days: a summary." in str(outcome.messages[0].blocks)
    assert sandbox.slack_messages[-len(outcome.messages)]["text"] == outcome.messages[0].text

"""The delivery ledger on SQLite and PostgreSQL: coverage since the last delivered alert, claims,
and the state changes that make delivery exactly-once."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.alert import read_history
from dunning_pipeline.slack.tables import alert_deliveries
from dunning_pipeline_tests.slack.history import frame, row

ALERT = "weekly_dunning"
MAR2, MAR9 = date(2026, 3, 2), date(2026, 3, 9)
MESSAGES = [{"text": "part one", "blocks": [{"type": "divider"}]},
            {"text": "part two", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}]


def _append(wh, *rows):
    wh.append("dunning_history", frame(list(rows)))


def _ids(df: pd.DataFrame) -> list[int]:
    return sorted(int(i) for i in df["invoice_id"])


def _deliver_everything(wh, cover: ledger.Coverage, run_id="run-a") -> ledger.Delivery:
    id_max = ledger.history_id_max(wh, cover.period_end)
    d = ledger.create_delivery(wh, alert=ALERT, cover=cover, period_start=cover.period_start,
                               id_max=id_max, history_rows=0, invoices=0, customers=0,
                               channel="#dunning", messages=MESSAGES, run_id=run_id)
    for part in d.parts:
        assert ledger.claim_part(wh, ALERT, cover.period_end, part.part, run_id)
        ledger.mark_posted(wh, ALERT, cover.period_end, part.part, run_id=run_id,
                           ts=f"1.{part.part}", channel_id="C1", thread_ts=None)
    return d


def test_the_next_alert_covers_what_the_last_delivered_one_did_not_including_late_rows(warehouse):
    wh = warehouse
    _append(wh, row(1, 1, "A", None, "reminder_1", date(2026, 2, 25)),
            row(2, 1, "A", None, "reminder_1", MAR2),
            row(3, 2, "B", None, "reminder_1", date(2026, 3, 4)))  # after the first period
    first = ledger.coverage(wh, ALERT, MAR2)
    assert first == ledger.Coverage(MAR2)
    id_max = ledger.history_id_max(wh, MAR2)
    assert _ids(read_history(wh, first, id_max)) == [1, 2]
    _deliver_everything(wh, first)

    # Recorded after the first alert: a row dated inside its period (a late replay) and the week's.
    _append(wh, row(4, 3, "C", None, "reminder_1", date(2026, 3, 1)),
            row(5, 3, "C", None, "reminder_1", MAR9),
            row(6, 3, "C", None, "reminder_1", date(2026, 3, 10)))  # after the second period
    second = ledger.coverage(wh, ALERT, MAR9)
    assert second == ledger.Coverage(MAR9, MAR2, id_max)
    assert second.period_start == date(2026, 3, 3)
    history = read_history(wh, second, ledger.history_id_max(wh, MAR9))
    assert _ids(history) == [3, 4, 5]


def test_rows_recorded_after_rendering_are_left_for_the_next_alert(warehouse):
    wh = warehouse
    _append(wh, row(1, 1, "A", None, "reminder_1", MAR2))
    cover = ledger.coverage(wh, ALERT, MAR2)
    _deliver_everything(wh, cover)
    # Same day, recorded after the alert was rendered (the nightly run finished late).
    _append(wh, row(2, 1, "A", None, "reminder_1", MAR2))
    nxt = ledger.coverage(wh, ALERT, MAR9)
    assert _ids(read_history(wh, nxt, ledger.history_id_max(wh, MAR9))) == [2]


def test_a_closed_invoice_gets_its_amount_from_before_the_period(warehouse):
    wh = warehouse
    _append(wh, row(1, 1, "A", None, "reminder_1", date(2026, 2, 20), amount="640.00"))
    _deliver_everything(wh, ledger.coverage(wh, ALERT, date(2026, 2, 23)))
    _append(wh, row(1, 1, "A", "reminder_1", "closed", date(2026, 2, 27), amount="0", reason="paid"),
            row(2, 2, "B", None, "reminder_1", date(2026, 2, 27), amount="5.00"))
    history = read_history(wh, ledger.coverage(wh, ALERT, MAR2), ledger.history_id_max(wh, MAR2))
    prior = dict(zip(history["invoice_id"], history["prior_amount_residual_company"]))
    assert prior[1] == 640_0000
    assert pd.isna(prior[2])


def test_parts_are_claimed_once_released_on_refusal_and_the_last_post_delivers(warehouse):
    wh = warehouse
    cover = ledger.Coverage(MAR2)
    d = ledger.create_delivery(wh, alert=ALERT, cover=cover, period_start=None, id_max=None,
                               history_rows=0, invoices=0, customers=0, channel="#dunning",
                               messages=MESSAGES, run_id="run-a")
    assert [(p.part, p.status, p.text) for p in d.parts] == [(1, "pending", "part one"), (2, "pending", "part two")]
    assert d.parts[0].blocks == [{"type": "divider"}]

    # A second run recording the same alert gets the first run's record, not a second alert.
    again = ledger.create_delivery(wh, alert=ALERT, cover=cover, period_start=None, id_max=None,
                                   history_rows=9, invoices=9, customers=9, channel="#other",
                                   messages=MESSAGES[:1], run_id="run-b")
    assert (again.channel, len(again.parts), again.history_rows) == ("#dunning", 2, 0)

    assert ledger.claim_part(wh, ALERT, MAR2, 1, "run-a")
    assert not ledger.claim_part(wh, ALERT, MAR2, 1, "run-b")          # held by run-a
    assert not ledger.supersede(wh, ALERT, MAR2)                      # a part may be in Slack
    ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-a", ts="100.1", channel_id="C1", thread_ts=None)
    assert not ledger.claim_part(wh, ALERT, MAR2, 1, "run-b")          # posted: never again

    assert ledger.claim_part(wh, ALERT, MAR2, 2, "run-a")
    ledger.release_part(wh, ALERT, MAR2, 2, "run-a", "ratelimited")
    state = ledger.get_delivery(wh, ALERT, MAR2)
    assert (state.status, state.parts[1].status, state.parts[1].last_error, state.parts[1].attempts) == \
        ("pending", "pending", "ratelimited", 1)

    # run-a crashed while posting part 2: a later run may take it over, naming run-a.
    assert ledger.claim_part(wh, ALERT, MAR2, 2, "run-a")
    assert not ledger.claim_part(wh, ALERT, MAR2, 2, "run-c")
    assert ledger.claim_part(wh, ALERT, MAR2, 2, "run-c", take_over_from="run-a")
    assert ledger.mark_posted(wh, ALERT, MAR2, 2, run_id="run-c", ts="100.2", channel_id="C1",
                              thread_ts="100.1")
    done = ledger.get_delivery(wh, ALERT, MAR2)
    assert done.status == "delivered"
    assert [(p.status, p.ts, p.thread_ts, p.attempts) for p in done.parts] == \
        [("posted", "100.1", None, 1), ("posted", "100.2", "100.1", 3)]
    assert ledger.last_delivered(wh, ALERT).period_end == MAR2
    assert ledger.incomplete_deliveries(wh, ALERT) == []


def test_an_alert_nothing_of_which_was_posted_can_be_superseded(warehouse):
    wh = warehouse
    ledger.create_delivery(wh, alert=ALERT, cover=ledger.Coverage(MAR2), period_start=None, id_max=None,
                           history_rows=0, invoices=0, customers=0, channel="#dunning",
                           messages=MESSAGES, run_id="run-a")
    assert [d.period_end for d in ledger.incomplete_deliveries(wh, ALERT)] == [MAR2]
    assert ledger.supersede(wh, ALERT, MAR2)
    assert ledger.get_delivery(wh, ALERT, MAR2).status == "superseded"
    assert ledger.incomplete_deliveries(wh, ALERT) == []
    assert ledger.last_delivered(wh, ALERT) is None


MAR16 = date(2026, 3, 16)
THREE = MESSAGES + [{"text": "part three", "blocks": [{"type": "divider"}]}]


def _create(wh, period_end: date, *, messages=MESSAGES, cover: ledger.Coverage | None = None,
            id_max=None, run_id="run-a", **counts) -> ledger.Delivery:
    cover = cover or ledger.Coverage(period_end)
    return ledger.create_delivery(wh, alert=ALERT, cover=cover, period_start=cover.period_start, id_max=id_max,
                                  history_rows=counts.get("history_rows", 0), invoices=counts.get("invoices", 0),
                                  customers=counts.get("customers", 0), channel="#dunning", messages=messages,
                                  run_id=run_id)


def test_a_recorded_alert_reads_back_as_rendered(warehouse):
    wh = warehouse
    _append(wh, row(1, 1, "A", None, "reminder_1", MAR2))
    _deliver_everything(wh, ledger.coverage(wh, ALERT, MAR2))
    cover = ledger.coverage(wh, ALERT, MAR9)
    d = _create(wh, MAR9, cover=cover, id_max=1, history_rows=4, invoices=3, customers=2)
    got = ledger.get_delivery(wh, ALERT, MAR9)
    assert got == d
    assert (got.alert, got.period_end, got.period_start, got.status, got.channel) == \
        (ALERT, MAR9, date(2026, 3, 3), "pending", "#dunning")
    assert (got.history_rows, got.invoices, got.customers, got.history_id_max) == (4, 3, 2, 1)
    assert got.created_at is not None and got.created_at.tzinfo is None  # naive UTC, as stored
    assert [(p.ts, p.channel_id, p.thread_ts, p.claimed_by_run_id, p.attempts, p.last_error, p.claimed_at)
            for p in got.parts] == [(None, None, None, None, 0, None, None)] * 2
    assert got.posted == [] and not got.touched
    assert ledger.get_delivery(wh, ALERT, MAR16) is None
    # What the alert was rendered after is kept with it (the coverage can be re-derived).
    d_ = alert_deliveries.c
    with wh.begin() as conn:
        after = conn.execute(sa.select(d_.after_period_end, d_.after_history_id).where(d_.period_end == MAR9)).one()
    assert tuple(after) == (MAR2, 1)


def _unordered_reads(wh) -> None:
    """Reads without ORDER BY come in an order other than the key's from here on, as a large
    table's plan may give them: SQLite reverses them; PostgreSQL scans the heap, where a changed
    row moves to the end."""
    @sa.event.listens_for(wh.engine, "connect")
    def _scramble(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        if wh.dialect == "sqlite":
            cur.execute("PRAGMA reverse_unordered_selects = ON")
        else:
            for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
                cur.execute(f"SET {setting} = off")
        cur.close()
        dbapi_conn.commit()
    wh.engine.dispose()


def test_parts_are_read_in_part_order_whatever_the_plan(warehouse):
    wh = warehouse
    _unordered_reads(wh)
    _create(wh, MAR2, messages=THREE)
    for part in (1, 2):
        assert ledger.claim_part(wh, ALERT, MAR2, part, "run-a")
    ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-a", ts="1.1", channel_id="C1", thread_ts=None)
    got = ledger.get_delivery(wh, ALERT, MAR2)
    assert [(p.part, p.text, p.status) for p in got.parts] == \
        [(1, "part one", "posted"), (2, "part two", "posting"), (3, "part three", "pending")]
    assert [p.part for p in got.posted] == [1] and got.touched
    assert (got.parts[0].ts, got.parts[0].channel_id, got.parts[0].claimed_by_run_id) == ("1.1", "C1", "run-a")


def test_a_claim_records_the_run_and_when_and_only_the_claiming_run_may_release_it(warehouse):
    wh = warehouse
    _create(wh, MAR2)
    assert ledger.claim_part(wh, ALERT, MAR2, 1, "run-a")
    part = ledger.get_delivery(wh, ALERT, MAR2).parts[0]
    assert (part.status, part.claimed_by_run_id, part.attempts) == ("posting", "run-a", 1)
    assert part.claimed_at is not None and part.claimed_at.tzinfo is None

    ledger.release_part(wh, ALERT, MAR2, 1, "run-b", "ratelimited")        # not run-b's claim
    ledger.note_outcome_unknown(wh, ALERT, MAR2, 1, "run-b")
    part = ledger.get_delivery(wh, ALERT, MAR2).parts[0]
    assert (part.status, part.claimed_by_run_id, part.last_error) == ("posting", "run-a", None)

    ledger.note_outcome_unknown(wh, ALERT, MAR2, 1, "run-a")               # answer lost: stays claimed
    part = ledger.get_delivery(wh, ALERT, MAR2).parts[0]
    assert (part.status, part.last_error) == ("posting", "outcome_unknown")
    # Taking over needs the name of the run that holds it, not just any run's.
    assert not ledger.claim_part(wh, ALERT, MAR2, 1, "run-c", take_over_from="run-b")
    assert ledger.claim_part(wh, ALERT, MAR2, 1, "run-c", take_over_from="run-a")
    # A pending part can be claimed with take_over_from too; a posted one never.
    assert ledger.claim_part(wh, ALERT, MAR2, 2, "run-c", take_over_from="run-a")
    assert not ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-c", ts="1.1", channel_id="C1", thread_ts=None)
    assert not ledger.claim_part(wh, ALERT, MAR2, 1, "run-d", take_over_from="run-c")
    state = ledger.get_delivery(wh, ALERT, MAR2)
    assert (state.status, state.parts[0].last_error, state.parts[0].claimed_by_run_id) == ("pending", None, "run-c")
    assert ledger.mark_posted(wh, ALERT, MAR2, 2, run_id="run-c", ts="1.2", channel_id="C1", thread_ts="1.1")
    assert ledger.get_delivery(wh, ALERT, MAR2).status == "delivered"


def test_the_last_delivered_alert_is_the_latest_delivered_one(warehouse):
    wh = warehouse
    _unordered_reads(wh)
    _append(wh, row(1, 1, "A", None, "reminder_1", MAR2))
    _deliver_everything(wh, ledger.coverage(wh, ALERT, MAR2))
    _append(wh, row(2, 1, "A", "reminder_1", "reminder_2", MAR9))
    _deliver_everything(wh, ledger.coverage(wh, ALERT, MAR9))
    _create(wh, MAR16, cover=ledger.coverage(wh, ALERT, MAR16))          # pending: not delivered
    assert ledger.last_delivered(wh, ALERT).period_end == MAR9
    assert ledger.coverage(wh, ALERT, date(2026, 3, 23)) == ledger.Coverage(date(2026, 3, 23), MAR9, 2)
    assert ledger.last_delivered(wh, "another_alert") is None


def test_incomplete_alerts_are_listed_oldest_first(warehouse):
    wh = warehouse
    _unordered_reads(wh)
    _create(wh, MAR16)
    _create(wh, MAR2)
    _create(wh, MAR9)
    assert [d.period_end for d in ledger.incomplete_deliveries(wh, ALERT)] == [MAR2, MAR9, MAR16]
    assert ledger.supersede(wh, ALERT, MAR9)
    assert not ledger.supersede(wh, ALERT, MAR9)                          # already retired
    assert [d.period_end for d in ledger.incomplete_deliveries(wh, ALERT)] == [MAR2, MAR16]


def test_rows_recorded_late_after_an_alert_that_saw_no_history_are_covered(warehouse):
    wh = warehouse
    _deliver_everything(wh, ledger.coverage(wh, ALERT, MAR2))          # nothing to cover yet: id_max None
    assert ledger.last_delivered(wh, ALERT).history_id_max is None
    _append(wh, row(1, 1, "A", None, "reminder_1", date(2026, 2, 27)),  # dated in that period, recorded after
            row(2, 2, "B", None, "reminder_1", MAR9))
    cover = ledger.coverage(wh, ALERT, MAR9)
    assert cover == ledger.Coverage(MAR9, MAR2, None)
    assert _ids(read_history(wh, cover, ledger.history_id_max(wh, MAR9))) == [1, 2]


def test_the_channel_id_is_the_one_slack_answered_last_for_that_channel(warehouse):
    wh = warehouse
    assert ledger.known_channel_id(wh, "#dunning") is None
    _create(wh, MAR2)
    assert ledger.claim_part(wh, ALERT, MAR2, 1, "run-a")
    assert ledger.known_channel_id(wh, "#dunning") is None               # claimed, not answered
    ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-a", ts="1.1", channel_id="C_OLD", thread_ts=None)
    assert ledger.known_channel_id(wh, "#dunning") == "C_OLD"
    assert ledger.claim_part(wh, ALERT, MAR2, 2, "run-a")
    ledger.mark_posted(wh, ALERT, MAR2, 2, run_id="run-a", ts="1.2", channel_id="C_NEW", thread_ts="1.1")
    assert ledger.known_channel_id(wh, "#dunning") == "C_NEW"
    assert ledger.known_channel_id(wh, "#elsewhere") is None


def test_each_change_touches_only_its_own_alert_period_and_part(warehouse):
    wh = warehouse
    other = "other_alert"
    channels = {(ALERT, MAR2): "#dunning", (ALERT, MAR9): "#moved", (other, MAR2): "#other", (other, MAR9): "#other"}
    for (alert, period), channel in channels.items():
        ledger.create_delivery(wh, alert=alert, cover=ledger.Coverage(period), period_start=None, id_max=None,
                               history_rows=0, invoices=0, customers=0, channel=channel, messages=MESSAGES,
                               run_id="run-a")
    assert [d.period_end for d in ledger.incomplete_deliveries(wh, ALERT)] == [MAR2, MAR9]

    # One run holds part 1 of our MAR2 alert and of the other alert's two periods.
    for alert, period in ((ALERT, MAR2), (other, MAR2), (other, MAR9)):
        assert ledger.claim_part(wh, alert, period, 1, "run-a")
    assert not ledger.claim_part(wh, other, MAR2, 1, "run-b")
    assert ledger.supersede(wh, ALERT, MAR9)                               # its own parts are untouched
    assert ledger.get_delivery(wh, other, MAR9).status == "pending"
    ledger.release_part(wh, other, MAR2, 1, "run-a", "ratelimited")
    ledger.note_outcome_unknown(wh, other, MAR9, 1, "run-a")
    states = {(a, p): ledger.get_delivery(wh, a, p).parts[0] for a, p in ((ALERT, MAR2), (other, MAR2), (other, MAR9))}
    assert {k: (v.status, v.last_error) for k, v in states.items()} == {
        (ALERT, MAR2): ("posting", None), (other, MAR2): ("pending", "ratelimited"),
        (other, MAR9): ("posting", "outcome_unknown")}

    assert ledger.claim_part(wh, other, MAR2, 1, "run-a")
    ledger.mark_posted(wh, other, MAR2, 1, run_id="run-a", ts="9.1", channel_id="C_OTHER", thread_ts=None)
    ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-a", ts="1.1", channel_id="C_DUNNING", thread_ts=None)
    assert ledger.claim_part(wh, other, MAR2, 2, "run-a")
    ledger.mark_posted(wh, other, MAR2, 2, run_id="run-a", ts="9.2", channel_id="C_OTHER", thread_ts="9.1")
    assert ledger.known_channel_id(wh, "#dunning") == "C_DUNNING"
    assert ledger.known_channel_id(wh, "#other") == "C_OTHER"
    assert ledger.known_channel_id(wh, "#moved") is None                   # nothing posted there yet
    assert ledger.get_delivery(wh, other, MAR2).status == "delivered"
    assert ledger.get_delivery(wh, other, MAR9).status == "pending"
    ours = ledger.get_delivery(wh, ALERT, MAR2)
    assert ours.status == "pending" and [p.status for p in ours.parts] == ["posted", "pending"]
    assert ledger.get_delivery(wh, ALERT, MAR9).status == "superseded"
    assert ledger.last_delivered(wh, ALERT) is None


def test_the_run_that_records_the_post_is_named_on_the_part_and_the_alert(warehouse):
    wh = warehouse
    _create(wh, MAR2, messages=MESSAGES[:1])
    assert ledger.claim_part(wh, ALERT, MAR2, 1, "run-a")
    # run-a's answer was lost; run-b found the message in the channel and records it.
    assert ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-b", ts="1.1", channel_id="C1", thread_ts=None)
    assert ledger.get_delivery(wh, ALERT, MAR2).parts[0].claimed_by_run_id == "run-b"
    with wh.begin() as conn:
        run_id, at = conn.execute(sa.select(alert_deliveries.c.delivered_run_id, alert_deliveries.c.delivered_at)).one()
    assert run_id == "run-b" and at is not None


def test_the_covered_rows_are_bounded_by_the_period_and_the_rendered_id(warehouse):
    wh = warehouse
    _append(wh, row(1, 1, "A", None, "reminder_1", date(2026, 3, 4)),   # dated after the period, recorded first
            row(2, 2, "B", None, "reminder_1", MAR2))
    cover = ledger.coverage(wh, ALERT, MAR2)
    id_max = ledger.history_id_max(wh, MAR2)
    assert id_max == 2
    _append(wh, row(3, 3, "C", None, "reminder_1", MAR2))                # recorded after rendering
    assert _ids(read_history(wh, cover, id_max)) == [2]
    assert _ids(read_history(wh, cover, None)) == [2, 3]                 # no bound: all rows of the period


def test_a_late_release_changes_neither_a_posted_part_nor_the_runs_other_claims(warehouse):
    wh = warehouse
    _create(wh, MAR2)
    assert ledger.claim_part(wh, ALERT, MAR2, 1, "run-a") and ledger.claim_part(wh, ALERT, MAR2, 2, "run-a")
    ledger.release_part(wh, ALERT, MAR2, 2, "run-a", "ratelimited")       # part 1 stays claimed
    assert [p.status for p in ledger.get_delivery(wh, ALERT, MAR2).parts] == ["posting", "pending"]
    ledger.mark_posted(wh, ALERT, MAR2, 1, run_id="run-a", ts="1.1", channel_id="C1", thread_ts=None)
    ledger.release_part(wh, ALERT, MAR2, 1, "run-a", "ratelimited")       # too late: it is in Slack
    ledger.note_outcome_unknown(wh, ALERT, MAR2, 1, "run-a")
    part = ledger.get_delivery(wh, ALERT, MAR2).parts[0]
    assert (part.status, part.ts, part.last_error) == ("posted", "1.1", None)

"""The delivery ledger on SQLite and PostgreSQL: coverage since the last delivered alert, claims,
and the state changes that make delivery exactly-once."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.alert import read_history
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

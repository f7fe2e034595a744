"""Each KPI against a value computed by hand on a small dataset (amounts in whole units x 10,000).

The calendar: as of 2026-03-31. Rolling months back from it: (02-28, 03-31] has 31 days,
(01-31, 02-28] has 28 days, (12-31, 01-31] has 31 days.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from dunning_pipeline.reporting import kpis

AS_OF = date(2026, 3, 31)
U = 10_000  # one currency unit


def _sales(*rows) -> pd.DataFrame:
    return pd.DataFrame({"company_id": 1, "invoice_date": pd.to_datetime([r[0] for r in rows]),
                         "amount": [r[1] * U for r in rows]})


def _history(*rows) -> pd.DataFrame:
    """(invoice, customer, to_stage, reason, action, day)"""
    return pd.DataFrame([{"invoice_id": i, "customer_id": c, "company_id": 1, "to_stage": s, "reason": r,
                          "action": a, "manual_only": False, "as_of_date": pd.Timestamp(d)}
                         for i, c, s, r, a, d in rows])


SALES = _sales(("2026-03-10", 600), ("2026-03-31", 400),  # month 1: 1,000
               ("2026-02-01", 1_200), ("2026-02-20", -200),  # month 2: 1,000 net of a credit note
               ("2026-01-15", 700))  # month 3: 700


def test_count_back_dso_walks_back_through_the_months():
    # 1,500 open: month 1 (31 days) absorbs 1,000; 500 of month 2's 1,000 is 14 of its 28 days.
    assert kpis.count_back_dso(1_500 * U, SALES, AS_OF).days == pytest.approx(31 + 14)
    # 900 open: 900/1,000 of month 1 = 27.9 days.
    assert kpis.count_back_dso(900 * U, SALES, AS_OF).days == pytest.approx(27.9)
    # 3,000 open: all three months (31 + 28 + 31) and more: a floor, flagged.
    exhausted = kpis.count_back_dso(3_000 * U, SALES, AS_OF, max_months=3)
    assert exhausted.days == 90 and exhausted.exhausted
    assert kpis.count_back_dso(0, SALES, AS_OF).days == 0


def test_credit_sales_are_dated_by_invoice_date_net_of_credit_notes():
    assert kpis.credit_sales(SALES, date(2026, 2, 28), AS_OF) == 1_000 * U
    assert kpis.credit_sales(SALES, date(2026, 1, 31), date(2026, 2, 28)) == 1_000 * U
    assert kpis.credit_sales(SALES, date(2025, 12, 31), AS_OF) == 2_700 * U


def test_period_dso_best_possible_dso_and_average_days_delinquent():
    # 900 open of which 300 not yet due; 2,700 sold in 90 days.
    assert kpis.period_dso(900 * U, 2_700 * U, 90) == pytest.approx(30)
    assert kpis.best_possible_dso(300 * U, 2_700 * U, 90) == pytest.approx(10)
    assert kpis.average_days_delinquent(900 * U, 300 * U, 2_700 * U, 90) == pytest.approx(20)
    assert kpis.period_dso(900 * U, 0) is None


def test_collection_effectiveness_index_follows_the_crf_form():
    # (1,000 + 500 - 600) / (1,000 + 500 - 200) x 100 = 900 / 1,300 x 100
    assert kpis.collection_effectiveness_index(1_000 * U, 500 * U, 600 * U, 200 * U) == pytest.approx(69.230769, rel=1e-6)
    assert kpis.collection_effectiveness_index(0, 0, 0, 0) is None


HISTORY = _history(
    (1, 10, "reminder_1", "days_overdue", "email", "2026-01-01"),
    (1, 10, "closed", "paid", None, "2026-01-20"),  # paid 19 days after reminder_1
    (2, 20, "reminder_1", "days_overdue", "email", "2026-01-05"),
    (2, 20, "call", "days_overdue", "call", "2026-01-20"),
    (2, 20, "closed", "paid", None, "2026-02-10"),  # 36 days after reminder_1, 21 after call
    (3, 10, "reminder_1", "days_overdue", "email", "2026-01-01"),  # same customer and day as 1
    (4, 30, "reminder_1", "hold", "email", "2026-01-10"),  # entered on hold: no reminder sent
    (5, 40, "reminder_1", "days_overdue", "email", "2026-03-25"),  # window not complete yet
    (6, 50, "closed", "paid", None, "2026-03-01"),  # paid without a reminder
)


def test_collection_success_rate_per_stage():
    rates = kpis.collection_success_rate(HISTORY, AS_OF).set_index("stage")
    # reminder_1: invoices 1, 2, 3, 4 reached it with a complete window (5 did not); only 1 was
    # paid within 30 days.
    assert rates.loc["reminder_1", ["reached", "paid"]].tolist() == [4, 1]
    assert rates.loc["reminder_1", "rate"] == pytest.approx(25.0)
    assert rates.loc["call", ["reached", "paid", "rate"]].tolist() == [1, 1, 100.0]


def test_customer_response_rate_within_seven_days():
    inbound = pd.DataFrame({"customer_id": [10, 20, 40], "day": pd.to_datetime(["2026-01-05", "2026-01-13", "2026-03-26"])})
    # Reminders: customer 10 on 01-01 (invoices 1 and 3: one email), 20 on 01-05; 30's row is a
    # hold, 20's call is no email, 40's window is not over. 10 answered on day 4, 20 on day 8.
    assert kpis.customer_response_rate(HISTORY, inbound, AS_OF) == (1, 2)


def test_reminder_to_payment_days():
    # Invoice 1: 01-01 -> 01-20 = 19 days; invoice 2: 01-05 -> 02-10 = 36; invoice 6 had no reminder.
    assert kpis.reminder_to_payment_days(HISTORY, AS_OF) == (pytest.approx(27.5), 2)
    assert kpis.reminder_to_payment_days(HISTORY, AS_OF, lookback=60) == (pytest.approx(36.0), 1)


def test_aging_distribution_with_a_credit_note():
    aging = pd.DataFrame({"aging_bucket": ["current", "current", "1-30", "90+"],
                          "amount_residual_company": [300 * U, -100 * U, 600 * U, 0]})
    dist = kpis.aging_distribution(aging, ("current", "1-30", "31-60", "61-90", "90+")).set_index("aging_bucket")
    assert dist["amount"].tolist() == [200 * U, 600 * U, 0, 0, 0]
    assert dist["share"].tolist() == pytest.approx([25.0, 75.0, 0.0, 0.0, 0.0])


def test_a_day_gets_every_kpi_and_cei_waits_for_a_recorded_balance():
    aging = pd.DataFrame({"aging_bucket": ["current", "31-60"], "days_overdue": [-5, 40],
                          "amount_residual_company": [300 * U, 600 * U]})
    args = dict(as_of=AS_OF, sales=SALES, aging=aging, history=HISTORY,
                inbound=pd.DataFrame({"customer_id": [10], "day": pd.to_datetime(["2026-01-02"])}),
                bucket_order=("current", "1-30", "31-60"))
    rows = kpis.to_frame(kpis.day_kpis(begin_ar=None, **args), as_of=AS_OF, company_id=1, company_currency="EUR",
                         source=kpis.NIGHTLY).set_index(["kpi", "dimension"])
    assert rows.loc[("ar_total", ""), "amount"] == 900 * U
    assert rows.loc[("dso_count_back", ""), "value"] == pytest.approx(27.9)
    assert rows.loc[("dso_period", ""), "value"] == pytest.approx(30.0)  # 900 / 2,700 x 90
    assert pd.isna(rows.loc[("collection_effectiveness_index", ""), "value"])
    assert "2026-03-01" in rows.loc[("collection_effectiveness_index", ""), "note"]
    assert rows.loc[("aging_distribution", "31-60"), "value"] == pytest.approx(600 / 9)
    with_begin = kpis.to_frame(kpis.day_kpis(begin_ar=1_000 * U, **args), as_of=AS_OF, company_id=1,
                               company_currency="EUR", source=kpis.NIGHTLY).set_index(["kpi", "dimension"])
    # (1,000 + 1,000 - 900) / (1,000 + 1,000 - 300) x 100
    assert with_begin.loc[("collection_effectiveness_index", ""), "value"] == pytest.approx(1_100 / 1_700 * 100)


def test_a_past_day_is_reconstructed_only_from_what_was_dated_by_then():
    day = date(2026, 2, 5)
    none = pd.DataFrame({"customer_id": [], "day": pd.to_datetime([])})
    rows = kpis.to_frame(kpis.reconstructed_kpis(as_of=day, sales=SALES, history=HISTORY, inbound=none),
                         as_of=day, company_id=1, company_currency="EUR",
                         source=kpis.RECONSTRUCTED).set_index(["kpi", "dimension"])
    assert rows.loc[("credit_sales_30d", ""), "amount"] == 1_900 * U  # (01-06, 02-05]: 700 + 1,200
    assert "dso_count_back" not in rows.index.get_level_values(0)  # needs a balance of that day
    # As of 02-05 only invoice 1 was paid (01-01 -> 01-20); invoice 2's payment came on 02-10.
    assert rows.loc[("reminder_to_payment_days", ""), "value"] == pytest.approx(19.0)
    # reminder_1 entries with a complete window by 02-05: invoices 1 and 3 (01-01), 2 (01-05).
    assert rows.loc[("collection_success_rate", "reminder_1"), ["numerator", "denominator"]].tolist() == [1, 3]
    before = kpis.reconstructed_kpis(as_of=date(2025, 12, 1), sales=SALES, history=HISTORY, inbound=none)
    assert [r["kpi"] for r in before] == ["credit_sales_30d", "credit_sales_90d"]  # before the history began


def test_a_ticket_our_agent_opened_for_the_customer_is_not_a_message_from_them():
    """A reminder sent as a new ticket (the customer the requester, our agent the first comment's
    author) is not the customer answering; their reply on it is."""
    from zoneinfo import ZoneInfo

    tickets = pd.DataFrame({"id": [1, 2], "requester_id": [70, 70],
                            "created_at": pd.to_datetime(["2026-03-02 09:00", "2026-03-05 09:00"])})
    comments = pd.DataFrame({"ticket_id": [1, 2, 2], "author_id": [70, 80, 70], "public": [True, True, True],
                             "created_at": pd.to_datetime(["2026-03-02 09:00", "2026-03-05 09:00",
                                                           "2026-03-09 10:00"])})
    users = pd.DataFrame({"id": [70, 80], "role": ["end-user", "agent"]})
    comms = pd.DataFrame({"ticket_id": [1, 2], "customer_id": [10, 10]})
    got = kpis.inbound_messages(tickets, comments, users, comms, ZoneInfo("UTC"))
    assert sorted(got["day"].dt.strftime("%Y-%m-%d")) == ["2026-03-02", "2026-03-09"]

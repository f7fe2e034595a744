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


# -- past days rebuilt from Odoo's dates (kpi_history) ---------------------------------------------
# A ledger in EUR (company 1), as the extracts hold it now:
# - 1: invoice of 01-05, 1,000 due 02-04; paid 400 on 02-10 and 600 on 03-20.
# - 2: invoice of 02-01, 1,000 in two instalments of 500 due 02-01 and 03-03; 500 paid on 02-15.
# - 3: credit note of 02-20, 200, not reconciled (open credit).
# - 4: invoice of 03-01, 300 due 03-31, open.
# - 5: invoice of 02-01, 50 due 03-03, cancelled on 02-20 (its last write); 6: a draft.
def _invoices() -> pd.DataFrame:
    def inv(i, name, kind, day, due, total, residual, state="posted", written="2026-03-20 10:00:00"):
        sign = -1 if kind == "out_refund" else 1
        return {"id": i, "name": name, "move_type": kind, "state": state, "company_id": 1, "partner_id": 10,
                "commercial_partner_id": 10, "currency": "EUR", "invoice_date": pd.Timestamp(day),
                "invoice_date_due": pd.Timestamp(due), "amount_total": total * U, "amount_residual": residual * U,
                "amount_total_signed": sign * total * U, "amount_residual_signed": sign * residual * U,
                "write_date": pd.Timestamp(written)}

    return pd.DataFrame([
        inv(1, "INV/1", "out_invoice", "2026-01-05", "2026-02-04", 1_000, 0),
        inv(2, "INV/2", "out_invoice", "2026-02-01", "2026-03-03", 1_000, 500),
        inv(3, "RINV/3", "out_refund", "2026-02-20", "2026-02-20", 200, 200),
        inv(4, "INV/4", "out_invoice", "2026-03-01", "2026-03-31", 300, 300),
        inv(5, "INV/5", "out_invoice", "2026-02-01", "2026-03-03", 50, 50, state="cancel", written="2026-02-20 09:00:00"),
        inv(6, "/", "out_invoice", "2026-02-01", "2026-03-03", 70, 70, state="draft"),
    ])


def _lines() -> pd.DataFrame:
    return pd.DataFrame([  # (id, move, due, balance): residuals are not read, they are rebuilt
        {"id": i, "move_id": m, "date_maturity": pd.Timestamp(d), "balance": b * U, "amount_currency": b * U}
        for i, m, d, b in [(11, 1, "2026-02-04", 1_000), (21, 2, "2026-02-01", 500), (22, 2, "2026-03-03", 500),
                           (31, 3, "2026-02-20", -200), (41, 4, "2026-03-31", 300)]])


def _reconciliations(*rows) -> pd.DataFrame:
    """(id, debit line, credit line, amount, max_date); the ledger's by default."""
    rows = rows or [(1, 11, 9001, 400, "2026-02-10"), (2, 21, 9002, 500, "2026-02-15"),
                    (3, 11, 9003, 600, "2026-03-20")]
    return pd.DataFrame([
        {"id": i, "debit_line_id": d, "credit_line_id": c, "amount": a * U, "debit_amount_currency": a * U,
         "credit_amount_currency": a * U, "max_date": pd.Timestamp(day)} for i, d, c, a, day in rows])


def _ledger():
    from dunning_pipeline.dunning.policy import load_policy
    from dunning_pipeline.reporting import kpi_history

    policy = load_policy()
    return kpi_history.prepare(_invoices(), _lines(), _reconciliations(), policy), policy


def _snapshots(*days, ledger=None):
    from dunning_pipeline.reporting import kpi_history

    built, policy = _ledger()
    return {d: a.set_index("invoice_id")
            for d, a in kpi_history.snapshots(ledger or built, [date.fromisoformat(x) for x in days], policy)}


def test_a_past_balance_is_the_invoices_less_the_reconciliations_dated_by_then():
    ledger, _policy = _ledger()
    assert ledger.inexact == 0 and ledger.reconciliations_used == 3  # the payments' own lines are not ours
    snap = _snapshots("2026-02-12", "2026-03-10", "2026-03-25", "2026-01-04")
    early = snap[date(2026, 2, 12)]
    # 1: 1,000 - 400 (02-10), 8 days past 02-04; 2: nothing paid yet, its first instalment (02-01)
    # decides: 11 days; 5: not cancelled yet, not due; 3, 4 not invoiced yet; 6 a draft.
    assert early["amount_residual_company"].to_dict() == {1: 600 * U, 2: 1_000 * U, 5: 50 * U}
    assert early["days_overdue"].to_dict() == {1: 8, 2: 11, 5: -19}
    later = snap[date(2026, 3, 10)]
    # 2: the first instalment paid on 02-15, the second (03-03) decides; 3: an open credit;
    # 5: cancelled on 02-20.
    assert later["amount_residual_company"].to_dict() == {1: 600 * U, 2: 500 * U, 3: -200 * U, 4: 300 * U}
    assert later["days_overdue"].to_dict() == {1: 34, 2: 7, 3: 18, 4: -21}
    assert later["aging_bucket"].to_dict() == {1: "31-60", 2: "1-30", 3: "1-30", 4: "current"}
    assert 1 not in snap[date(2026, 3, 25)].index  # paid in full on 03-20
    assert snap[date(2026, 1, 4)].empty  # before the first invoice


def test_a_quarantined_reconciliation_settles_nothing_in_the_rebuilt_days(sqlite_url):
    """collection_kpis rebuilds past days from the stored reconciliations less those held back,
    as the engine leaves out quarantined invoices: one whose field did not parse (its
    parse_error), one a WARN check quarantined. Both would settle a line (4 on 03-05, 2 on 03-06)
    that its invoice says is still open; left out, the days are the clean ledger's."""
    from dunning_pipeline.quality import quarantine
    from dunning_pipeline.reporting import kpi_history
    from dunning_pipeline.reporting.report_assets import _ledger as stored_ledger
    from dunning_pipeline.warehouse.store import Warehouse

    wh = Warehouse(sqlite_url)
    wh.ensure_schema()
    wh.upsert("odoo_invoices", _invoices())
    wh.upsert("odoo_receivable_lines", _lines())
    recs = _reconciliations((1, 11, 9001, 400, "2026-02-10"), (2, 21, 9002, 500, "2026-02-15"),
                            (3, 11, 9003, 600, "2026-03-20"), (4, 41, 9004, 300, "2026-03-05"),
                            (5, 22, 9005, 500, "2026-03-06"))
    recs["parse_error"] = [None, None, None, "account.partial.reconcile 4: field credit_currency_id: "
                           "'EUR\\ufffd' holds a lone surrogate", None]
    recs.loc[recs["id"] == 5, "credit_amount_currency"] = -500 * U
    wh.upsert("odoo_reconciliations", recs)
    quarantine.replace_quarantine(wh, "odoo_reconciliations", pd.DataFrame({
        "record_id": [5], "check_name": ["amounts_positive"], "field": ["credit_amount_currency"],
        "value": ["-500.0000"], "reason": ["credit_amount_currency is not negative"]}),
        run_id="run-a", as_of=AS_OF, quarantined_at=pd.Timestamp("2026-03-31 02:00"))

    clean, policy = _ledger()
    ledger = stored_ledger(wh, wh.read("odoo_invoices", columns=kpi_history.INVOICE_COLUMNS), policy)
    assert (ledger.reconciliations_used, ledger.inexact) == (clean.reconciliations_used, clean.inexact) == (3, 0)
    days = ("2026-03-05", "2026-03-10", "2026-03-25")
    for day, rebuilt in _snapshots(*days, ledger=ledger).items():
        pd.testing.assert_frame_equal(rebuilt, _snapshots(*days)[day], check_dtype=False)
    wh.dispose()


def test_a_past_day_gets_the_kpis_of_its_rebuilt_balance():
    day = date(2026, 3, 10)
    snap = _snapshots("2026-02-08", "2026-03-10")
    sales = _sales(("2026-01-05", 1_000), ("2026-02-01", 1_000), ("2026-02-20", -200), ("2026-03-01", 300))
    # The balance of 02-08 (CEI's beginning): 1 and 2 in full and 5: 2,050.
    begin = int(snap[date(2026, 2, 8)]["amount_residual_company"].sum())
    assert begin == 2_050 * U
    rows = kpis.to_frame(kpis.day_kpis(as_of=day, sales=sales, aging=snap[day].reset_index(), history=HISTORY,
                                       inbound=pd.DataFrame({"customer_id": [], "day": pd.to_datetime([])}),
                                       bucket_order=("current", "1-30", "31-60", "61-90", "90+"), begin_ar=begin,
                                       no_history="needs the dunning history, which begins on 2026-03-11"),
                         as_of=day, company_id=1, company_currency="EUR",
                         source=kpis.RECONSTRUCTED).set_index(["kpi", "dimension"])
    value = rows["value"]
    # 1,200 open (300 not due); 90 days of sales: 1,000 + 1,000 - 200 + 300 = 2,100.
    assert rows.loc[("ar_total", ""), "amount"] == 1_200 * U
    # Count-back: (02-10, 03-10] 28 days absorb 100; (01-10, 02-10] 31 days absorb 1,000; the
    # remaining 100 of (12-10, 01-10]'s 1,000 is 3.1 of its 31 days.
    assert value[("dso_count_back", "")] == pytest.approx(28 + 31 + 3.1)
    assert value[("best_possible_dso", "")] == pytest.approx(300 / 2_100 * 90)
    assert value[("average_days_delinquent", "")] == pytest.approx(900 / 2_100 * 90)
    # CEI: (2,050 + 100 - 1,200) / (2,050 + 100 - 300) x 100
    assert value[("collection_effectiveness_index", "")] == pytest.approx(950 / 1_850 * 100)
    assert [value[("aging_distribution", b)] for b in ("current", "1-30", "31-60", "61-90", "90+")] == pytest.approx(
        [25.0, 25.0, 50.0, 0.0, 0.0])  # 300; 500 - 200; 600
    for kpi in kpis.HISTORY_KPIS:  # need the dunning history: empty, and say why
        assert pd.isna(value[(kpi, "")]) and "2026-03-11" in rows.loc[(kpi, ""), "note"]


def test_a_cancelled_invoice_was_a_sale_until_it_was_cancelled():
    sales = kpis.sales_frame(_invoices())
    assert sorted(sales["amount"] // U) == [-200, 50, 300, 1_000, 1_000]  # not the draft
    # (01-31, 02-19]: 2 and 5, not cancelled yet: 1,000 + 50. To 02-20: 5 cancelled that day,
    # the credit note of that day: 1,000 - 200.
    assert kpis.credit_sales(sales, date(2026, 1, 31), date(2026, 2, 19)) == 1_050 * U
    assert kpis.credit_sales(sales, date(2026, 1, 31), date(2026, 2, 20)) == 800 * U


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

"""Credit-note netting on small hand-made receivables: what each invoice keeps, what the
customer's balances are, and which invoices credit notes cover entirely (pure, no warehouse)."""

from __future__ import annotations

import pandas as pd

from dunning_pipeline.dunning import netting
from dunning_pipeline.dunning.receivables import CREDIT_NOTE, INVOICE


def _receivables(rows: list[tuple]) -> pd.DataFrame:
    """rows: (invoice_id, customer_id, company_id, move_type, status, signed residual in units, due)."""
    frame = pd.DataFrame(rows, columns=["invoice_id", "customer_id", "company_id", "move_type",
                                        "receivable_status", "amount_residual_company", "invoice_date_due"])
    frame["company_id"] = frame["company_id"].astype("Int64")
    frame["invoice_date_due"] = pd.to_datetime(frame["invoice_date_due"])
    frame["invoice_date"] = pd.Timestamp("2026-01-01")
    return frame


def _by_id(recv: pd.DataFrame, net: pd.DataFrame, column: str) -> dict:
    return dict(zip(recv["invoice_id"], net[column], strict=True))


def test_invoices_and_credit_notes_of_no_company_net_only_with_each_other():
    recv = _receivables([
        (1, 7, 1, INVOICE, "open", 100, "2026-01-10"),
        (2, 7, None, INVOICE, "open", 30, "2026-01-20"),
        (3, 7, None, CREDIT_NOTE, "open", -50, "2026-01-05"),
    ])
    days = pd.Series([20, 10, 25])
    net = netting.net_credit_notes(recv, days)
    # the credit note of no company covers the invoice of no company, not company 1's older one
    assert _by_id(recv, net, "covered_company") == {1: 0, 2: 30, 3: 0}
    assert _by_id(recv, net, "net_residual_company")[1] == 100
    assert _by_id(recv, net, "customer_credit_company") == {1: 0, 2: -50, 3: -50}
    assert _by_id(recv, net, "customer_net_overdue_company") == {1: 100, 2: 30 - 50, 3: 30 - 50}
    assert netting.fully_covered(net, recv).tolist() == [False, True, False]


def test_the_oldest_open_instalment_not_the_final_due_date_orders_the_netting():
    # invoice 1 falls due last but its first instalment is the oldest thing owed
    recv = _receivables([
        (1, 7, 1, INVOICE, "open", 100, "2026-03-31"),
        (2, 7, 1, INVOICE, "open", 100, "2026-02-15"),
        (3, 7, 1, CREDIT_NOTE, "open", -100, "2026-01-05"),
    ])
    days = pd.Series([-30, 15, 55])
    oldest_open = pd.Series(pd.to_datetime(["2026-01-31", "2026-02-15", "2026-01-05"]))
    net = netting.net_credit_notes(recv, days, overdue_company=pd.Series([40, 100, 0]), due=oldest_open)
    assert _by_id(recv, net, "covered_company") == {1: 100, 2: 0, 3: 0}
    assert netting.fully_covered(net, recv).tolist() == [True, False, False]
    # without instalments the final due dates order it the other way round
    plain = netting.net_credit_notes(recv, days, overdue_company=pd.Series([0, 100, 0]))
    assert _by_id(recv, plain, "covered_company") == {1: 0, 2: 100, 3: 0}


def test_only_the_part_already_due_counts_as_overdue():
    recv = _receivables([
        (1, 7, 1, INVOICE, "open", 300, "2026-03-31"),   # 120 of it due in instalments so far
        (2, 7, 1, INVOICE, "open", 80, "2026-03-10"),    # not due yet
        (3, 7, 1, CREDIT_NOTE, "open", -50, "2026-01-05"),
        (4, 7, 1, INVOICE, "in_payment", 60, "2026-01-15"),
    ])
    days = pd.Series([20, -5, 55, 45])
    net = netting.net_credit_notes(recv, days, overdue_company=pd.Series([120, 0, 0, 60]))
    assert set(net["customer_overdue_company"]) == {120}
    assert set(net["customer_net_overdue_company"]) == {120 - 50}


def test_an_open_invoice_with_nothing_left_is_neither_overdue_nor_covered():
    recv = _receivables([
        (1, 7, 1, INVOICE, "open", 0, "2026-01-10"),
        (2, 7, 1, INVOICE, "open", 70, "2026-01-20"),
    ])
    net = netting.net_credit_notes(recv, pd.Series([20, 10]))
    assert set(net["customer_overdue_company"]) == {70}
    assert netting.fully_covered(net, recv).tolist() == [False, False]


def test_an_invoice_of_one_unit_covered_by_a_credit_note_is_fully_covered():
    recv = _receivables([
        (1, 7, 1, INVOICE, "open", 1, "2026-01-10"),
        (2, 7, 1, CREDIT_NOTE, "open", -1, "2026-01-05"),
    ])
    net = netting.net_credit_notes(recv, pd.Series([20, 25]))
    assert _by_id(recv, net, "net_residual_company")[1] == 0
    assert netting.fully_covered(net, recv).tolist() == [True, False]


def test_the_columns_keep_the_index_of_the_receivables():
    recv = _receivables([
        (1, 7, 1, INVOICE, "open", 40, "2026-01-10"),
        (2, 7, 1, CREDIT_NOTE, "open", -40, "2026-01-05"),
        (3, 8, 1, INVOICE, "open", 90, "2026-01-20"),
    ]).set_axis([30, 10, 20])
    net = netting.net_credit_notes(recv, pd.Series([20, 25, 10], index=recv.index))
    assert net.index.tolist() == [30, 10, 20]
    assert netting.fully_covered(net, recv).to_dict() == {30: True, 10: False, 20: False}

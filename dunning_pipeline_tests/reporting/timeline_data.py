"""A small hand-made customer history shared by the timeline and draft tests."""

from __future__ import annotations

import pandas as pd

from dunning_pipeline.dunning.invoice_numbers import text_pattern
from dunning_pipeline.dunning.policy import DEFAULT_INVOICE_NUMBER_PATTERN, DEFAULT_INVOICE_WORDS

PATTERN = text_pattern(DEFAULT_INVOICE_NUMBER_PATTERN, DEFAULT_INVOICE_WORDS)
T = pd.Timestamp


def tickets() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [501, 502, 503],
        "status": ["open", "solved", "open"],
        "subject": ["Rechnung INV/2026/00011", "Copy please", "<b>someone else</b>"],
        "description": ["", "", ""],
        "requester_id": [900, 901, 950],
        "created_at": [T("2026-02-20 09:00"), T("2026-01-05 10:00"), T("2026-02-21 10:00")],
    })


def users() -> pd.DataFrame:
    return pd.DataFrame({"id": [900, 901, 700, 950], "name": ["Anna Weber", "Jo Müller", "Agent Smith", "Eve"],
                         "email": ["anna@weber.de", "jo@weber.de", "agent@us.example", "eve@other.example"],
                         "role": ["end-user", "end-user", "agent", "end-user"]})


def comments() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6, 7],
        "ticket_id": [501, 501, 501, 502, 502, 503, 501],
        "author_id": [900, 700, 700, 901, 700, 950, 900],
        "public": [True, False, True, True, True, True, True],
        "body": ["Wir widersprechen der Rechnung INV/2026/00011 <script>x</script>",
                 "internal: check INV/2026/00011 and INV/2026/00099",
                 "We are looking into INV/2026/00011.",
                 "Please send a copy of inv/2026/00012", "Here it is.", "not ours", "written after the as-of day"],
        "via_channel": ["email", "web", "web", "email", "voice", "email", "email"],
        "created_at": [T("2026-02-20 09:00"), T("2026-02-20 11:00"), T("2026-02-21 08:00"),
                       T("2026-01-05 10:00"), T("2026-01-06 15:30"), T("2026-02-21 10:00"), T("2026-03-05 10:00")],
    })


def communications() -> pd.DataFrame:
    # 503 is matched to another customer (20); 501 names two invoices (two rows, one customer)
    return pd.DataFrame({"ticket_id": [501, 501, 502, 503], "customer_id": [10, 10, 10, 20]})


def invoices() -> pd.DataFrame:
    # INV/2026/00099 belongs to customer 20: never listed as named by customer 10's messages
    return pd.DataFrame({"invoice_id": [11, 12, 99], "invoice_number": ["INV/2026/00011", "INV/2026/00012",
                                                                        "INV/2026/00099"],
                         "customer_id": [10, 10, 20]})


def history() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "invoice_id": [11, 12, 11, 12, 11, 12],
        "invoice_number": ["INV/2026/00011", "INV/2026/00012", "INV/2026/00011", "INV/2026/00012",
                           "INV/2026/00011", "INV/2026/00012"],
        "customer_id": [10, 10, 10, 10, 10, 10],
        "currency": ["EUR"] * 6,
        "from_stage": [None, None, "reminder_1", "reminder_1", "reminder_2", "reminder_2"],
        "to_stage": ["reminder_1", "reminder_1", "reminder_2", "reminder_2", "reminder_2", "closed"],
        "reason": ["days_overdue", "days_overdue", "days_overdue", "hold", "hold", "paid"],
        "hold_reason": [None, None, None, "promise", "dispute", None],
        "hold_until": [pd.NaT, pd.NaT, pd.NaT, T("2026-03-10"), pd.NaT, pd.NaT],
        "ticket_id": [None, None, None, None, 501, None],
        "amount_residual": [1_234_5600, 500_0000, 1_234_5600, 500_0000, 1_234_5600, 0],
        "as_of_date": [T("2026-01-02"), T("2026-01-02"), T("2026-01-09"), T("2026-02-20"), T("2026-02-20"),
                       T("2026-03-06")],
    })

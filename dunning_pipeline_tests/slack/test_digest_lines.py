"""What an accountant reads on a customer line: one line per customer, its head consistent with
itself, amounts in the invoice's currency as of the alert, summaries for first alerts."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta

import pandas as pd

from dunning_pipeline.dunning.policy import DEFAULT_POLICY_FILE, load_policy
from dunning_pipeline.slack.digest import FIRST_ALERT, LONG_GAP, Limits, Links, Period, render_digest
from dunning_pipeline_tests.slack.history import frame, row
from dunning_pipeline_tests.slack.test_digest import _assert_within_slack_limits, _texts

D = date(2026, 3, 2)
WEEK = Period(end=D, start=date(2026, 2, 24))


def d(days: int) -> date:
    return D - timedelta(days=days)


def texts(messages) -> list[list[str]]:
    return [[t for b in m.blocks for t in _texts(b)] for m in messages]


def everything(messages) -> str:
    return "\n".join(t for page in texts(messages) for t in page)


def with_now(f: pd.DataFrame, invoice_id: int, **now) -> pd.DataFrame:
    """The invoice's current `invoice_aging` state, as `alert.read_history` joins it."""
    mask = f["invoice_id"] == invoice_id
    for key, value in now.items():
        col = f"now_{key}"
        if col not in f.columns:
            f[col] = pd.Series(pd.NA, index=f.index, dtype=object)
        f[col] = f[col].astype(object)
        f.loc[mask, col] = value
    return f


def test_a_yen_invoice_shows_yen_without_decimals_and_the_header_totals_company_currency():
    f = frame([row(1, 1, "Tokai Trading K.K.", "reminder_2", "call", d(2), amount="1234.56", due=d(18),
                   currency="USD")])
    f["currency"] = ["JPY"]
    f["amount_residual"] = [185_000 * 10_000]
    text = everything(render_digest(f, WEEK))
    assert "*Tokai Trading K.K.* · Call: phone the customer · 1 invoice · *185,000 JPY* · 18 days overdue on 2026-03-02" in text
    assert "INV/2026/00001 (Reminder 2 → Call, 18 d overdue, 185,000 JPY)" in text
    assert "*Call*\n1,234.56 USD" in text and "in company currency: 1,234.56 USD" in text
    assert "185,000.00" not in text and "1,234.56 USD ·" not in text


def test_amounts_and_days_are_those_of_the_alert_not_of_the_change():
    f = frame([row(1, 1, "Acme", "reminder_2", "call", d(6), amount="900.00", due=d(20))])
    # Since the change the customer paid 600 of it; the aging of the alert's day says so.
    f = with_now(f, 1, as_of_date=pd.Timestamp(D), currency="EUR", company_currency="EUR",
                 amount_residual=300_0000, amount_residual_company=300_0000, days_overdue=20)
    text = everything(render_digest(f, WEEK))
    assert "*Acme* · Call: phone the customer · 1 invoice · *300.00 EUR* · 20 days overdue on 2026-03-02" in text
    assert "INV/2026/00001 (Reminder 2 → Call, 20 d overdue, 300.00 EUR)" in text
    assert "900.00" not in text


def test_one_line_per_customer_at_its_highest_stage_with_every_other_change_folded_in():
    f = frame([
        row(1, 1, "Krause GmbH", "reminder_2", "call", d(3), amount="500.00", due=d(20)),
        row(2, 1, "Krause GmbH", None, "reminder_1", d(1), amount="200.00", due=d(2)),
        row(3, 1, "Krause GmbH", "final_notice", "final_notice", d(2), amount="48.94", due=d(40),
            reason="hold", hold="dispute", ticket=95),
        row(4, 1, "Krause GmbH", "collection", "collection", d(2), amount="0", due=d(82),
            reason="hold", hold="in_payment"),
        row(5, 1, "Krause GmbH", "reminder_1", "closed", d(4), amount="0", due=d(5), reason="paid"),
        row(6, 2, "Other AG", None, "reminder_1", d(1), amount="50.00", due=d(3)),
    ])
    f["prior_amount_residual_company"] = pd.array([pd.NA, pd.NA, pd.NA, 700_0000, 80_0000, pd.NA], dtype="Int64")
    f["prior_amount_residual"] = f["prior_amount_residual_company"]
    messages = render_digest(f, WEEK, last_contact={})
    text = everything(messages)
    assert text.count("*Krause GmbH*") == 1 and text.count("*Other AG*") == 1
    assert ("*Krause GmbH* · Call: phone the customer · 1 invoice · *500.00 EUR* · 20 days overdue on 2026-03-02"
            " · no contact on record\n"
            "INV/2026/00001 (Reminder 2 → Call, 20 d overdue, 500.00 EUR)\n"
            "_also at Reminder 1, 1 invoice:_ INV/2026/00002 (entered Reminder 1, 2 d overdue, 200.00 EUR)\n"
            "_also on hold at Final notice, 1 invoice:_ INV/2026/00003 (disputed, at Final notice,"
            " 40 d overdue, 48.94 EUR, ticket #95)\n"
            "_also 1 invoice with payment on its way:_ INV/2026/00004 (700.00 EUR, was at Collection)\n"
            "_also 1 invoice closed:_ INV/2026/00005 (paid 2026-02-26, 80.00 EUR)") in text
    counts = messages[0].blocks[1]["text"]["text"]
    assert "Customers per section: Needs action now: 1 · Newly overdue: 1" in counts
    assert "*1* invoice with payment on its way, 700.00 EUR" in counts


def test_the_demo_inconsistencies_are_gone_the_head_describes_its_own_invoices():
    f = frame([
        # Held at different stages: the head is the highest held stage with its own days.
        row(1, 1, "Krause Medizintechnik", "reminder_1", "reminder_1", d(2), amount="48.94", due=d(19),
            reason="hold", hold="dispute"),
        row(2, 1, "Krause Medizintechnik", "collection", "collection", d(2), amount="0", due=d(82),
            reason="hold", hold="in_payment"),
        # A key account still at pre-due after its due date, beside a new pre-due invoice.
        row(3, 2, "Redwood Foods", None, "pre_due", d(1), amount="2011.76", due=d(13)),
        row(4, 2, "Redwood Foods", None, "pre_due", d(1), amount="912.87", due=D + timedelta(days=1)),
    ])
    f["action"] = ["email"] * 4
    f["manual_only"] = pd.array([False, False, True, True], dtype="boolean")
    text = everything(render_digest(f, WEEK))
    assert ("*Krause Medizintechnik* · on hold at Reminder 1 (disputed) · 1 invoice · *48.94 EUR*"
            " · 19 days overdue on 2026-03-02\n") in text
    assert "82 days overdue" not in text and "on hold at Collection" not in text
    assert ("*Redwood Foods* · Pre-due: friendly reminder email (by hand: manual-only policy) · 2 invoices"
            " · *2,924.63 EUR* · 13 days overdue on 2026-03-02\n"
            "INV/2026/00003 (entered Pre-due, 13 d overdue, 2,011.76 EUR) · INV/2026/00004 (entered Pre-due,"
            " due in 1 d, 912.87 EUR)") in text
    assert "before the due date" not in text


_HEAD = re.compile(r"^\*(?P<name>[^*]+)\* · (?P<stage>[^·:(]+?)(?::[^·]*)? · (?P<n>\d+) invoices? · "
                   r"\*(?P<amount>[\d,.]+) EUR\* · (?P<days>\d+) days? overdue on 2026-03-02")
_ITEM = re.compile(r"INV/\d{4}/\d{5} \((?:[^→,]*→ |entered )?(?P<stage>[^,]+?)(?:, skipped \d+ stages?)?, "
                   r"(?P<days>\d+) d overdue, (?P<amount>[\d,.]+) EUR\)")


def test_every_line_head_states_the_stage_days_and_amount_of_the_invoices_it_lists_first():
    rnd = random.Random(8)
    stages = [s.name for s in load_policy(DEFAULT_POLICY_FILE).display_stages()][1:]  # overdue ones
    thresholds = {"reminder_1": 1, "reminder_2": 8, "call": 15, "final_notice": 31, "collection": 45}
    rows, inv = [], 0
    for c in range(40):
        for _ in range(rnd.randint(1, 3)):  # at most 3: every head invoice is listed
            inv += 1
            stage = rnd.choice(stages)
            days = thresholds[stage] + rnd.randint(0, 6)
            rows.append(row(inv, c, f"Customer {c:02d}", (stages[stages.index(stage) - 1] if stage != stages[0] else None), stage, d(1),
                            amount=f"{rnd.randint(1, 5000)}.{rnd.randint(0, 99):02d}", due=d(days)))
    messages = render_digest(frame(rows), WEEK, limits=Limits(summary_lines=100))
    lines = [line for page in texts(messages) for t in page for line in t.split("\n\n")
             if line.startswith("*Customer")]
    assert len(lines) == 40
    labels = {"Reminder 1", "Reminder 2", "Call", "Final notice", "Collection"}
    for line in lines:
        head_line, items_line = line.split("\n")[:2]
        head = _HEAD.match(head_line)
        assert head, head_line
        items = [m.groupdict() for m in _ITEM.finditer(items_line)]
        assert len(items) == int(head["n"]), line
        assert {i["stage"] for i in items} == {head["stage"].strip()} and head["stage"].strip() in labels
        assert max(int(i["days"]) for i in items) == int(head["days"]), line
        cents = sum(int(i["amount"].replace(",", "").replace(".", "")) for i in items)
        assert cents == int(head["amount"].replace(",", "").replace(".", "")), line


def _many(n: int):
    return frame([row(i, i, f"Cust {i:03d}", "reminder_2", "call", d(1), amount=f"{100 + i}.00", due=d(16))
                  for i in range(n)]
                 + [row(1000 + i, 1000 + i, f"Held {i:03d}", "call", "call", d(1), amount="10.00", due=d(16),
                        reason="hold", hold="dispute") for i in range(5)])


def test_a_first_alert_is_a_summary_with_the_top_customers_and_the_rest_in_the_thread():
    for period, why in ((Period(end=D, start=d(120), summary=FIRST_ALERT), "First alert since installation"),
                        (Period(end=D, start=d(34), summary=LONG_GAP), "First alert in 35 days")):
        messages = render_digest(_many(30), period, limits=Limits(summary_lines=5))
        _assert_within_slack_limits(messages)
        first, rest = texts(messages)[0], texts(messages)[1:]
        assert first[1].startswith(f"{why}: a summary.")
        shown = re.findall(r"\*Cust (\d{3})\*", "\n".join(first))
        assert shown == ["029", "028", "027", "026", "025"]  # biggest first
        assert any(t.startswith("…and 25 more customers that need action, 2,800.00 EUR") for t in first)
        assert "Held" not in "\n".join(first)
        thread = "\n".join(t for page in rest for t in page)
        # Every other customer once in the thread: nothing dropped, nobody twice.
        assert re.findall(r"\*Cust (\d{3})\*", thread) == [f"{i:03d}" for i in range(24, -1, -1)]
        assert len(re.findall(r"\*Held \d{3}\*", thread)) == 5
        assert rest[0][0] == ":rotating_light: *Needs action now* (continued)"


def test_a_weekly_alert_is_not_a_summary():
    messages = render_digest(_many(30), WEEK, limits=Limits(summary_lines=5))
    assert len(messages) == 1
    assert len(re.findall(r"\*Cust \d{3}\*", everything(messages))) == 30


def test_the_due_instalment_is_named_when_the_aging_knows_it():
    f = frame([row(1, 1, "Acme", "reminder_2", "call", d(1), amount="1000.00", due=D + timedelta(days=30)),
               row(2, 2, "Bolt", "reminder_2", "call", d(1), amount="10.00", due=d(20))])
    f = with_now(f, 1, as_of_date=pd.Timestamp(D), currency="EUR", company_currency="EUR",
                 amount_residual=700_0000, amount_residual_company=700_0000, days_overdue=29,
                 due_date=pd.Timestamp(2026, 2, 1), instalment_number=1, instalments_total=2)
    f = with_now(f, 2, as_of_date=pd.Timestamp(D), currency="EUR", company_currency="EUR",
                 amount_residual=10_0000, amount_residual_company=10_0000, days_overdue=20,
                 due_date=pd.Timestamp(d(20)), instalment_number=1, instalments_total=1)
    text = everything(render_digest(f, WEEK))
    assert ("*Acme* · Call: phone the customer · 1 invoice · *700.00 EUR* · 29 days overdue on 2026-03-02\n"
            "INV/2026/00001 (Reminder 2 → Call, instalment 1 of 2 due 2026-02-01, 29 d overdue, 700.00 EUR)") in text
    assert "INV/2026/00002 (Reminder 2 → Call, 20 d overdue, 10.00 EUR)" in text  # one instalment: not said


def test_a_number_two_companies_use_is_shown_with_its_company_and_links_by_id():
    f = frame([row(1, 1, "Acme", "reminder_2", "call", d(1), number="INV/2026/00054", due=d(16)),
               row(2, 2, "Bolt", "reminder_2", "call", d(1), number="INV/2026/00054", due=d(16)),
               row(3, 2, "Bolt", "reminder_2", "call", d(1), number="INV/2026/00055", due=d(16))])
    f["company_id"] = [1, 2, 2]
    links = Links("https://acme.odoo.com", invoice_path="/odoo/action-account.action_move_out_invoice_type/"
                                                        "{invoice_id}?cids={company_id}")
    text = everything(render_digest(f, WEEK, links=links))
    assert "/1?cids=1|INV/2026/00054 (company 1)>" in text
    assert "/2?cids=2|INV/2026/00054 (company 2)>" in text
    assert "/3?cids=2|INV/2026/00055>" in text

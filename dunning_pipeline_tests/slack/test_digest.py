"""The rendered digest: a fixed week asserted block by block, and the splitting at Slack's limits."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pandas as pd
from slack_sdk.models.blocks import Block

from dunning_pipeline.dunning.policy import Stage, load_policy
from dunning_pipeline.slack.digest import Limits, Links, Period, render_digest, to_markdown
from dunning_pipeline_tests.slack.history import frame, row

D = date(2026, 3, 2)
WEEK = Period(end=D, start=date(2026, 2, 24))
LINKS = Links("https://acme.odoo.com", "https://acme.zendesk.com")
INV = "https://acme.odoo.com/odoo/action-account.action_move_out_invoice_type/"
TICKET = "https://acme.zendesk.com/agent/tickets/"


def d(days: int) -> date:
    return D - timedelta(days=days)


def fixed_week():
    rows = [
        # Acme: one invoice jumps reminder 1 -> call (a missed night), another becomes overdue.
        row(101, 1, "Acme & <Sons> Ltd", "reminder_1", "call", d(3), amount="1234.50", due=d(17), skipped=1),
        row(102, 1, "Acme & <Sons> Ltd", None, "reminder_1", d(1), amount="200.00", due=d(2)),
        row(201, 2, "Bolt GmbH", "call", "final_notice", d(0), amount="9800.00", due=d(31), ticket=5001),
        row(301, 3, "Cora SA", "reminder_1", "reminder_2", d(4), amount="450.00", due=d(12), currency="CHF"),
        row(401, 4, "Dune BV", "pre_due", "reminder_1", d(6), amount="75.25", due=d(7)),
        row(501, 5, "Elm Inc", "call", "call", d(2), amount="3000.00", due=d(20), reason="hold",
            hold="dispute", ticket=5002),
        # Fern: released from a hold, then paid; the closing row carries a zero residual.
        row(601, 6, "Fern Oy", "reminder_2", "reminder_2", d(5), amount="640.00", due=d(14), reason="released"),
        row(601, 6, "Fern Oy", "reminder_2", "closed", d(2), amount="0", due=d(14), reason="paid"),
        row(701, 7, "Gale Ltd", None, "pre_due", d(0), amount="99.00", due=D + timedelta(days=3)),
    ]
    f = frame(rows)
    f.insert(0, "id", range(1, len(f) + 1))
    return f


def section(text: str) -> dict:
    return {"text": {"text": text, "type": "mrkdwn"}, "type": "section"}


def test_a_fixed_week_renders_exactly():
    messages = render_digest(fixed_week(), WEEK, links=LINKS,
                             last_contact={1: date(2026, 2, 20), 2: date(2026, 3, 1)})
    assert [m.to_dict() for m in messages] == [{
        "text": "Dunning changes 2026-02-24 to 2026-03-02: 8 invoices of 7 customers changed stage;"
                " Needs action now: 2; Escalated: 1; Newly overdue: 1; On hold: 1; Other changes: 1;"
                " Resolved: 1",
        "blocks": [
            {"text": {"text": "Dunning changes 2026-02-24 to 2026-03-02", "type": "plain_text"},
             "type": "header"},
            section("*8* invoices of *7* customers changed stage.\n"
                    "Customers per section: Needs action now: 2 · Escalated: 1 · Newly overdue: 1"
                    " · On hold: 1 · Other changes: 1 · Resolved: 1"),
            {"fields": [{"text": "*Pre-due*\n99.00 EUR", "type": "mrkdwn"},
                        {"text": "*Reminder 1*\n275.25 EUR", "type": "mrkdwn"},
                        {"text": "*Reminder 2*\n450.00 CHF", "type": "mrkdwn"},
                        {"text": "*Call*\n4,234.50 EUR", "type": "mrkdwn"},
                        {"text": "*Final notice*\n9,800.00 EUR", "type": "mrkdwn"}],
             "type": "section"},
            {"elements": [{"text": "Owed on 2026-03-02 by the 7 changed invoices still open, in company"
                                   " currency: 14,408.75 EUR + 450.00 CHF (per stage above). Lines show"
                                   " each invoice's own currency.",
                           "type": "mrkdwn"}],
             "type": "context"},
            {"type": "divider"},
            section(":rotating_light: *Needs action now* · 2 customers"),
            section(
                "*Bolt GmbH* · Final notice: send the letter · 1 invoice · *9,800.00 EUR* · 31 days overdue"
                " on 2026-03-02 · last contact 2026-03-01\n"
                f"<{INV}201|INV/2026/00201> (Call → Final notice, 31 d overdue, 9,800.00 EUR,"
                f" ticket <{TICKET}5001|#5001>)\n"
                "\n"
                "*Acme &amp; &lt;Sons&gt; Ltd* · Call: phone the customer · 1 invoice · *1,234.50 EUR*"
                " · 17 days overdue on 2026-03-02 · last contact 2026-02-20\n"
                f"<{INV}101|INV/2026/00101> (Reminder 1 → Call, skipped 1 stage, 17 d overdue, 1,234.50 EUR)\n"
                f"_also at Reminder 1, 1 invoice:_ <{INV}102|INV/2026/00102> (entered Reminder 1, 2 d overdue,"
                " 200.00 EUR)"
            ),
            {"type": "divider"},
            section(":arrow_up: *Escalated* · 1 customer"),
            section("*Cora SA* · Reminder 2 · 1 invoice · *450.00 CHF* · 12 days overdue on 2026-03-02"
                    " · no contact on record\n"
                    f"<{INV}301|INV/2026/00301> (Reminder 1 → Reminder 2, 12 d overdue, 450.00 CHF)"),
            {"type": "divider"},
            section(":hourglass_flowing_sand: *Newly overdue* · 1 customer"),
            section("*Dune BV* · Reminder 1 · 1 invoice · *75.25 EUR* · 7 days overdue on 2026-03-02"
                    " · no contact on record\n"
                    f"<{INV}401|INV/2026/00401> (Pre-due → Reminder 1, 7 d overdue, 75.25 EUR)"),
            {"type": "divider"},
            section(":double_vertical_bar: *On hold* · 1 customer"),
            section("*Elm Inc* · on hold at Call (disputed) · 1 invoice · *3,000.00 EUR* · 20 days overdue"
                    " on 2026-03-02 · no contact on record\n"
                    f"<{INV}501|INV/2026/00501> (disputed, at Call, 20 d overdue, 3,000.00 EUR,"
                    f" ticket <{TICKET}5002|#5002>)"),
            {"type": "divider"},
            section(":information_source: *Other changes* · 1 customer"),
            section("*Gale Ltd* · Pre-due · 1 invoice · *99.00 EUR* · due 2026-03-05 · no contact on record\n"
                    f"<{INV}701|INV/2026/00701> (entered Pre-due, due in 3 d, 99.00 EUR)"),
            {"type": "divider"},
            section(":white_check_mark: *Resolved* · 1 customer"),
            section("*Fern Oy* · paid · 1 invoice · *640.00 EUR*\n"
                    f"<{INV}601|INV/2026/00601> (paid 2026-02-28, 640.00 EUR)"),
        ],
    }]


def test_without_base_urls_or_contacts_lines_have_plain_numbers_and_no_contact():
    messages = render_digest(fixed_week(), WEEK, links=Links(), last_contact=None)
    text = json.dumps(messages[0].blocks, ensure_ascii=False)
    assert "<http" not in text and "last contact" not in text and "no contact" not in text
    assert "INV/2026/00201 (Call → Final notice, 31 d overdue, 9,800.00 EUR, ticket #5001)" in text


def test_a_closed_invoice_shows_the_amount_before_the_period_when_the_week_only_has_its_closure():
    rows = frame([row(601, 6, "Fern Oy", "reminder_2", "closed", d(2), amount="0", due=d(14), reason="credited")])
    rows["prior_amount_residual_company"] = [640_0000]
    text = render_digest(rows, WEEK, links=Links())[0].blocks[-1]["text"]["text"]
    assert text == "*Fern Oy* · credited · 1 invoice · *640.00 EUR*\nINV/2026/00601 (credited 2026-02-28, 640.00 EUR)"


def test_holds_say_why_and_a_payment_on_its_way_is_counted_in_the_header_not_shown_as_zero():
    rows = frame([
        row(1, 1, "Promiser", "call", "call", d(3), amount="500.00", due=d(20), reason="hold",
            hold="promise", hold_until=date(2026, 3, 10)),
        row(2, 1, "Promiser", "reminder_1", "reminder_1", d(2), amount="0", due=d(3), reason="hold",
            hold="in_payment"),
        row(3, 1, "Promiser", "reminder_2", "reminder_2", d(2), amount="0", due=d(9), reason="hold",
            hold="in_payment"),
        row(4, 2, "Payer", "collection", "collection", d(2), amount="0", due=d(82), reason="hold",
            hold="in_payment"),
    ])
    rows["prior_amount_residual_company"] = pd.array([pd.NA, 80_0000, pd.NA, 1_000_0000], dtype="Int64")
    messages = render_digest(rows, WEEK, links=Links())
    summary = messages[0].blocks[1]["text"]["text"]
    assert summary.endswith(":incoming_envelope: *3* invoices with payment on its way, 1,080.00 EUR"
                            ": not dunned, each shown on its customer's line.")
    texts = [[t for b in m.blocks for t in _texts(b)] for m in messages]
    assert texts[0][-2] == (
        "*Promiser* · on hold at Call (payment promised until 2026-03-10) · 1 invoice · *500.00 EUR*"
        " · 20 days overdue on 2026-03-02\n"
        "INV/2026/00001 (payment promised until 2026-03-10, at Call, 20 d overdue, 500.00 EUR)\n"
        "_also 2 invoices with payment on its way:_ INV/2026/00002 (80.00 EUR, was at Reminder 1)"
        " · INV/2026/00003 (amount not recorded, was at Reminder 2)")
    # A customer whose only change is a payment on its way is listed in the thread, with what it owed.
    assert len(messages) == 2 and texts[1][:2] == [
        ":incoming_envelope: *Payment on its way* · 1 customer",
        "*Payer* · payment on its way · 1 invoice · *1,000.00 EUR*\nINV/2026/00004 (1,000.00 EUR, was at Collection)"]
    assert not re.search(r"(?<![\d,.])0\.00 EUR", "\n".join(t for page in texts for t in page))


def test_an_empty_week_says_so_in_one_short_line():
    messages = render_digest(frame([]), WEEK, links=LINKS)
    assert [m.to_dict() for m in messages] == [{
        "text": "No dunning stage changes from 2026-02-24 to 2026-03-02.",
        "blocks": [section("No dunning stage changes from 2026-02-24 to 2026-03-02.")],
    }]


# -- splitting ------------------------------------------------------------------------------------
def _texts(block: dict) -> list[str]:
    out = []
    if "text" in block:
        out.append(block["text"]["text"])
    out += [f["text"] for f in block.get("fields") or []]
    out += [e["text"] for e in block.get("elements") or [] if "text" in e]
    return out


def _assert_within_slack_limits(messages, limits=Limits()):
    for m in messages:
        assert m.text.strip(), "every message needs a plain-text fallback"
        assert 0 < len(m.blocks) <= limits.blocks_per_message
        assert sum(len(t) for b in m.blocks for t in _texts(b)) <= limits.message_chars
        for b in m.blocks:
            Block.parse(b).validate_json()  # slack_sdk's own checks of each block's limits
            if b["type"] == "header":
                assert len(b["text"]["text"]) <= limits.header_chars
            if b["type"] == "section" and "text" in b:
                assert len(b["text"]["text"]) <= limits.section_chars


def many_customers(n: int):
    rows = [row(10_000 + i, 1000 + i, f"Customer {i:04d} & Co", "reminder_2", "call", d(1),
                amount=f"{1000 + i}.00", due=d(16), number=f"INV/2026/{i:05d}") for i in range(n)]
    f = frame(rows)
    f.insert(0, "id", range(1, n + 1))
    return f


def test_a_long_week_is_split_into_messages_within_every_limit_and_loses_no_customer():
    messages = render_digest(many_customers(400), WEEK, links=LINKS)
    assert len(messages) > 3
    _assert_within_slack_limits(messages)
    all_text = "\n".join(t for m in messages for b in m.blocks for t in _texts(b))
    names = re.findall(r"\*Customer (\d{4}) &amp; Co\*", all_text)
    # Every customer exactly once, biggest amount (highest number) first, across all parts.
    assert names == [f"{i:04d}" for i in range(399, -1, -1)]
    n = len(messages)
    for i, m in enumerate(messages, start=1):
        footer = m.blocks[-1]
        assert footer["type"] == "context"
        assert footer["elements"][0]["text"] == f"Part {i} of {n}" + (" · continued in the thread" if i == 1 else "")
        if i > 1:
            assert m.text == f"Dunning changes 2026-02-24 to 2026-03-02 (part {i} of {n})"
            assert m.blocks[0] == section(":rotating_light: *Needs action now* (continued)")
    assert messages[0].blocks[0]["type"] == "header"


def test_fifty_block_limit_splits_even_when_characters_would_fit():
    limits = Limits(section_chars=300, message_chars=100_000)
    messages = render_digest(many_customers(250), WEEK, links=Links(), limits=limits)
    assert len(messages) >= 3
    assert max(len(m.blocks) for m in messages) == 50
    _assert_within_slack_limits(messages, limits)


def test_a_customer_with_many_invoices_shows_the_largest_and_how_many_more_for_how_much():
    rows = [row(50_000 + i, 9, "Big Buyer", "reminder_1", "reminder_2", d(1), amount=f"{10 + i}.00", due=d(9),
                number=f"BIG/{i:04d}") for i in range(40)]
    rows += [row(60_000 + i, 9, "Big Buyer", None, "reminder_1", d(1), amount="1.00", due=d(2),
                 number=f"NEW/{i:04d}") for i in range(5)]
    messages = render_digest(frame(rows), WEEK, links=LINKS)
    _assert_within_slack_limits(messages)
    all_text = "\n".join(t for m in messages for b in m.blocks for t in _texts(b))
    assert all_text.count("*Big Buyer*") == 1
    # 10 + ... + 49 = 1,180.00; the three largest are 49, 48, 47: 144.00; the rest 1,036.00.
    assert "*Big Buyer* · Reminder 2 · 40 invoices · *1,180.00 EUR* · 9 days overdue on 2026-03-02" in all_text
    assert re.findall(r"\|(BIG/\d{4})>", all_text) == ["BIG/0039", "BIG/0038", "BIG/0037"]
    assert "BIG/0037> (Reminder 1 → Reminder 2, 9 d overdue, 47.00 EUR) · and 37 more, total 1,036.00 EUR" in all_text
    assert "_also at Reminder 1, 5 invoices:_ " in all_text and "and 2 more, total 2.00 EUR" in all_text


def test_a_customer_with_hundreds_of_folded_groups_continues_across_blocks_without_losing_one():
    stages = tuple(Stage(f"s{i:03d}", i, "email", "polite", i, f"Step {i:03d}") for i in range(300))
    rows = [row(50_000 + i, 9, "Big Buyer", None, f"s{i:03d}", d(1), amount="10.00", due=d(i),
                number=f"BIG/{i:04d}") for i in range(300)]
    messages = render_digest(frame(rows), WEEK, links=LINKS, stages=stages)
    _assert_within_slack_limits(messages)
    all_text = "\n".join(t for m in messages for b in m.blocks for t in _texts(b))
    assert sorted(re.findall(r"\|(BIG/\d{4})>", all_text)) == [f"BIG/{i:04d}" for i in range(300)]
    assert all_text.count("*Big Buyer* · Step 299 · 1 invoice · *10.00 EUR*") == 1
    assert all_text.count("↳ *Big Buyer* (continued)") >= 2


def test_an_alert_capped_in_messages_says_how_many_lines_it_left_out():
    limits = Limits(max_messages=2)
    messages = render_digest(many_customers(400), WEEK, links=LINKS, limits=limits)
    assert len(messages) == 2
    _assert_within_slack_limits(messages, limits)
    all_text = "\n".join(t for m in messages for b in m.blocks for t in _texts(b))
    shown = len(re.findall(r"\*Customer \d{4} &amp; Co\*", all_text))
    note = messages[-1].blocks[-2]["text"]["text"]
    assert note == (f":warning: *{400 - shown} more customer lines not shown in full* (Needs action now:"
                    f" {400 - shown}): this alert is capped at 2 messages (SLACK_MAX_MESSAGES). Every"
                    " change is in the `dunning_history` table.")


def test_markdown_preview_turns_slack_links_into_markdown_links():
    md = to_markdown(render_digest(fixed_week(), WEEK, links=LINKS))
    assert "### Dunning changes 2026-02-24 to 2026-03-02" in md
    assert f"[INV/2026/00201]({INV}201)" in md
    assert "**Acme & <Sons> Ltd**" in md


CUSTOM_POLICY = """
version: 1
policies:
  default:
    stages:
      - {name: pre_due,     days: -3, action: email,  tone: friendly}
      - {name: reminder_1,  days: 1,  action: email,  tone: polite}
      - {name: phone_chase, days: 10, action: call,   tone: firm, label: Chase by phone}
      - {name: lawyer,      days: 60, action: letter, tone: legal}
"""


def test_stages_of_a_custom_policy_are_labelled_ranked_and_acted_on(tmp_path, monkeypatch):
    path = tmp_path / "policy.yaml"
    path.write_text(CUSTOM_POLICY, encoding="utf-8")
    monkeypatch.setenv("DUNNING_POLICY_FILE", str(path))
    stages = load_policy().display_stages()  # what the asset passes
    assert [(s.name, s.display, s.todo, s.needs_action, s.overdue) for s in stages] == [
        ("pre_due", "Pre due", "friendly reminder email", False, False),
        ("reminder_1", "Reminder 1", "polite reminder email", False, True),
        ("phone_chase", "Chase by phone", "phone the customer", True, True),
        ("lawyer", "Lawyer", "send the letter", True, True),
    ]
    rows = frame([row(1, 1, "Acme", "reminder_1", "phone_chase", d(1), due=d(11)),
                  row(2, 2, "Bolt", "phone_chase", "lawyer", d(1), due=d(61))])
    blocks = render_digest(rows, WEEK, links=Links(), stages=stages)[0].blocks
    assert blocks[2]["fields"] == [{"text": "*Chase by phone*\n100.00 EUR", "type": "mrkdwn"},
                                   {"text": "*Lawyer*\n100.00 EUR", "type": "mrkdwn"}]
    assert blocks[6]["text"]["text"] == (  # equal amounts: by name
        "*Acme* · Chase by phone: phone the customer · 1 invoice · *100.00 EUR* · 11 days overdue on 2026-03-02\n"
        "INV/2026/00001 (Reminder 1 → Chase by phone, 11 d overdue, 100.00 EUR)\n\n"
        "*Bolt* · Lawyer: send the letter · 1 invoice · *100.00 EUR* · 61 days overdue on 2026-03-02\n"
        "INV/2026/00002 (Chase by phone → Lawyer, 61 d overdue, 100.00 EUR)")


def test_a_manual_only_policy_puts_even_an_email_stage_under_needs_action():
    rows = frame([row(1, 1, "Key Account AG", "pre_due", "reminder_1", d(1), due=d(16)),
                  row(2, 2, "Normal GmbH", "pre_due", "reminder_1", d(1), due=d(2))])
    rows["action"] = ["email", "email"]
    rows["manual_only"] = pd.array([True, False], dtype="boolean")
    blocks = render_digest(rows, WEEK, links=Links())[0].blocks
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert texts[1:] == [
        ":rotating_light: *Needs action now* · 1 customer",
        "*Key Account AG* · Reminder 1: polite reminder email (by hand: manual-only policy) · 1 invoice"
        " · *100.00 EUR* · 16 days overdue on 2026-03-02\n"
        "INV/2026/00001 (Pre-due → Reminder 1, 16 d overdue, 100.00 EUR)",
        ":hourglass_flowing_sand: *Newly overdue* · 1 customer",
        "*Normal GmbH* · Reminder 1 · 1 invoice · *100.00 EUR* · 2 days overdue on 2026-03-02\n"
        "INV/2026/00002 (Pre-due → Reminder 1, 2 d overdue, 100.00 EUR)",
    ]

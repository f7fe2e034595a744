"""customer_timeline: messages and dunning events interleaved per customer, and the HTML view."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd

from dunning_pipeline.reporting.timeline import build_timeline, fingerprints, render_views, view_template_key

from . import timeline_data as D

AS_OF = date(2026, 3, 2)


def _timeline(tz: str = "UTC") -> pd.DataFrame:
    return build_timeline(D.comments(), D.tickets(), D.users(), D.communications(), D.history(), D.invoices(),
                          D.PATTERN, AS_OF, ZoneInfo(tz))


def test_messages_and_dunning_events_interleave_in_order():
    tl = _timeline()
    mine = tl[tl["customer_id"] == 10]
    assert mine["seq"].tolist() == list(range(1, 11))
    assert list(zip(mine["kind"], mine["event"], [None if pd.isna(c) else c for c in mine["comment_id"]],
                    strict=True)) == [
        ("dunning", "stage_entered", None), ("dunning", "stage_entered", None),
        ("message", "inbound", 4), ("message", "outbound", 5),
        ("dunning", "stage_entered", None),
        # the night's events of 20 February come before that day's messages
        ("dunning", "promise", None), ("dunning", "hold", None),
        ("message", "inbound", 1), ("message", "internal_note", 2), ("message", "outbound", 3),
    ]
    # nothing after the as-of day: neither comment 7 nor the closure of 6 March
    assert 7 not in set(tl["comment_id"].dropna()) and "closure" not in set(tl["event"])
    other = tl[tl["customer_id"] == 20]
    assert other["comment_id"].tolist() == [6] and other["seq"].tolist() == [1]


def test_message_fields_author_visibility_and_invoices_named():
    tl = _timeline().set_index("comment_id")
    first = tl.loc[1]
    assert (first["author_name"], first["direction"], first["visibility"], first["ticket_id"],
            first["subject"]) == ("Anna Weber", "inbound", "public", 501, "Rechnung INV/2026/00011")
    assert json.loads(first["invoice_numbers"]) == ["INV/2026/00011"]
    note = tl.loc[2]
    assert (note["event"], note["visibility"], note["direction"], note["author_role"]) == (
        "internal_note", "internal", "outbound", "agent")
    # another customer's invoice named in our note is not listed as this customer's
    assert json.loads(note["invoice_numbers"]) == ["INV/2026/00011"]
    assert json.loads(tl.loc[4, "invoice_numbers"]) == ["INV/2026/00012"]  # written in lower case
    assert tl.loc[5, "channel"] == "voice" and json.loads(tl.loc[5, "invoice_numbers"]) == []


def test_dunning_event_fields():
    tl = _timeline()
    events = tl[tl["kind"] == "dunning"].set_index("seq")
    promise = events[events["event"] == "promise"].iloc[0]
    assert (promise["invoice_number"], promise["hold_reason"], promise["hold_until"]) == (
        "INV/2026/00012", "promise", pd.Timestamp("2026-03-10"))
    assert promise["text"] == "INV/2026/00012: reminder_1 -> reminder_2 (hold, promise)"
    hold = events[events["event"] == "hold"].iloc[0]
    assert hold["ticket_id"] == 501 and hold["amount_residual"] == 12_345_600


def test_the_day_of_a_message_is_taken_in_the_business_time_zone():
    # 2026-03-01 23:30 UTC is already 2 March in Berlin and 1 March in UTC: both within as-of;
    # 2026-03-02 23:30 UTC is 3 March in Berlin: left out there, kept in UTC.
    comments = D.comments()
    comments.loc[comments["id"] == 7, "created_at"] = pd.Timestamp("2026-03-02 23:30")
    kept = {}
    for tz in ("UTC", "Europe/Berlin"):
        tl = build_timeline(comments, D.tickets(), D.users(), D.communications(), D.history(), D.invoices(),
                            D.PATTERN, AS_OF, ZoneInfo(tz))
        kept[tz] = 7 in set(tl["comment_id"].dropna())
    assert kept == {"UTC": True, "Europe/Berlin": False}


def test_view_is_an_autoescaped_html_fragment_per_customer():
    views = render_views(_timeline(), pd.Series({10: "Weber & Söhne GmbH", 20: "Other"}), AS_OF).set_index("customer_id")
    assert views.loc[10, ["events", "messages"]].tolist() == [10, 5]
    html = views.loc[10, "html"]
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Weber &amp; Söhne GmbH" in html
    assert html.index("Jo Müller") < html.index("Anna Weber")  # in order
    assert 'class="tl-internal_note tl-internal"' in html and "1,234.56 EUR" in html
    assert "&lt;b&gt;someone else&lt;/b&gt;" in views.loc[20, "html"]


def test_an_override_folder_replaces_the_view_template(tmp_path):
    (tmp_path / "timeline.html.j2").write_text("<p>{{ customer_name }}: {{ items|length }}</p>", encoding="utf-8")
    views = render_views(_timeline(), pd.Series({10: "A<B", 20: "C"}), AS_OF, tmp_path).set_index("customer_id")
    assert views.loc[10, "html"] == "<p>A&lt;B: 10</p>"


def test_invoices_named_the_way_customers_write_them_are_listed():
    comments = D.comments()
    comments.loc[comments["id"] == 4, "body"] = "About 2026/00012 and invoice 11, and invoice 99 (not yours)"
    tl = build_timeline(comments, D.tickets(), D.users(), D.communications(), D.history(), D.invoices(),
                        D.PATTERN, AS_OF, ZoneInfo("UTC"))
    row = tl[tl["comment_id"] == 4].iloc[0]
    assert json.loads(row["invoice_numbers"]) == ["INV/2026/00012", "INV/2026/00011"]


def test_a_fingerprint_changes_with_the_customers_events_or_name_only():
    names = pd.Series({10: "Weber & Söhne GmbH", 20: "Other"})
    key = view_template_key(AS_OF)
    base = fingerprints(_timeline(), names, key)
    assert set(base.index) == {10, 20}
    # another as-of day with the same events: the same fingerprints (the shipped view does not show the day)
    later = _timeline().assign(as_of_date=pd.Timestamp(2026, 3, 9))
    assert fingerprints(later, names, view_template_key(date(2026, 3, 9))).equals(base)
    edited = _timeline()
    edited.loc[(edited["customer_id"] == 20) & (edited["kind"] == "message"), "text"] = "edited"
    moved = fingerprints(edited, names, key)
    assert moved[10] == base[10] and moved[20] != base[20]
    renamed = fingerprints(_timeline(), pd.Series({10: "Weber GmbH", 20: "Other"}), key)
    assert renamed[10] != base[10] and renamed[20] == base[20]


def test_a_view_template_that_shows_the_day_changes_every_fingerprint_every_day(tmp_path):
    assert view_template_key(AS_OF) == view_template_key(date(2026, 3, 9))
    (tmp_path / "timeline.html.j2").write_text("<p>{{ customer_name }} on {{ as_of }}</p>", encoding="utf-8")
    assert view_template_key(AS_OF, tmp_path) != view_template_key(date(2026, 3, 9), tmp_path)
    assert view_template_key(AS_OF, tmp_path) != view_template_key(AS_OF)  # and the template's source counts

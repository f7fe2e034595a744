"""Pages of the ticket event export to comment rows: one frame per page, the odd shapes."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from dunning_pipeline.zendesk import parse

EXTRACTED = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def comment(cid, **over):
    rec = {"id": cid, "type": "Comment", "event_type": "Comment", "author_id": 501, "body": "raw body",
           "html_body": "<p>raw body</p>", "plain_body": "plain body", "public": True, "attachments": [],
           "via": {"channel": "email", "source": {}}, "created_at": "2026-03-01T10:00:00Z"}
    rec.update(over)
    return rec


def event(number, *children, **over):
    rec = {"id": 9000 + number, "ticket_id": number, "timestamp": 1772359200,
           "event_type": "Audit", "child_events": list(children)}
    rec.update(over)
    return rec


def test_a_page_becomes_one_frame_with_the_comment_table_columns_and_the_events_ticket():
    status = {"id": 1, "event_type": "Change", "field_name": "status", "value": "solved"}
    created = {"id": 2, "event_type": "Create", "field_name": "subject", "value": "Invoice"}
    page = [event(7, created, comment(71), status), event(8, status), event(9, comment(91, public=False)),
            event(7, comment(72, via={"channel": 0}))]
    frame = parse.comment_events_frame(page, EXTRACTED)
    assert list(frame.columns) == parse.COMMENT_COLUMNS
    assert frame[["id", "ticket_id"]].values.tolist() == [[71, 7], [91, 9], [72, 7]]
    row = frame.set_index("id").loc[71]
    assert row["body"] == "plain body" and row["public"] and row["author_id"] == 501
    assert row["created_at"] == pd.Timestamp("2026-03-01 10:00:00") and row["via_channel"] == "email"
    assert frame.set_index("id").loc[72, "via_channel"] == "web"
    assert not frame.set_index("id").loc[91, "public"]
    assert frame["parse_error"].isna().all()
    assert str(frame["author_id"].dtype) == "Int64" and str(frame["created_at"].dtype) == "datetime64[us]"


def test_the_same_comment_reads_the_same_from_the_event_export_and_the_ticket_endpoint():
    recs = [comment(71), comment(72, plain_body=None), comment(73, public="yes", created_at="soon")]
    from_events = parse.comment_events_frame([event(7, *recs)], EXTRACTED)
    from_ticket = parse.comments_frame(7, recs, EXTRACTED)
    pd.testing.assert_frame_equal(from_events, from_ticket)


def test_odd_events_add_nothing_or_are_described_and_the_rest_of_the_page_is_kept():
    left_out: list[str] = []
    page = [
        event(7, comment(71)),
        {"id": 5, "ticket_id": 8, "event_type": "Audit"},  # no child events at all
        event(9, child_events="not a list"),
        event(10, comment(101), ticket_id=None),  # no ticket to store it under
        event(11, comment(None, created_at="2026-03-01T10:00:00Z")),  # a comment without an id
        event(12, "just text", comment(121, author_id="x")),
    ]
    frame = parse.comment_events_frame(page, EXTRACTED, left_out)
    assert frame["id"].tolist() == [71, 121]
    assert "field 'author_id' is 'x'" in frame.set_index("id").loc[121, "parse_error"]
    assert len(left_out) == 3
    assert "ticket event 9009: field 'child_events'" in left_out[0]
    assert "comment 101" in left_out[1] and "'ticket_id' is missing" in left_out[1]
    assert "comment of ticket 11" in left_out[2] and "'id' is missing" in left_out[2]
    with pytest.raises(parse.ZendeskDataError, match="ticket_id"):
        parse.comment_events_frame([event(10, comment(101), ticket_id="10")], EXTRACTED)


def test_an_empty_page_is_an_empty_frame_of_the_right_shape():
    frame = parse.comment_events_frame([], EXTRACTED)
    assert frame.empty and list(frame.columns) == parse.COMMENT_COLUMNS


def test_tickets_with_a_redaction_are_named():
    redaction = {"id": 3, "event_type": "CommentRedactionEvent", "comment_id": 71}
    page = [event(7, comment(72)), event(8, redaction), event(9, {"event_type": "AttachmentRedactionEvent"}),
            event(10, redaction, ticket_id="10"), {"id": 1}]
    assert parse.redacted_tickets(page) == {8, 9}

"""Zendesk records to typed frames: exact columns, naive UTC times, errors that name the record."""

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from dunning_pipeline.warehouse import schema
from dunning_pipeline.zendesk import parse

EXTRACTED = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def ticket(**over):
    rec = {
        "id": 28, "status": "open", "subject": "Invoice INV/2026/00042", "description": "Please check",
        "requester_id": 6130907993114, "organization_id": 6130869157658, "tags": ["billing", "dispute"],
        "custom_fields": [], "external_id": None,
        "via": {"channel": "email", "source": {"from": {"address": "ap@customer.com"}, "to": {}, "rel": None}},
        "created_at": "2026-02-18T15:57:42Z", "updated_at": "2026-02-18T16:00:00Z",
        "generated_timestamp": 1758210663,
    }
    rec.update(over)
    return rec


def test_ticket_maps_to_exactly_the_table_columns():
    frame = parse.tickets_frame([ticket()], EXTRACTED)
    assert list(frame.columns) == [c.name for c in schema.zendesk_tickets.columns]
    row = frame.iloc[0]
    assert row["id"] == 28 and row["status"] == "open"
    assert row["requester_id"] == 6130907993114 and row["organization_id"] == 6130869157658
    assert json.loads(row["tags"]) == ["billing", "dispute"]
    assert row["via_channel"] == "email" and row["from_address"] == "ap@customer.com"
    assert row["created_at"] == pd.Timestamp("2026-02-18 15:57:42")
    assert row["updated_at"] == pd.Timestamp("2026-02-18 16:00:00")
    assert row["extracted_at"] == pd.Timestamp("2026-03-02 03:00:00")
    assert str(frame["updated_at"].dtype) == "datetime64[us]"
    assert str(frame["requester_id"].dtype) == "Int64"


def test_offsets_become_naive_utc_and_missing_optional_fields_are_null():
    rec = ticket(updated_at="2026-02-18T17:00:00+02:00", requester_id=None, organization_id=None,
                 tags=None, via=None)
    row = parse.tickets_frame([rec], EXTRACTED).iloc[0]
    assert row["updated_at"] == pd.Timestamp("2026-02-18 15:00:00")
    assert pd.isna(row["requester_id"]) and pd.isna(row["organization_id"])
    assert row["tags"] == "[]"
    assert pd.isna(row["via_channel"]) and pd.isna(row["from_address"])


def test_deleted_ticket_is_kept_with_its_status():
    rec = ticket(id=99, status="deleted", subject="SCRUBBED", description="SCRUBBED")
    row = parse.tickets_frame([rec], EXTRACTED).iloc[0]
    assert row["status"] == "deleted" and row["subject"] == "SCRUBBED"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"updated_at": "yesterday"}, "ticket 28: field 'updated_at' is 'yesterday', expected an ISO 8601 timestamp"),
        ({"updated_at": None}, "ticket 28: field 'updated_at' is missing"),
        ({"created_at": 1758210663}, "ticket 28: field 'created_at' is 1758210663, expected an ISO 8601"),
        ({"requester_id": "6130907993114"},
         "ticket 28: field 'requester_id' is '6130907993114', expected an integer id"),
        ({"tags": "billing"}, "ticket 28: field 'tags' is 'billing', expected a list of strings"),
        ({"status": None}, "ticket 28: field 'status' is missing"),
        ({"subject": ["a"]}, "ticket 28: field 'subject' is ['a'], expected text"),
        ({"via": {"channel": "email", "source": {"from": "ap@x"}}}, "ticket 28: field 'via.source.from' is 'ap@x'"),
        ({"id": None}, "ticket (subject='Invoice INV/2026/00042'): field 'id' is missing"),
        ({"id": True}, "field 'id' is True, expected an integer id"),
    ],
)
def test_bad_ticket_fields_name_the_record_and_the_field(over, message):
    good = ticket(id=27, updated_at="2026-02-18T16:00:00Z")
    with pytest.raises(parse.ZendeskDataError) as err:
        parse.tickets_frame([good, ticket(**over)], EXTRACTED)
    assert message in str(err.value)


def test_user_fields():
    rec = {"id": 7, "email": "ap@customer.com", "name": "Ana", "organization_id": 3, "role": "end-user",
           "external_id": 4411, "updated_at": "2026-02-01T10:00:00Z"}
    frame = parse.users_frame([rec], EXTRACTED)
    assert list(frame.columns) == [c.name for c in schema.zendesk_users.columns]
    row = frame.iloc[0]
    assert (row["id"], row["email"], row["role"], row["external_id"]) == (7, "ap@customer.com", "end-user", "4411")
    assert row["updated_at"] == pd.Timestamp("2026-02-01 10:00:00")
    with pytest.raises(parse.ZendeskDataError, match="user 8: field 'email' is 5, expected text"):
        parse.users_frame([{**rec, "id": 8, "email": 5}], EXTRACTED)


def test_comment_fields_prefer_plain_text_and_keep_internal_notes():
    recs = [
        {"id": 1, "type": "Comment", "author_id": 5, "body": "<b>x</b>", "plain_body": "x", "public": False,
         "via": {"channel": "web"}, "created_at": "2026-02-06T18:52:11Z"},
        {"id": 2, "author_id": 6, "body": "only body", "public": True, "created_at": "2026-02-07T18:52:11Z"},
    ]
    frame = parse.comments_frame(28, recs, EXTRACTED)
    assert list(frame.columns) == [c.name for c in schema.zendesk_comments.columns]
    assert frame["body"].tolist() == ["x", "only body"]
    assert frame["public"].tolist() == [False, True]
    assert frame["ticket_id"].tolist() == [28, 28]
    assert frame["via_channel"].iloc[0] == "web" and pd.isna(frame["via_channel"].iloc[1])
    with pytest.raises(parse.ZendeskDataError, match="comment 3 of ticket 28: field 'public' is 'yes'"):
        parse.comments_frame(28, [{**recs[0], "id": 3, "public": "yes"}], EXTRACTED)


def test_newest_by_id_keeps_the_newest_update_and_the_later_copy_among_equals():
    recs = [
        ticket(id=1, status="open", updated_at="2026-02-02T00:00:00Z"),
        ticket(id=2, status="open", updated_at="2026-02-05T00:00:00Z"),
        ticket(id=1, status="solved", updated_at="2026-02-03T00:00:00Z"),
        ticket(id=2, status="pending", updated_at="2026-02-04T00:00:00Z"),  # older copy emitted later
        ticket(id=3, status="open", updated_at="2026-02-04T00:00:00Z"),
        ticket(id=3, status="hold", updated_at="2026-02-04T00:00:00Z"),  # same second, later page
    ]
    newest = parse.newest_by_id(parse.tickets_frame(recs, EXTRACTED))
    assert dict(zip(newest["id"], newest["status"])) == {1: "solved", 2: "open", 3: "hold"}
    assert len(newest) == 3


def test_empty_inputs_give_typed_empty_frames():
    for frame in (parse.tickets_frame([], EXTRACTED), parse.users_frame([], EXTRACTED),
                  parse.comments_frame(1, [], EXTRACTED)):
        assert frame.empty
        assert str(frame["extracted_at"].dtype) == "datetime64[us]"

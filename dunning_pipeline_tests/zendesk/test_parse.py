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
    frame = parse.tickets_frame([ticket(email_cc_ids=[11, 12], collaborator_ids=[12], follower_ids=[3])],
                                EXTRACTED)
    # All but comments_updated_at, which the comments extraction owns.
    assert list(frame.columns) == [c.name for c in schema.zendesk_tickets.columns
                                   if c.name != "comments_updated_at"]
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
    assert json.loads(row["email_cc_ids"]) == [11, 12] and json.loads(row["collaborator_ids"]) == [12]
    assert json.loads(row["follower_ids"]) == [3] and pd.isna(row["parse_error"])


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
    ("over", "column", "message"),
    [
        ({"updated_at": "yesterday"}, "updated_at",
         "ticket 28: field 'updated_at' is 'yesterday', expected an ISO 8601 timestamp"),
        ({"updated_at": None}, "updated_at", "ticket 28: field 'updated_at' is missing"),
        ({"created_at": 1758210663}, "created_at", "ticket 28: field 'created_at' is 1758210663, expected an ISO 8601"),
        ({"requester_id": "6130907993114"}, "requester_id",
         "ticket 28: field 'requester_id' is '6130907993114', expected an integer id"),
        ({"tags": "billing"}, "tags", "ticket 28: field 'tags' is 'billing', expected a list of strings"),
        ({"subject": ["a"]}, "subject", "ticket 28: field 'subject' is ['a'], expected text"),
        ({"via": {"channel": "email", "source": {"from": "ap@x"}}}, "from_address",
         "ticket 28: field 'via.source.from' is 'ap@x'"),
        ({"via": {"channel": {"id": 4}, "source": {}}}, "via_channel",
         "ticket 28: field 'via.channel' is {'id': 4}, expected a channel name or a via id"),
        ({"email_cc_ids": ["ap@x"]}, "email_cc_ids", "ticket 28: field 'email_cc_ids' is ['ap@x']"),
    ],
)
def test_an_odd_field_is_null_and_named_in_parse_error_the_other_records_unharmed(over, column, message):
    good = ticket(id=27, updated_at="2026-02-18T16:00:00Z")
    frame = parse.tickets_frame([good, ticket(**over)], EXTRACTED).set_index("id")
    assert message in frame.loc[28, "parse_error"]
    assert pd.isna(frame.loc[28, column])
    assert frame.loc[28, "status"] == "open"  # the rest of the record is kept
    assert pd.isna(frame.loc[27, "parse_error"]) and frame.loc[27, "from_address"] == "ap@customer.com"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"status": None}, "ticket 28: field 'status' is missing"),
        ({"id": None}, "ticket (subject='Invoice INV/2026/00042'): field 'id' is missing"),
        ({"id": True}, "field 'id' is True, expected an integer id"),
    ],
)
def test_a_record_that_cannot_be_stored_is_left_out_and_described(over, message):
    left_out: list[str] = []
    frame = parse.tickets_frame([ticket(id=27), ticket(**over)], EXTRACTED, left_out)
    assert frame["id"].tolist() == [27]
    assert len(left_out) == 1 and message in left_out[0]
    with pytest.raises(parse.ZendeskDataError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        parse.tickets_frame([ticket(**over)], EXTRACTED)  # no list to note it in: an error


@pytest.mark.parametrize(("channel", "name"), [(4, "email"), (0, "web"), (5, "api"), (29, "chat"),
                                               (34, "voice"), (999, "999"), ("email", "email")])
def test_via_channel_may_be_a_name_or_a_via_id(channel, name):
    rec = ticket(via={"channel": channel, "source": {"from": {}, "to": {}, "rel": None}})
    row = parse.tickets_frame([rec], EXTRACTED).iloc[0]
    assert row["via_channel"] == name and pd.isna(row["parse_error"])
    assert pd.isna(row["from_address"])  # source.from is {} for web and API tickets


def test_user_fields():
    rec = {"id": 7, "email": "ap@customer.com", "name": "Ana", "organization_id": 3, "role": "end-user",
           "external_id": 4411, "updated_at": "2026-02-01T10:00:00Z"}
    frame = parse.users_frame([rec, {**rec, "id": 9, "email": None, "active": False, "suspended": True,
                                     "role": "agent"}], EXTRACTED)
    assert list(frame.columns) == [c.name for c in schema.zendesk_users.columns]
    row = frame.iloc[0]
    assert (row["id"], row["email"], row["role"], row["external_id"]) == (7, "ap@customer.com", "end-user", "4411")
    assert row["updated_at"] == pd.Timestamp("2026-02-01 10:00:00")
    gone = frame.iloc[1]
    assert pd.isna(gone["email"]) and gone["active"] == False and gone["suspended"] == True  # noqa: E712
    assert gone["role"] == "agent" and pd.isna(gone["parse_error"])
    odd = parse.users_frame([{**rec, "id": 8, "email": 5, "suspended": "no"}], EXTRACTED).iloc[0]
    assert "user 8: field 'email' is 5, expected text" in odd["parse_error"]
    assert "user 8: field 'suspended' is 'no', expected true or false" in odd["parse_error"]


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
    odd = parse.comments_frame(28, [{**recs[0], "id": 3, "public": "yes", "via": {"channel": 4}}],
                               EXTRACTED).iloc[0]
    assert "comment 3 of ticket 28: field 'public' is 'yes'" in odd["parse_error"]
    assert odd["via_channel"] == "email" and odd["body"] == "x"


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

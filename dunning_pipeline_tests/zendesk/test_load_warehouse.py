"""Newest-wins upserts and the choice of tickets whose comments are fetched (SQLite and PostgreSQL)."""

from datetime import UTC, datetime

import pandas as pd

from dunning_pipeline.zendesk import load, parse

T1 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def ticket(tid, status, updated_at, requester_id=100):
    return {"id": tid, "status": status, "subject": f"s{tid}", "requester_id": requester_id,
            "tags": [], "created_at": "2026-01-01T00:00:00Z", "updated_at": updated_at}


def write_tickets(wh, recs, extracted_at):
    frame = parse.newest_by_id(parse.tickets_frame(recs, extracted_at))
    with wh.begin() as conn:
        return load.upsert_newest(wh, "zendesk_tickets", frame, conn=conn)


def test_an_older_copy_never_overwrites_a_newer_stored_row(warehouse):
    assert write_tickets(warehouse, [ticket(1, "solved", "2026-02-10T00:00:00Z"),
                                     ticket(2, "open", "2026-02-10T00:00:00Z")], T1) == 2
    # Next run: ticket 1 re-emitted in an older state, ticket 2 really changed, ticket 3 new.
    written = write_tickets(warehouse, [ticket(1, "open", "2026-02-09T00:00:00Z"),
                                        ticket(2, "pending", "2026-02-11T00:00:00Z"),
                                        ticket(3, "new", "2026-02-11T00:00:00Z")], T2)
    assert written == 2
    stored = warehouse.read("zendesk_tickets", order_by=["id"])
    assert stored["status"].tolist() == ["solved", "pending", "new"]
    assert stored["extracted_at"].tolist() == [pd.Timestamp(T1.replace(tzinfo=None)),
                                               pd.Timestamp(T2.replace(tzinfo=None)),
                                               pd.Timestamp(T2.replace(tzinfo=None))]


def test_the_same_update_re_emitted_replaces_the_row(warehouse):
    write_tickets(warehouse, [ticket(1, "open", "2026-02-10T00:00:00Z")], T1)
    assert write_tickets(warehouse, [ticket(1, "hold", "2026-02-10T00:00:00Z")], T2) == 1
    assert warehouse.read("zendesk_tickets")["status"].tolist() == ["hold"]


def test_comments_are_wanted_for_changed_customer_tickets_only(warehouse):
    users = parse.users_frame([
        {"id": 100, "role": "end-user", "updated_at": "2026-01-01T00:00:00Z"},
        {"id": 200, "role": "agent", "updated_at": "2026-01-01T00:00:00Z"},
    ], T1)
    warehouse.upsert("zendesk_users", users)
    write_tickets(warehouse, [
        ticket(1, "open", "2026-02-10T00:00:00Z", requester_id=100),
        ticket(2, "open", "2026-02-10T00:00:00Z", requester_id=200),   # an agent's own ticket
        ticket(3, "deleted", "2026-02-10T00:00:00Z", requester_id=100),
        ticket(4, "open", "2026-02-10T00:00:00Z", requester_id=999),   # requester not yet known
    ], T1)
    assert load.tickets_needing_comments(warehouse)["id"].tolist() == [1, 4]
    warehouse.set_state(load.COMMENTS_MARK_KEY, pd.Timestamp(T1.replace(tzinfo=None)).isoformat())
    assert load.tickets_needing_comments(warehouse).empty
    write_tickets(warehouse, [ticket(4, "solved", "2026-02-11T00:00:00Z", requester_id=999),
                              ticket(5, "new", "2026-02-11T00:00:00Z", requester_id=100)], T2)
    assert load.tickets_needing_comments(warehouse)["id"].tolist() == [4, 5]

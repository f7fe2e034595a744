"""Extraction runs against the sandbox into the warehouse (SQLite and PostgreSQL): full, then
incremental from the stored cursor; de-duplication; deleted tickets; comments paging."""

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.zendesk import load
from dunning_pipeline.zendesk.client import TICKETS_EXPORT_PATH, USERS_EXPORT_PATH
from dunning_pipeline_tests.zendesk.conftest import resource_for

NIGHT1 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
NIGHT2 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
NIGHT3 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def run(sb, wh, extracted_at, with_comments=True, **resource_fields):
    with resource_for(sb, **resource_fields).get_client() as zd:
        export = load.extract_tickets_and_users(zd, wh, extracted_at=extracted_at)
        comments = load.extract_comments(zd, wh, extracted_at=extracted_at) if with_comments else None
    return export, comments


def commented_ticket_ids(sb):
    return {int(r["path"].split("/")[4]) for r in sb.requests["zendesk"] if r["path"].endswith("/comments.json")}


def customer_ticket_ids(sb, ids=None):
    """Tickets whose comments are customer correspondence: requested by a customer, or by an
    agent on behalf of an outside sender (a forwarded mail) or with people in CC."""
    roles = {u["id"]: u["role"] for u in sb.data.zendesk_users}

    def outside(t):
        sender = ((t.get("via") or {}).get("source") or {}).get("from") or {}
        return bool(sender.get("address") or t.get("email_cc_ids") or t.get("collaborator_ids"))

    return {t["id"] for t in sb.data.zendesk_tickets
            if t["status"] != "deleted" and (roles.get(t["requester_id"]) == "end-user" or outside(t))
            and (ids is None or t["id"] in ids)}


def stored(wh, table):
    return wh.read(table, order_by=["id"])


def test_full_export_then_incremental_resume_from_the_stored_cursor(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    # An agent's own ticket: not customer correspondence, so no comments are fetched for it.
    agent = next(u for u in sb.data.zendesk_users if u["role"] == "agent")
    agents_ticket = next(t for t in sb.data.zendesk_tickets if t["status"] == "open"
                         and not t.get("email_cc_ids") and not t.get("collaborator_ids"))
    agents_ticket["requester_id"] = agent["id"]
    agents_ticket["via"] = {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}}
    deleted = [t["id"] for t in sb.data.zendesk_tickets if t["status"] == "deleted"]
    assert deleted, "the sandbox should hold a deleted ticket"

    export, comments = run(sb, wh, NIGHT1)

    tickets = stored(wh, "zendesk_tickets")
    assert tickets["id"].tolist() == [t["id"] for t in sb.data.zendesk_tickets]
    assert dict(zip(tickets["id"], tickets["status"])) == {t["id"]: t["status"] for t in sb.data.zendesk_tickets}
    assert stored(wh, "zendesk_users")["id"].tolist() == [u["id"] for u in sb.data.zendesk_users]
    # One page held everything and carried no cursor: tomorrow starts at the newest change seen.
    newest = max(t["generated_timestamp"] for t in sb.data.zendesk_tickets)
    assert not export.resumed and export.tickets_cursor is None
    assert wh.get_state(load.TICKETS_CURSOR_KEY) == "" and export.tickets_start_time == newest
    assert int(wh.get_state(load.TICKETS_MARK_KEY)) == newest

    wanted = customer_ticket_ids(sb)
    assert commented_ticket_ids(sb) == wanted
    assert agents_ticket["id"] not in wanted and not set(deleted) & wanted
    expected_comments = sorted(c["id"] for tid in wanted for c in sb.data.zendesk_comments.get(tid, []))
    assert stored(wh, "zendesk_comments")["id"].tolist() == expected_comments
    assert comments.tickets == len(wanted)

    # The next night: only what changed is exported and only its comments are fetched.
    changes = sb.advance_night()
    changed = set(changes.tickets_updated) | set(changes.tickets_new)
    assert changed
    sb.clear_requests()
    export2, comments2 = run(sb, wh, NIGHT2)

    exports = [r for r in sb.requests["zendesk"] if r["path"] == TICKETS_EXPORT_PATH]
    assert [r["query"].get("start_time") for r in exports] == [str(newest)]
    assert "cursor" not in exports[0]["query"]
    users_export = [r for r in sb.requests["zendesk"] if r["path"] == USERS_EXPORT_PATH]
    assert users_export[0]["query"].get("start_time") == str(export.users_start_time)
    boundary = {t["id"] for t in sb.data.zendesk_tickets if t["generated_timestamp"] == newest}
    assert export2.resumed and set(export2.tickets["id"]) == changed | set(changes.tickets_resent) | boundary
    tickets = stored(wh, "zendesk_tickets")
    assert len(tickets) == len(sb.data.zendesk_tickets)
    assert dict(zip(tickets["id"], tickets["status"])) == {t["id"]: t["status"] for t in sb.data.zendesk_tickets}
    assert commented_ticket_ids(sb) == customer_ticket_ids(sb, changed)
    new_customer_comments = {c["id"] for tid in customer_ticket_ids(sb, changed)
                             for c in sb.data.zendesk_comments[tid] if c["id"] in set(changes.comments_new)}
    assert new_customer_comments and new_customer_comments <= set(stored(wh, "zendesk_comments")["id"])
    assert set(comments2.comments["id"]) >= new_customer_comments

    # Nothing changed since: only the newest second is re-read, no comment is fetched, the mark stays.
    mark = wh.get_state(load.TICKETS_MARK_KEY)
    sb.clear_requests()
    export3, comments3 = run(sb, wh, NIGHT3)
    assert set(export3.tickets["id"]) == {t["id"] for t in sb.data.zendesk_tickets
                                          if t["generated_timestamp"] == int(mark)}
    assert comments3.tickets == 0 and commented_ticket_ids(sb) == set()
    assert wh.get_state(load.TICKETS_MARK_KEY) == mark


def test_a_ticket_changed_during_the_export_is_kept_once_newest_wins(warehouse):
    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2),
                 zendesk_export_limit_per_minute=None) as sb:
        ordered = sorted(sb.data.zendesk_tickets, key=lambda t: (t["updated_at"], t["id"]))
        moved = ordered[0]  # on the first page
        seen_pages = []

        def on_log(message):
            # After page 1 arrived, the ticket changes in Zendesk: it is re-emitted on a later page.
            if message.startswith("Zendesk tickets page 1:") and not seen_pages:
                seen_pages.append(1)
                later = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
                moved["status"] = "solved"
                moved["updated_at"] = later.strftime("%Y-%m-%dT%H:%M:%SZ")

        with resource_for(sb, page_size=5, export_requests_per_minute=1000).get_client() as zd:
            export = load.extract_tickets_and_users(zd, warehouse, extracted_at=NIGHT1, log=on_log)
        assert export.ticket_pages > 2
        assert export.tickets["id"].is_unique
        assert len(export.tickets) == len(sb.data.zendesk_tickets)
        row = warehouse.read("zendesk_tickets").set_index("id").loc[moved["id"]]
        assert row["status"] == "solved"
        assert row["updated_at"] == pd.Timestamp("2026-03-02 22:00:00")


def test_comments_are_paged_until_has_more_is_false(warehouse):
    with Sandbox(seed=7, customers=5, invoices=40, as_of=date(2026, 3, 2)) as sb:
        longest = max(customer_ticket_ids(sb), key=lambda tid: len(sb.data.zendesk_comments.get(tid, [])))
        thread = sb.data.zendesk_comments[longest]
        assert len(thread) >= 5
        run(sb, warehouse, NIGHT1, comments_page_size=4)
    calls = [r["query"] for r in sb.requests["zendesk"] if r["path"] == f"/api/v2/tickets/{longest}/comments.json"]
    assert len(calls) == -(-len(thread) // 4) > 1
    assert "page[after]" not in calls[0] and all("page[after]" in q for q in calls[1:])
    got = warehouse.read("zendesk_comments", where=warehouse.table("zendesk_comments").c.ticket_id == longest,
                         order_by=["id"])
    assert got["id"].tolist() == sorted(c["id"] for c in thread)
    assert got["body"].tolist() == [c["body"] for c in sorted(thread, key=lambda c: c["id"])]
    internal = {c["id"] for c in thread if not c["public"]}
    assert set(got.loc[~got["public"].astype(bool), "id"]) == internal


def test_a_ticket_deleted_later_keeps_its_row_with_status_deleted(sandbox, warehouse):
    sb = sandbox
    run(sb, warehouse, NIGHT1)
    victim = next(t for t in sb.data.zendesk_tickets if t["status"] == "open")
    victim.update(status="deleted", subject="SCRUBBED", description="SCRUBBED",
                  updated_at=(sb.data.now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    sb.clear_requests()
    run(sb, warehouse, NIGHT2)
    row = warehouse.read("zendesk_tickets").set_index("id").loc[victim["id"]]
    assert (row["status"], row["subject"]) == ("deleted", "SCRUBBED")
    assert commented_ticket_ids(sb) == set()


def test_a_malformed_record_is_stored_with_its_parse_error_and_the_export_goes_on(sandbox, warehouse):
    sb = sandbox
    run(sb, warehouse, NIGHT1, with_comments=False)
    mark = warehouse.get_state(load.TICKETS_MARK_KEY)
    changes = sb.advance_night()
    bad = sb.data.ticket(changes.tickets_new[0])
    bad["created_at"] = "31/02/2026"
    odd = sb.data.ticket(changes.tickets_updated[0])
    odd["via"] = {**odd["via"], "channel": ["email"]}
    export, _ = run(sb, warehouse, NIGHT2, with_comments=False)
    tickets = stored(warehouse, "zendesk_tickets").set_index("id")
    assert f"ticket {bad['id']}: field 'created_at' is '31/02/2026'" in tickets.loc[bad["id"], "parse_error"]
    assert pd.isna(tickets.loc[bad["id"], "created_at"]) and tickets.loc[bad["id"], "subject"] == bad["subject"]
    assert "field 'via.channel' is ['email']" in tickets.loc[odd["id"], "parse_error"]
    changed = set(changes.tickets_updated) | set(changes.tickets_new)
    assert changed <= set(export.tickets["id"])  # every other change of the night arrived
    assert tickets["parse_error"].notna().sum() == 2
    assert int(warehouse.get_state(load.TICKETS_MARK_KEY)) > int(mark)


def test_concurrent_comment_fetching_loads_exactly_what_a_sequential_run_loads(sandbox, sqlite_url, tmp_path):
    from dunning_pipeline.warehouse.store import Warehouse

    sb = sandbox
    gone = next(t for t in sb.data.zendesk_tickets if t["status"] == "open")
    results = {}
    for concurrency in (1, 6):
        wh = Warehouse(f"sqlite:///{tmp_path / f'c{concurrency}.sqlite'}")
        wh.ensure_schema()
        with resource_for(sb).get_client() as zd:
            load.extract_tickets_and_users(zd, wh, extracted_at=NIGHT1)
            sb.faults.set("zendesk", "status", status=404, path=f"/tickets/{gone['id']}/comments",
                          body='{"error": "RecordNotFound", "description": "Not found"}',
                          content_type="application/json")
            sb.faults.set("zendesk", "rate_limit", retry_after=0, path="/comments.json")
            outcome = load.extract_comments(zd, wh, extracted_at=NIGHT1, concurrency=concurrency)
        results[concurrency] = (stored(wh, "zendesk_comments"), outcome)
        wh.dispose()
    (seq, seq_outcome), (par, par_outcome) = results[1], results[6]
    assert len(seq) > 0
    pd.testing.assert_frame_equal(seq.drop(columns=["extracted_at"]), par.drop(columns=["extracted_at"]))
    expected = sum(len(sb.data.zendesk_comments.get(t, [])) for t in customer_ticket_ids(sb) - {gone["id"]})
    assert len(par) == expected
    assert seq_outcome.skipped_tickets == par_outcome.skipped_tickets == [gone["id"]]

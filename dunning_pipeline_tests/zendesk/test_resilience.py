"""One bad ticket never costs the night: comments that keep failing, a refused cursor, odd
records, re-sent tickets, Zendesk's 403 body; all against the sandbox's Zendesk."""

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.zendesk import load
from dunning_pipeline.zendesk.client import TICKETS_EXPORT_PATH, ZendeskPermissionError
from dunning_pipeline_tests.zendesk.conftest import resource_for
from dunning_pipeline_tests.zendesk.test_extract_sandbox import (
    NIGHT1,
    NIGHT2,
    commented_ticket_ids,
    customer_ticket_ids,
    stored,
)

pytestmark = pytest.mark.faults


def run(sb, wh, extracted_at, warnings=None, **resource_fields):
    warn = warnings.append if warnings is not None else (lambda _m: None)
    with resource_for(sb, **resource_fields).get_client() as zd:
        export = load.extract_tickets_and_users(zd, wh, extracted_at=extracted_at, warn=warn)
        comments = load.extract_comments(zd, wh, extracted_at=extracted_at, warn=warn)
    return export, comments


def test_one_tickets_comments_failing_costs_only_that_ticket_which_is_retried_next_night(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    wanted = customer_ticket_ids(sb)
    broken = sorted(wanted)[len(wanted) // 2]
    # Its comments answer 503 on every try (and the retries of the next requests, were it shared).
    sb.faults.set("zendesk", "server_error", count=50, status=503, path=f"/tickets/{broken}/comments")
    warnings: list[str] = []
    _, comments = run(sb, wh, NIGHT1, warnings, max_retries=1)

    assert list(comments.failed_tickets) == [broken] and "503" in comments.failed_tickets[broken]
    assert any(f"ticket {broken}" in w and "retried next run" in w for w in warnings)
    held = stored(wh, "zendesk_comments")
    expected = sorted(c["id"] for tid in wanted - {broken} for c in sb.data.zendesk_comments[tid])
    assert held["id"].tolist() == expected  # everything else was written
    assert broken not in set(held["ticket_id"])

    # The next night Zendesk answers again: only that ticket's comments are fetched, and it is named.
    sb.faults.clear()
    sb.clear_requests()
    _, again = run(sb, wh, NIGHT2)
    assert commented_ticket_ids(sb) == {broken}
    assert again.failed_tickets == {} and again.retried_tickets == [broken]
    assert set(stored(wh, "zendesk_comments")["ticket_id"]) == wanted


def test_a_run_where_zendesk_keeps_failing_defers_the_rest_instead_of_failing(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    sb.faults.set("zendesk", "server_error", count=10_000, status=502, path="/comments.json")
    _, comments = run(sb, wh, NIGHT1, max_retries=0)
    assert len(comments.failed_tickets) == load.MAX_CONSECUTIVE_COMMENT_FAILURES
    assert len(comments.deferred_tickets) == len(customer_ticket_ids(sb)) - load.MAX_CONSECUTIVE_COMMENT_FAILURES
    assert comments.written == 0
    sb.faults.clear()
    _, again = run(sb, wh, NIGHT2)  # every one of them is still due
    assert again.tickets == len(customer_ticket_ids(sb)) and again.failed_tickets == {}


def test_a_cursor_zendesk_refuses_restarts_from_the_time_mark_with_a_warning(warehouse):
    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2),
                 zendesk_export_limit_per_minute=None) as sb:
        small_pages = {"page_size": 7, "export_requests_per_minute": 1000}
        first, _ = run(sb, warehouse, NIGHT1, **small_pages)
        assert first.tickets_cursor  # several pages: the last one said where to resume
        mark = int(warehouse.get_state(load.TICKETS_MARK_KEY))
        changes = sb.advance_night()
        sb.zendesk.cursor_ttl_seconds = 3600  # yesterday's cursor has expired by now
        sb.clear_requests()
        warnings: list[str] = []
        export, _ = run(sb, warehouse, NIGHT2, warnings, **small_pages)
        exports = [r for r in sb.requests["zendesk"] if r["path"] == TICKETS_EXPORT_PATH]
        assert (exports[0]["status"], exports[0]["query"].get("cursor")) == (422, first.tickets_cursor)
        assert exports[1]["query"].get("start_time") == str(mark) and "cursor" not in exports[1]["query"]
        assert export.cursor_restarted
        assert any("expired or is not valid" in w and f"start_time={mark}" in w for w in warnings)
        changed = set(changes.tickets_updated) | set(changes.tickets_new)
        assert changed <= set(export.tickets["id"])

        # A cursor that is no cursor at all, and no mark kept: the newest stored change is the mark.
        warehouse.set_state(load.TICKETS_CURSOR_KEY, "bm90IGEgY3Vyc29y")
        with warehouse.begin() as conn:
            conn.execute(warehouse.table("extract_state").delete().where(
                warehouse.table("extract_state").c.key == load.TICKETS_MARK_KEY))
        sb.zendesk.cursor_ttl_seconds = None
        newest = int(stored(warehouse, "zendesk_tickets")["updated_at"].max().tz_localize("UTC").timestamp())
        sb.clear_requests()
        again, _ = run(sb, warehouse, datetime(2026, 3, 4, 3, 0, tzinfo=UTC), **small_pages)
        exports = [r for r in sb.requests["zendesk"] if r["path"] == TICKETS_EXPORT_PATH]
        assert exports[0]["status"] == 422 and exports[1]["query"].get("start_time") == str(newest)
        assert again.cursor_restarted


def test_resent_tickets_cost_no_comment_request(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    run(sb, wh, NIGHT1)
    changes = sb.advance_night()
    assert changes.tickets_resent
    sb.clear_requests()
    export, comments = run(sb, wh, NIGHT2)
    assert set(changes.tickets_resent) <= set(export.tickets["id"])  # they did come again
    assert not set(changes.tickets_resent) & commented_ticket_ids(sb)
    assert commented_ticket_ids(sb) == customer_ticket_ids(sb, set(changes.tickets_updated) | set(changes.tickets_new))


def test_zendesk_shapes_are_kept(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    run(sb, wh, NIGHT1)
    tickets = stored(wh, "zendesk_tickets").set_index("id")
    users = stored(wh, "zendesk_users").set_index("id")
    # A via id (integer channel) is stored as its name; nothing was quarantined for it.
    by_id = [t for t in sb.data.zendesk_tickets if t["via"]["channel"] == 4]
    assert by_id and (tickets.loc[[t["id"] for t in by_id], "via_channel"] == "email").all()
    assert tickets["parse_error"].isna().all() and users["parse_error"].isna().all()
    phone = next(t for t in sb.data.zendesk_tickets if t["via"]["channel"] == 34)
    assert tickets.loc[phone["id"], "via_channel"] == "voice" and pd.isna(tickets.loc[phone["id"], "from_address"])
    # Users without an email, deleted (inactive) and suspended ones.
    no_email = [u["id"] for u in sb.data.zendesk_users if u["email"] is None]
    assert no_email and users.loc[no_email, "email"].isna().all()
    inactive = [u["id"] for u in sb.data.zendesk_users if not u["active"]]
    suspended = [u["id"] for u in sb.data.zendesk_users if u["suspended"]]
    assert inactive and not users.loc[inactive, "active"].astype(bool).any()
    assert suspended and users.loc[suspended, "suspended"].astype(bool).all()
    assert set(users["role"]) == {"end-user", "agent", "admin"}
    # The scenarios: a forwarded mail, CCs and collaborators, an API ticket without a sender, a merge.
    sc = sb.data.zendesk_scenarios
    fwd = tickets.loc[sc["forwarded_dispute"]["ticket_id"]]
    agent_ids = {u["id"] for u in sb.data.zendesk_users if u["role"] != "end-user"}
    assert fwd["requester_id"] in agent_ids and fwd["from_address"] == sc["forwarded_dispute"]["sender"]
    assert fwd["via_source_from_name"]
    keeper = tickets.loc[sc["bookkeeper_cc"]["ticket_id"]]
    assert keeper["email_cc_ids"] == keeper["collaborator_ids"] == f"[{sc['bookkeeper_cc']['cc_user_id']}]"
    reminder = tickets.loc[sc["reminder_pending"]["ticket_id"]]
    assert (reminder["via_channel"], reminder["status"]) == ("api", "pending") and pd.isna(reminder["from_address"])
    source = tickets.loc[sc["merged_pair"]["source_ticket_id"]]
    assert "closed_by_merge" in source["tags"] and source["status"] == "closed"
    # Comments of agents' tickets that name outside people are fetched (forwarded, CC).
    comments = stored(wh, "zendesk_comments")
    assert {sc["forwarded_dispute"]["ticket_id"], sc["reminder_pending"]["ticket_id"]} <= set(comments["ticket_id"])
    # The stored text is Zendesk's plain_body, reflowed from the HTML: not the raw body.
    forwarded = comments[comments["ticket_id"] == sc["forwarded_dispute"]["ticket_id"]].iloc[0]
    raw = sb.data.zendesk_comments[sc["forwarded_dispute"]["ticket_id"]][0]["body"]
    assert forwarded["body"] != raw
    assert forwarded["body"] == "\n\n".join(" ".join(p.split()) for p in raw.split("\n\n"))
    merged_note = comments[comments["ticket_id"] == sc["merged_pair"]["target_ticket_id"]].iloc[-1]
    assert f"Request #{sc['merged_pair']['source_ticket_id']}" in merged_note["body"]


def test_zendesks_403_body_is_quoted_in_the_error(sandbox):
    sandbox.zendesk.forbidden_paths.add("/incremental/tickets")
    with resource_for(sandbox).get_client() as zd, pytest.raises(ZendeskPermissionError) as err:
        list(zd.export_tickets())
    assert "(403)" in str(err.value) and "You do not have access to this page" in str(err.value)

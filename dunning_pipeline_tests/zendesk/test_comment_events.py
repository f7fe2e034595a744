"""The nightly comment pull from Zendesk's ticket event export, against the sandbox: the same rows
as the per-ticket pull, a handful of requests instead of one per ticket, paging and the resume
from the stored time mark, the export's rate limit, redactions, and an export that breaks off."""

import math
import time
from datetime import date

import pytest

from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.sandbox import data as sd
from dunning_pipeline.sandbox.zendesk_server import REDACTED
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.zendesk import load
from dunning_pipeline.zendesk.client import TICKET_EVENTS_PATH
from dunning_pipeline_tests.zendesk.conftest import resource_for
from dunning_pipeline_tests.zendesk.test_extract_sandbox import (
    NIGHT1,
    NIGHT2,
    NIGHT3,
    commented_ticket_ids,
    customer_ticket_ids,
)


def night(sb, wh, extracted_at, warnings=None, **resource_fields):
    """The nightly order: tickets and users, then the comments from the event export."""
    warn = warnings.append if warnings is not None else (lambda _m: None)
    with resource_for(sb, **resource_fields).get_client() as zd:
        load.extract_tickets_and_users(zd, wh, extracted_at=extracted_at)
        return load.extract_comment_events(zd, wh, extracted_at=extracted_at, warn=warn)


def comment_rows(wh):
    # extracted_at is the run's clock; everything Zendesk said must be the same.
    return wh.read("zendesk_comments", order_by=["id"]).drop(columns="extracted_at")


def event_requests(sb):
    return [r for r in sb.requests["zendesk"] if r["path"] == TICKET_EVENTS_PATH]


def customer_comment_ids(sb, since: int = 0):
    """The sandbox's ground truth: comments of customer tickets created at or after `since`."""
    return {c["id"] for tid in customer_ticket_ids(sb) for c in sb.data.zendesk_comments.get(tid, [])
            if sd.parse_zendesk_datetime(c["created_at"]).timestamp() >= since}


def make_agents_ticket(sb):
    """An agent's own ticket (no outside sender, CC or collaborator): its comments are not stored."""
    agent = next(u for u in sb.data.zendesk_users if u["role"] == "agent")
    ticket = next(t for t in sb.data.zendesk_tickets if t["status"] == "open"
                  and not t.get("email_cc_ids") and not t.get("collaborator_ids"))
    ticket["requester_id"] = agent["id"]
    ticket["via"] = {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}}
    return ticket["id"]


def test_the_event_export_stores_the_same_comments_as_the_per_ticket_pull(sandbox, warehouse, tmp_path):
    sb = sandbox
    agents_ticket = make_agents_ticket(sb)
    per_ticket = Warehouse(f"sqlite:///{tmp_path / 'per_ticket.sqlite'}")
    per_ticket.ensure_schema()
    for extracted_at in (NIGHT1, NIGHT2):
        with resource_for(sb).get_client() as zd:
            load.extract_tickets_and_users(zd, per_ticket, extracted_at=extracted_at)
            load.extract_comments(zd, per_ticket, extracted_at=extracted_at)
        sb.clear_requests()
        outcome = night(sb, warehouse, extracted_at)

        expected = comment_rows(per_ticket)
        got = comment_rows(warehouse)
        assert len(got) > 0 and got.to_dict("records") == expected.to_dict("records")
        assert set(got["id"]) == customer_comment_ids(sb)  # and the sandbox's ground truth
        assert agents_ticket not in set(got["ticket_id"])
        deleted = {t["id"] for t in sb.data.zendesk_tickets if t["status"] == "deleted"}
        assert deleted and not deleted & set(got["ticket_id"])
        # A few requests for the whole account, none per ticket.
        events = sum(1 for _ in event_requests(sb))
        assert commented_ticket_ids(sb) == set()
        assert events == outcome.pages <= math.ceil(outcome.events / 1000) + 1
        sb.advance_night()
    per_ticket.dispose()


@pytest.fixture
def unlimited():
    """The default sandbox without the export budget: small pages cost no minute of waiting."""
    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2),
                 zendesk_export_limit_per_minute=None) as sb:
        yield sb


SMALL_PAGES = {"page_size": 25, "export_requests_per_minute": 10_000}


def test_pages_follow_end_time_and_the_next_night_starts_at_the_stored_mark(unlimited, warehouse):
    sb, wh = unlimited, warehouse
    first = night(sb, wh, NIGHT1, **SMALL_PAGES)
    requests = event_requests(sb)
    assert first.pages == len(requests) > 3
    assert requests[0]["query"]["start_time"] == "0"
    assert all(r["query"]["include"] == "comment_events" for r in requests)
    starts = [int(r["query"]["start_time"]) for r in requests]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # every page moved on
    assert set(comment_rows(wh)["id"]) == customer_comment_ids(sb)
    mark = int(wh.get_state(load.COMMENT_EVENTS_MARK_KEY))
    assert first.next_start_time == mark >= starts[-1]

    changes = sb.advance_night()
    sb.clear_requests()
    second = night(sb, wh, NIGHT2, **SMALL_PAGES)
    [request] = event_requests(sb)
    assert request["query"]["start_time"] == str(mark) and second.resumed
    # Only the comments since the mark: tonight's, and those of the mark's own second again.
    fetched_since = customer_comment_ids(sb, since=mark)
    new = {c for c in changes.comments_new} & customer_comment_ids(sb)
    assert new and new <= fetched_since
    assert second.fetched == len(fetched_since) < len(customer_comment_ids(sb))
    assert set(comment_rows(wh)["id"]) == customer_comment_ids(sb)

    # Nothing happened since: one request, the mark stays, no comment is new.
    again_mark = wh.get_state(load.COMMENT_EVENTS_MARK_KEY)
    sb.clear_requests()
    third = night(sb, wh, NIGHT3)
    assert len(event_requests(sb)) == 1 and wh.get_state(load.COMMENT_EVENTS_MARK_KEY) == again_mark
    assert third.fetched == len(customer_comment_ids(sb, since=int(again_mark)))


def test_the_export_limit_is_waited_out_when_zendesk_answers_429(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    sb.zendesk.set_events_limit(2, period_seconds=1.0)  # the real one is 10 a minute
    started = time.monotonic()
    # The client's own limiter is lifted, so the sandbox's 429 + Retry-After is what paces it.
    outcome = night(sb, wh, NIGHT1, page_size=25, export_requests_per_minute=10_000)
    limited = [r for r in event_requests(sb) if r["status"] == 429]
    assert limited, "the sandbox should have refused some pages"
    assert outcome.stream_error is None and outcome.pages == len(event_requests(sb)) - len(limited)
    assert set(comment_rows(wh)["id"]) == customer_comment_ids(sb)
    assert time.monotonic() - started < 30


def test_a_redacted_comment_is_fetched_again_for_its_ticket_alone(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    night(sb, wh, NIGHT1)
    ticket_id = min(customer_ticket_ids(sb))
    comment = sb.data.zendesk_comments[ticket_id][0]
    secret = comment["body"].split()[1]
    assert sb.zendesk.redact_comment(comment["id"], secret) == ticket_id
    sb.advance_night()
    sb.clear_requests()
    outcome = night(sb, wh, NIGHT2)
    assert commented_ticket_ids(sb) == {ticket_id} and outcome.refetched_tickets == [ticket_id]
    body = wh.read("zendesk_comments", where=wh.table("zendesk_comments").c.id == comment["id"])["body"][0]
    assert secret not in body and REDACTED * len(secret) in body
    assert wh.get_state(load.COMMENT_EVENTS_REFETCH_KEY) == "[]"


def test_a_redaction_refetch_that_fails_is_retried_the_next_night(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    night(sb, wh, NIGHT1)
    ticket_id = min(customer_ticket_ids(sb))
    comment = sb.data.zendesk_comments[ticket_id][0]
    sb.zendesk.redact_comment(comment["id"], comment["body"].split()[1])
    sb.advance_night()
    sb.faults.set("zendesk", "server_error", count=50, status=503, path=f"/tickets/{ticket_id}/comments")
    warnings: list[str] = []
    outcome = night(sb, wh, NIGHT2, warnings, max_retries=1)
    assert list(outcome.refetch_failed) == [ticket_id] and "503" in outcome.refetch_failed[ticket_id]
    assert any(f"ticket {ticket_id}" in w and "retried next run" in w for w in warnings)
    assert wh.get_state(load.COMMENT_EVENTS_REFETCH_KEY) == f"[{ticket_id}]"
    sb.faults.clear()
    sb.clear_requests()
    again = night(sb, wh, NIGHT3)
    assert again.refetched_tickets == [ticket_id] and commented_ticket_ids(sb) == {ticket_id}
    assert REDACTED in comment_rows(wh).set_index("id").at[comment["id"], "body"]


def test_an_export_that_breaks_off_keeps_what_it_fetched_and_resumes_from_there(sandbox, warehouse):
    sb, wh = sandbox, warehouse
    # The first two pages come through, then Zendesk answers 503 to every try.
    sb.faults.set("zendesk", "slow", count=2, delay=0, path=TICKET_EVENTS_PATH)
    sb.faults.set("zendesk", "server_error", count=1000, status=503, path=TICKET_EVENTS_PATH)
    warnings: list[str] = []
    broken = night(sb, wh, NIGHT1, warnings, page_size=25, max_retries=1)
    assert broken.pages == 2 and "503" in broken.stream_error
    assert any("broke off after 2 pages" in w for w in warnings)
    kept = set(comment_rows(wh)["id"])
    assert kept and kept < customer_comment_ids(sb)
    mark = int(wh.get_state(load.COMMENT_EVENTS_MARK_KEY))
    assert mark == broken.next_start_time > 0

    sb.faults.clear()
    sb.clear_requests()
    resumed = night(sb, wh, NIGHT1, page_size=25)
    assert event_requests(sb)[0]["query"]["start_time"] == str(mark)
    assert resumed.stream_error is None
    assert set(comment_rows(wh)["id"]) == customer_comment_ids(sb)


def test_a_refused_token_fails_the_comment_pull_and_moves_no_mark(sandbox, warehouse):
    from dunning_pipeline.zendesk.client import ZendeskAuthError

    sb, wh = sandbox, warehouse
    night(sb, wh, NIGHT1)
    mark = wh.get_state(load.COMMENT_EVENTS_MARK_KEY)
    with resource_for(sb, api_token="not-the-token").get_client() as zd:
        with pytest.raises(ZendeskAuthError):
            load.extract_comment_events(zd, wh, extracted_at=NIGHT2)
    assert wh.get_state(load.COMMENT_EVENTS_MARK_KEY) == mark

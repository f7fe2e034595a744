"""The sandbox's Zendesk: auth, cursor exports that resume after a night, comments, limits, faults."""

from __future__ import annotations

import base64
from datetime import date

import pytest
import requests

from dunning_pipeline.sandbox import Sandbox


def make(**kwargs) -> Sandbox:
    kwargs.setdefault("zendesk_export_limit_per_minute", None)
    return Sandbox(seed=9, customers=15, invoices=160, tickets=45, as_of=date(2026, 3, 2), **kwargs)


@pytest.fixture(scope="module")
def sb():
    with make() as sandbox:
        yield sandbox


def auth(sb):
    return (sb.env["ZENDESK_EMAIL"] + "/token", sb.env["ZENDESK_API_TOKEN"])


def get(sb, path, **params):
    return requests.get(sb.zendesk_url + path, params=params, auth=auth(sb), timeout=10)


def export(sb, kind="tickets", cursor=None, **params):
    """Every page of an incremental export from `cursor` (or start_time=0): (items, pages, last
    cursor). Every page but the last carries a cursor; the last one may carry none."""
    items, pages = [], 0
    while True:
        query = dict(params, cursor=cursor) if cursor else dict(params, start_time=0)
        resp = get(sb, f"/api/v2/incremental/{kind}/cursor.json", **query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        items += body[kind]
        assert body["before_cursor"] is None
        if body["end_of_stream"]:
            return items, pages, body["after_cursor"]
        assert body["after_cursor"] and body["after_url"].endswith(f"cursor={body['after_cursor']}")
        cursor = body["after_cursor"]


def test_authentication_failures(sb):
    for credentials in [(sb.env["ZENDESK_EMAIL"] + "/token", "wrong"), ("x@y.z/token", sb.env["ZENDESK_API_TOKEN"]),
                        (sb.env["ZENDESK_EMAIL"], sb.env["ZENDESK_API_TOKEN"])]:
        resp = requests.get(sb.zendesk_url + "/api/v2/users/me.json", auth=credentials, timeout=10)
        assert resp.status_code == 401 and resp.json() == {"error": "Couldn't authenticate you"}
    assert requests.get(sb.zendesk_url + "/api/v2/users/me.json", timeout=10).status_code == 401
    me = get(sb, "/api/v2/users/me.json").json()["user"]
    assert me["email"] == sb.env["ZENDESK_EMAIL"] and me["role"] == "admin"


def test_full_export_in_pages_with_side_loaded_users(sb):
    tickets, pages, _ = export(sb, per_page=10, include="users")
    assert pages == -(-len(sb.data.zendesk_tickets) // 10)  # 45 ordinary tickets and the scenarios, 10 a page
    assert [t["id"] for t in tickets] == [t["id"] for t in sorted(
        sb.data.zendesk_tickets, key=lambda t: (t["generated_timestamp"], t["id"]))]
    assert tickets[0]["url"].startswith(sb.zendesk_url + "/api/v2/tickets/")
    page = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=0, per_page=10, include="users").json()
    user_ids = {u["id"] for u in page["users"]}
    assert all(t["requester_id"] in user_ids for t in page["tickets"])
    deleted = {t["id"] for t in sb.data.zendesk_tickets if t["status"] == "deleted"}
    assert deleted and deleted <= {t["id"] for t in tickets}
    kept, _, _ = export(sb, per_page=10, exclude_deleted="true")
    assert {t["id"] for t in kept} == {t["id"] for t in tickets} - deleted
    users, _, _ = export(sb, "users", per_page=1000)
    assert sorted(u["id"] for u in users) == [u["id"] for u in sb.data.zendesk_users]


def test_start_time_filters_and_must_be_a_minute_old(sb):
    middle = sorted(t["generated_timestamp"] for t in sb.data.zendesk_tickets)[20]
    resp = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=middle)
    got = {t["id"] for t in resp.json()["tickets"]}
    assert got == {t["id"] for t in sb.data.zendesk_tickets if t["generated_timestamp"] >= middle}
    now = int(sb.data.now.timestamp())
    too_recent = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=now - 30)
    assert too_recent.status_code == 422 and too_recent.json()["error"] == "InvalidValue"
    assert "Too recent start_time" in too_recent.json()["description"]
    assert get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=now - 61).status_code == 200
    assert get(sb, "/api/v2/incremental/tickets/cursor.json", cursor="not a cursor").status_code == 422


def test_cursor_resumes_after_a_night_with_only_the_changes():
    with make() as sb:
        before, _, cursor = export(sb, per_page=7)
        assert cursor  # the last page, reached by cursor with tickets on it, says where to resume
        again = get(sb, "/api/v2/incremental/tickets/cursor.json", cursor=cursor).json()
        # Nothing new: the final page is empty and carries no cursor (resume from the old one).
        assert again["tickets"] == [] and again["end_of_stream"] and again["after_cursor"] is None
        assert again["after_url"] is None
        changes = sb.advance_night()
        after, _, cursor2 = export(sb, cursor=cursor, per_page=7)
        expected = set(changes.tickets_updated) | set(changes.tickets_new)
        # Re-sent tickets come again: a new generated_timestamp, the same updated_at.
        assert {t["id"] for t in after} == expected | set(changes.tickets_resent) and expected
        for tid in changes.tickets_resent:
            resent = next(t for t in after if t["id"] == tid)
            assert resent["updated_at"] == next(t for t in before if t["id"] == tid)["updated_at"]
        assert set(changes.tickets_new).isdisjoint(t["id"] for t in before)
        updated = {t["id"]: t for t in after}
        for tid in changes.tickets_updated:
            assert updated[tid]["updated_at"] > next(t for t in before if t["id"] == tid)["updated_at"]
        decoded = base64.b64decode(cursor2).decode()
        assert decoded.endswith(f"||{after[-1]['id']}|")


def test_comments_cursor_pagination_and_not_found(sb):
    ticket = max((t for t in sb.data.zendesk_tickets if t["status"] != "deleted"),
                 key=lambda t: len(sb.data.zendesk_comments[t["id"]]))
    thread = sb.data.zendesk_comments[ticket["id"]]
    assert len(thread) >= 3
    got, after = [], None
    while True:
        params = {"page[size]": 2}
        if after:
            params["page[after]"] = after
        body = get(sb, f"/api/v2/tickets/{ticket['id']}/comments.json", **params).json()
        got += body["comments"]
        if not body["meta"]["has_more"]:
            break
        after = body["meta"]["after_cursor"]
        assert "page%5Bafter%5D=" in body["links"]["next"]
    assert [c["id"] for c in got] == [c["id"] for c in thread]
    assert all(c["plain_body"] == c["body"] and c["html_body"].startswith("<div") for c in got)
    assert any(not c["public"] for t in sb.data.zendesk_comments.values() for c in t)
    legacy = get(sb, f"/api/v2/tickets/{ticket['id']}/comments.json").json()
    assert legacy["count"] == len(thread) and legacy["next_page"] is None
    missing = get(sb, "/api/v2/tickets/999999/comments.json")
    assert missing.status_code == 404 and missing.json() == {"error": "RecordNotFound", "description": "Not found"}
    deleted = next(t for t in sb.data.zendesk_tickets if t["status"] == "deleted")
    assert get(sb, f"/api/v2/tickets/{deleted['id']}/comments.json").status_code == 404
    assert get(sb, f"/api/v2/tickets/{ticket['id']}/comments.json", **{"page[size]": 101}).status_code == 400
    assert get(sb, "/api/v2/nothing.json").status_code == 404
    orgs = get(sb, "/api/v2/organizations.json", **{"page[size]": 100}).json()["organizations"]
    assert {o["id"] for o in orgs} == {o["id"] for o in sb.data.zendesk_organizations}


def test_export_rate_limit_with_retry_after():
    with make(zendesk_export_limit_per_minute=3) as sb:
        statuses = []
        for _ in range(4):
            resp = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=0, per_page=5)
            statuses.append(resp.status_code)
        assert statuses == [200, 200, 200, 429]
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert resp.headers["X-Rate-Limit"] == "3" and resp.headers["X-Rate-Limit-Remaining"] == "0"
        assert resp.json()["error"] == "APIRateLimitExceeded"
        # other endpoints are not export-limited
        assert get(sb, "/api/v2/tickets/1/comments.json").status_code in (200, 404)


def test_faults(sb):
    sb.faults.set("zendesk", "rate_limit", retry_after=2)
    resp = get(sb, "/api/v2/users/me.json")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    sb.faults.set("zendesk", "server_error", status=502)
    resp = get(sb, "/api/v2/users/me.json")
    assert resp.status_code == 502 and "<html" in resp.text and "502" in resp.text
    sb.faults.set("zendesk", "bad_credentials")
    assert get(sb, "/api/v2/users/me.json").status_code == 401
    sb.faults.set("zendesk", "drop", path="/comments")
    assert get(sb, "/api/v2/users/me.json").status_code == 200  # the fault waits for its path
    with pytest.raises(requests.ConnectionError):
        get(sb, "/api/v2/tickets/1/comments.json")
    assert sb.faults.pending("zendesk") == []


def test_rate_limit_headers_and_zendesks_nested_403_body():
    with make() as sb:
        resp = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=0)
        assert int(resp.headers["ratelimit-limit"]) > 0 and "ratelimit-remaining" in resp.headers
        assert int(resp.headers["ratelimit-reset"]) >= 1
        assert resp.headers["zendesk-ratelimit-tickets-index"].startswith("total=")
        assert "ratelimit-remaining" in get(sb, "/api/v2/tickets/1/comments.json").headers
        sb.zendesk.forbidden_paths.add("/comments.json")
        denied = get(sb, "/api/v2/tickets/1/comments.json")
        assert denied.status_code == 403
        assert denied.json() == {"error": {"title": "Forbidden", "message": denied.json()["error"]["message"]}}
        assert "You do not have access" in denied.json()["error"]["message"]


def test_export_follows_generated_timestamp_and_the_last_page_may_carry_no_cursor():
    with make() as sb:
        # One page holds everything: it ends the stream without a cursor.
        whole = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=0).json()
        assert whole["end_of_stream"] and whole["after_cursor"] is None and whole["after_url"] is None
        # A ticket re-sent by Zendesk (generated_timestamp moves, updated_at does not) comes last.
        quiet = sb.data.zendesk_tickets[0]
        quiet["generated_timestamp"] = int(sb.data.now.timestamp()) - 120
        again = get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=0).json()["tickets"]
        assert again[-1]["id"] == quiet["id"] and again[-1]["updated_at"] == quiet["updated_at"]
        since = get(sb, "/api/v2/incremental/tickets/cursor.json",
                    start_time=quiet["generated_timestamp"]).json()["tickets"]
        assert [t["id"] for t in since] == [quiet["id"]]
        # Cursors expire (when the sandbox is told to): 422, as an old cursor gets from Zendesk.
        _, _, cursor = export(sb, per_page=7)
        sb.zendesk.cursor_ttl_seconds = 60
        expired = get(sb, "/api/v2/incremental/tickets/cursor.json", cursor=cursor)
        assert expired.status_code == 422 and "expired" in expired.json()["description"]


def test_comments_have_a_plain_body_reflowed_from_the_html(sb):
    ticket = next(t for t in sb.data.zendesk_tickets
                  if t["status"] != "deleted" and any("\n" in c["body"].replace("\n\n", "")
                                                      for c in sb.data.zendesk_comments[t["id"]]))
    body = get(sb, f"/api/v2/tickets/{ticket['id']}/comments.json").json()
    served = {c["id"]: c for c in body["comments"]}
    for c in sb.data.zendesk_comments[ticket["id"]]:
        got = served[c["id"]]
        assert got["body"] == c["body"] and got["html_body"].startswith("<div")
        assert got["plain_body"] == "\n\n".join(" ".join(p.split()) for p in c["body"].split("\n\n"))
    assert any(served[c["id"]]["plain_body"] != c["body"] for c in sb.data.zendesk_comments[ticket["id"]])


# -- the incremental ticket event export -----------------------------------------------------------
EVENTS = "/api/v2/incremental/ticket_events.json"


def event_pages(sb, start_time=0, **params):
    """Every page from `start_time`, each next one from the previous page's end_time."""
    pages = []
    while True:
        resp = get(sb, EVENTS, start_time=start_time, **params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body)
        if body["end_of_stream"]:
            return pages
        assert body["end_time"] > start_time and f"start_time={body['end_time']}" in body["next_page"]
        start_time = body["end_time"]


def test_ticket_events_page_by_time_and_carry_every_comment_with_include(sb):
    pages = event_pages(sb, include="comment_events", per_page=20)
    assert len(pages) > 2 and all(p["count"] == len(p["ticket_events"]) for p in pages)
    assert all(len(p["ticket_events"]) == 20 for p in pages[:-1]) and len(pages[-1]["ticket_events"]) < 20
    events = [e for p in pages for e in p["ticket_events"]]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    for p in pages:  # end_time is the page's last event: the next page starts at that second again
        assert p["end_time"] == p["ticket_events"][-1]["timestamp"]
    unique = {e["id"]: e for e in events}
    comments = {c["id"]: (e["ticket_id"], c) for e in unique.values() for c in e["child_events"]
                if c["event_type"] == "Comment"}
    truth = {c["id"]: tid for tid, thread in sb.data.zendesk_comments.items() for c in thread}
    assert {cid: tid for cid, (tid, _) in comments.items()} == truth
    _, sample = next(iter(comments.values()))
    assert {"public", "author_id", "body", "html_body", "plain_body", "created_at", "attachments", "via"} <= set(sample)
    # The odd shapes real data has: child events of other types mixed in, events with no comment.
    kinds = {c["event_type"] for e in unique.values() for c in e["child_events"]}
    assert {"Comment", "Create", "Change"} <= kinds
    assert any(not any(c["event_type"] == "Comment" for c in e["child_events"]) for e in unique.values())
    deleted = next(t for t in sb.data.zendesk_tickets if t["status"] == "deleted")
    assert any(e["ticket_id"] == deleted["id"] and {"event_type": "Change", "field_name": "status"}.items()
               <= e["child_events"][0].items() and e["child_events"][0]["value"] == "deleted"
               for e in unique.values())
    # Without include=comment_events the comments are left out of the events.
    plain = [e for p in event_pages(sb, per_page=1000) for e in p["ticket_events"]]
    assert len(plain) == len(unique) and not any(c["event_type"] == "Comment" for e in plain for c in e["child_events"])


def test_ticket_events_start_time_rules_and_a_full_page_of_one_second():
    with make() as sb:
        assert get(sb, EVENTS).status_code == 400
        now = int(sb.data.now.timestamp())
        resp = get(sb, EVENTS, start_time=now - 30)
        assert resp.status_code == 422 and "Too recent" in resp.json()["description"]
        empty = get(sb, EVENTS, start_time=now - 61).json()
        assert empty["ticket_events"] == [] and empty["end_of_stream"] and empty["end_time"] == now - 61
        # Five comments in one second: a page of 3 takes the whole second and moves past it.
        thread = sb.data.zendesk_comments[sb.data.zendesk_tickets[0]["id"]]
        second = thread[0]["created_at"]
        for c in thread[1:]:
            c["created_at"] = second
        extra = [{**thread[0], "id": thread[0]["id"] + 10 * k, "audit_id": thread[0]["audit_id"] + 10 * k}
                 for k in range(1, 5)]
        thread.extend(extra)
        sb.data.changed()
        at = int(sd_parse(second))
        page = get(sb, EVENTS, start_time=at, per_page=3).json()
        same = [e for e in page["ticket_events"] if e["timestamp"] == at]
        assert len(same) >= 5 and page["end_time"] == at + 1 and not page["end_of_stream"]


def sd_parse(text):
    from dunning_pipeline.sandbox import data as sd

    return sd.parse_zendesk_datetime(text).timestamp()


def test_ticket_events_have_their_own_budget_real_by_default_shorter_for_tests():
    from dunning_pipeline.sandbox.zendesk_server import ZendeskApp

    app = ZendeskApp(None, "a@b.c", "t")
    assert (app.events_window.limit, app.events_window.period) == (10, 60.0)  # Zendesk's 10 a minute
    with make() as sb:
        sb.zendesk.set_events_limit(2, period_seconds=2.0)
        statuses = [get(sb, EVENTS, start_time=0) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[2].json()["error"] == "APIRateLimitExceeded"
        assert 1 <= int(statuses[2].headers["Retry-After"]) <= 2
        assert get(sb, "/api/v2/incremental/tickets/cursor.json", start_time=0).status_code == 200


def test_a_redaction_changes_the_comment_everywhere_and_is_an_event():
    from dunning_pipeline.sandbox.zendesk_server import REDACTED

    with make() as sb:
        ticket = next(t for t in sb.data.zendesk_tickets if t["status"] == "open")
        comment = sb.data.zendesk_comments[ticket["id"]][0]
        word = comment["body"].split()[1]
        assert sb.zendesk.redact_comment(comment["id"], word) == ticket["id"]
        [shown] = [c for c in get(sb, f"/api/v2/tickets/{ticket['id']}/comments.json").json()["comments"]
                   if c["id"] == comment["id"]]
        assert word not in shown["plain_body"] and REDACTED * len(word) in shown["plain_body"]
        events = [e for p in event_pages(sb, include="comment_events") for e in p["ticket_events"]]
        [redaction] = [e for e in events if any(c["event_type"] == "CommentRedactionEvent" for c in e["child_events"])]
        assert redaction["ticket_id"] == ticket["id"]
        assert redaction["child_events"][0]["comment_id"] == comment["id"]
        assert redaction["timestamp"] <= int(sb.data.now.timestamp()) - 60  # exported tonight

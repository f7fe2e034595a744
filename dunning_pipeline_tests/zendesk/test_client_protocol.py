"""Protocol corners of the client against a scripted loopback HTTP server (real HTTP)."""

import base64

import pytest

from dunning_pipeline.zendesk.client import (
    ZendeskAuthError,
    ZendeskClient,
    ZendeskNotFoundError,
    ZendeskPermissionError,
    ZendeskRequestError,
    ZendeskResponseError,
    ZendeskRetriesExhaustedError,
    ZendeskUnreachableError,
)
from dunning_pipeline_tests.zendesk.scripted import ScriptedServer

TOKEN = "tok-SECRET-9f8e7d6c5b4a"
NOW = 1_772_000_000.0


def page(tickets, cursor="c1", end=True, users=()):
    return {"tickets": tickets, "users": list(users), "after_cursor": cursor, "before_cursor": None,
            "end_of_stream": end}


def client(url, **kw):
    kw.setdefault("max_retries", 2)
    kw.setdefault("backoff_factor", 0)
    return ZendeskClient(url, "ops@acme.test", TOKEN, wall_clock=lambda: NOW, **kw)


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def test_basic_auth_with_the_token_and_cursor_paging(server):
    server.add(200, page([{"id": 1}], "c1", end=False)).add(200, page([{"id": 2}], "c2", end=True))
    with client(server.url, page_size=1) as zd:
        pages = list(zd.export_tickets(start_time=0))
    assert [p.records[0]["id"] for p in pages] == [1, 2]
    assert pages[-1].after_cursor == "c2" and pages[-1].end_of_stream
    expected = "Basic " + base64.b64encode(f"ops@acme.test/token:{TOKEN}".encode()).decode()
    assert all(r["authorization"] == expected for r in server.requests)
    first, second = server.requests
    assert first["path"] == "/api/v2/incremental/tickets/cursor.json"
    assert first["query"] == {"per_page": "1", "include": "users", "start_time": "0"}
    assert second["query"] == {"per_page": "1", "include": "users", "cursor": "c1"}


def test_a_start_time_in_the_future_is_clamped_to_a_minute_ago(server):
    server.add(200, page([]))
    with client(server.url) as zd:
        list(zd.export_users(start_time=int(NOW) + 3600))
    assert server.requests[0]["path"] == "/api/v2/incremental/users/cursor.json"
    assert server.requests[0]["query"]["start_time"] == str(int(NOW) - 60)


def test_too_recent_start_time_422_moves_start_time_back_and_asks_again(server):
    server.add(422, {"error": "InvalidValue",
                     "description": "Too recent start_time. Use a start_time older than 1 minute"})
    server.add(200, page([{"id": 5}]))
    with client(server.url) as zd:
        pages = list(zd.export_tickets(start_time=int(NOW) - 60))
    assert pages[0].records == [{"id": 5}]
    first, second = (int(r["query"]["start_time"]) for r in server.requests)
    assert first == int(NOW) - 60 and second < first


def test_other_422_is_reported_with_zendesks_description(server):
    server.add(422, {"error": "InvalidValue", "description": "Invalid cursor"})
    with client(server.url) as zd, pytest.raises(ZendeskRequestError, match="422.*Invalid cursor"):
        list(zd.export_tickets(cursor="garbage"))
    assert len(server.requests) == 1


def test_401_names_the_variables_and_never_the_token(server):
    server.add(401, {"error": "Couldn't authenticate you"})
    with client(server.url) as zd, pytest.raises(ZendeskAuthError) as err:
        list(zd.export_tickets())
    assert "check ZENDESK_EMAIL and ZENDESK_API_TOKEN" in str(err.value)
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value) and TOKEN not in repr(zd)


def test_403_and_404_say_what_is_wrong(server):
    server.add(403, {"error": "Forbidden"}).add(404, {"error": "RecordNotFound", "description": "Not found"})
    with client(server.url) as zd:
        with pytest.raises(ZendeskPermissionError, match=r"ops@acme.test may not read .*403.*admin"):
            list(zd.export_tickets())
        with pytest.raises(ZendeskNotFoundError, match=r"404.*check ZENDESK_URL"):
            list(zd.ticket_comments(77))
    assert server.requests[1]["path"] == "/api/v2/tickets/77/comments.json"


def test_an_html_page_with_200_is_not_taken_for_data(server):
    server.add(200, "<html><body>Help Center</body></html>")
    with client(server.url) as zd, pytest.raises(ZendeskResponseError, match="not JSON.*text/html.*Help Center"):
        list(zd.export_tickets())


def test_a_page_without_the_expected_keys_is_refused(server):
    server.add(200, {"results": []})
    with client(server.url) as zd, pytest.raises(ZendeskResponseError, match="no 'tickets' list"):
        list(zd.export_tickets())


def test_5xx_on_every_try_ends_with_retries_exhausted(server):
    for _ in range(3):
        server.add(503, "<html><h1>503 Service Unavailable</h1></html>", {"Retry-After": "0"})
    with client(server.url, max_retries=2) as zd, pytest.raises(ZendeskRetriesExhaustedError) as err:
        list(zd.ticket_comments(5))
    assert "503" in str(err.value) and "after 3 attempts" in str(err.value)
    assert len(server.requests) == 3  # the first try and two retries


def test_unreachable_server():
    with ScriptedServer() as srv:
        url = srv.url
    with client(url, max_retries=1) as zd, pytest.raises(ZendeskUnreachableError) as err:
        list(zd.export_tickets())
    assert url in str(err.value) and "check ZENDESK_URL" in str(err.value)
    assert TOKEN not in str(err.value)


def test_export_requests_go_through_the_limiter_and_comments_do_not(server):
    slept = []
    server.add(200, page([], "a", end=False)).add(200, page([], "b", end=True))
    server.add(200, {"comments": [], "meta": {"has_more": False}})
    clock = [0.0]
    zd = client(server.url, export_requests_per_minute=1, clock=lambda: clock[0],
                sleep=lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    with zd:
        list(zd.export_tickets())
        list(zd.ticket_comments(1))
    assert slept == [60.0]  # the second export page waited for the window; comments did not

"""The client against the sandbox's Zendesk: faults it must survive and errors it must name."""

from datetime import date

import pytest

from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.settings import SettingsError
from dunning_pipeline.zendesk.client import (
    TICKETS_EXPORT_PATH,
    ZendeskAuthError,
    ZendeskClient,
    ZendeskResponseError,
    ZendeskRetriesExhaustedError,
    ZendeskUnreachableError,
)
from dunning_pipeline_tests.zendesk.conftest import resource_for

COMMENTS = "/api/v2/tickets/1/comments.json"


def served(sb, path):
    return [(r["fault"], r["status"]) for r in sb.requests["zendesk"] if r["path"] == path]


def all_ticket_ids(client):
    return [t["id"] for page in client.export_tickets() for t in page.records]


class FakeTime:
    """A clock that only moves when the client sleeps (the sandbox keeps real time)."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_for(sb, fake: FakeTime, **kwargs) -> ZendeskClient:
    res = resource_for(sb)
    kwargs.setdefault("backoff_factor", 0.0)
    return ZendeskClient(res.url, res.email, res.api_token, clock=fake.clock, sleep=fake.sleep, **kwargs)


def test_429_waits_for_retry_after_then_succeeds(sandbox, retry_sleeps):
    sandbox.faults.set("zendesk", "rate_limit", count=2, retry_after=7)
    fake = FakeTime()
    with client_for(sandbox, fake) as zd:
        ids = all_ticket_ids(zd)
    assert sorted(ids) == [t["id"] for t in sandbox.data.zendesk_tickets]
    assert served(sandbox, TICKETS_EXPORT_PATH) == [("rate_limit", 429), ("rate_limit", 429), (None, 200)]
    assert fake.sleeps == [7, 7]  # Zendesk's Retry-After, not our own backoff


def test_a_429_storm_is_waited_out_within_the_time_budget_not_a_count(sandbox, retry_sleeps):
    # Twelve 429s in a row (six minutes of Retry-After) outlast any retry count, not the budget.
    sandbox.faults.set("zendesk", "rate_limit", count=12, retry_after=30)
    fake = FakeTime()
    with client_for(sandbox, fake, max_retries=3, rate_limit_budget_seconds=900) as zd:
        ids = all_ticket_ids(zd)
    assert sorted(ids) == [t["id"] for t in sandbox.data.zendesk_tickets]
    assert fake.sleeps == [30] * 12 and retry_sleeps == []
    assert len(served(sandbox, TICKETS_EXPORT_PATH)) == 13


def test_5xx_html_pages_and_dropped_connections_are_retried(sandbox, retry_sleeps):
    sandbox.faults.set("zendesk", "server_error", status=502, path="/comments")
    sandbox.faults.set("zendesk", "drop", path="/comments")
    sandbox.faults.set("zendesk", "server_error", status=503, path="/comments")
    with resource_for(sandbox).get_client() as zd:
        comments = [c for page in zd.ticket_comments(1) for c in page]
    assert [c["id"] for c in comments] == [c["id"] for c in sandbox.data.zendesk_comments[1]]
    assert served(sandbox, COMMENTS) == [("server_error", 502), ("drop", "dropped"),
                                         ("server_error", 503), (None, 200)]


def test_an_answer_past_the_timeout_is_retried(sandbox, retry_sleeps):
    # The server holds the request until released: the timeout fires whatever the machine's load.
    sandbox.faults.set("zendesk", "hang", path="/comments")
    with resource_for(sandbox, timeout_seconds=0.5).get_client() as zd:
        comments = [c for page in zd.ticket_comments(1) for c in page]
    assert len(comments) == len(sandbox.data.zendesk_comments[1])
    assert [f for f, _ in served(sandbox, COMMENTS)] == ["hang", None]


def test_429_beyond_the_time_budget_ends_with_a_clear_error(sandbox, retry_sleeps):
    sandbox.faults.set("zendesk", "rate_limit", count=12, retry_after=30)
    fake = FakeTime()
    with client_for(sandbox, fake, rate_limit_budget_seconds=200) as zd, \
            pytest.raises(ZendeskRetriesExhaustedError, match=r"429 .*waited 180 s.* budget of 200 s"):
        all_ticket_ids(zd)
    assert fake.sleeps == [30] * 6  # a seventh wait would pass the budget: Zendesk is not asked again
    assert len(served(sandbox, TICKETS_EXPORT_PATH)) == 7


def test_server_errors_on_every_try_quote_the_status_not_the_whole_page(sandbox, retry_sleeps):
    sandbox.faults.set("zendesk", "server_error", count=4, status=503)
    with resource_for(sandbox, max_retries=3).get_client() as zd, \
            pytest.raises(ZendeskRetriesExhaustedError) as err:
        all_ticket_ids(zd)
    assert "answered 503" in str(err.value) and len(str(err.value)) < 500


def test_bad_credentials_say_what_to_check_and_never_show_the_token(sandbox):
    secret = "wrong-token-4f1c9a77e2"
    with resource_for(sandbox, api_token=secret).get_client() as zd, pytest.raises(ZendeskAuthError) as err:
        all_ticket_ids(zd)
    assert "check ZENDESK_EMAIL and ZENDESK_API_TOKEN" in str(err.value)
    for text in (str(err.value), repr(err.value), repr(zd), repr(resource_for(sandbox, api_token=secret))):
        assert secret not in text
    # The sandbox's own fault answers like a revoked token.
    sandbox.faults.set("zendesk", "bad_credentials")
    with resource_for(sandbox).get_client() as zd, pytest.raises(ZendeskAuthError):
        all_ticket_ids(zd)


def test_a_truncated_json_body_is_asked_again_and_a_page_is_a_clear_error(sandbox):
    sandbox.faults.set("zendesk", "malformed")
    with resource_for(sandbox).get_client() as zd:
        cut_once = all_ticket_ids(zd)  # the cut answer was asked again
        assert cut_once and cut_once == all_ticket_ids(zd)
    sandbox.faults.set("zendesk", "status", status=200, body="<html>Sign in</html>", content_type="text/html")
    with resource_for(sandbox).get_client() as zd, pytest.raises(ZendeskResponseError, match="not JSON"):
        all_ticket_ids(zd)


def test_unreachable_server_names_the_url():
    with Sandbox(seed=1, customers=3, invoices=10, as_of=date(2026, 3, 2)) as sb:
        res = resource_for(sb, max_retries=1)
    # The sandbox is stopped: nothing listens on its port any more.
    with res.get_client() as zd, pytest.raises(ZendeskUnreachableError) as err:
        all_ticket_ids(zd)
    assert res.url in str(err.value) and "check ZENDESK_URL" in str(err.value)
    assert res.api_token not in str(err.value)


def test_export_pages_are_spaced_by_the_limiter_only_when_the_budget_is_used_up(retry_sleeps):
    clock = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2),
                 zendesk_export_limit_per_minute=None) as sb:
        res = resource_for(sb)
        zd = ZendeskClient(res.url, res.email, res.api_token, page_size=5, export_requests_per_minute=3,
                           clock=lambda: clock[0], sleep=sleep)
        with zd:
            pages = list(zd.export_tickets())
    n = len(sb.data.zendesk_tickets)
    assert len(pages) == -(-n // 5)
    # Time stands still in this test: pages 1-3 pass, then every third page waits a full minute.
    assert sleeps == [60.0] * ((len(pages) - 1) // 3)


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [("url", "acme.zendesk.com", "ZENDESK_URL"), ("url", "", "ZENDESK_URL"),
     ("email", " ", "ZENDESK_EMAIL"), ("api_token", "", "ZENDESK_API_TOKEN")],
)
def test_missing_or_malformed_settings_name_the_variable(sandbox, field, value, variable):
    with pytest.raises(SettingsError, match=variable):
        resource_for(sandbox, **{field: value}).get_client()

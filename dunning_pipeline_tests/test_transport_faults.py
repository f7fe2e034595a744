"""The transport promise, fault by fault, for each source (Odoo over JSON-RPC and JSON-2, Zendesk,
Slack's reads), against the sandbox's fault switches: one transient fault is retried and the call
returns the right answer; a fault that never goes away fails the call with an error that names the
source, the cause, the real number of attempts (the requests the server saw) and the variable to
check; a dead server stops at the deadline. Slack's posts are never retried blindly.

A hanging server is the sandbox's "hang" fault: it holds the request until the test ends, so the
read timeout always fires, whatever the machine's load."""

from __future__ import annotations

import re
import time
from datetime import date

import pytest

from dunning_pipeline import settings
from dunning_pipeline.odoo.client import OdooClient, OdooConfigError, OdooError
from dunning_pipeline.odoo.resource import OdooResource
from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.slack.delivery import OUTCOME_UNKNOWN, SlackDeliveryError, SlackPoster
from dunning_pipeline.zendesk.client import ZendeskClient, ZendeskError
from dunning_pipeline.zendesk.resource import ZendeskResource

pytestmark = [pytest.mark.faults, pytest.mark.filterwarnings("ignore::ResourceWarning")]

RETRIES = 3  # so a permanent fault costs exactly 4 attempts
TIMEOUT = 0.5  # read timeout; only the "hang" fault, which never answers, reaches it
PERMANENT = RETRIES + 1

# name: (sandbox fault kind, options)
FAULTS = {
    "reset_mid_body": ("reset_mid_body", {}),
    "truncated_200": ("truncated", {}),
    "cut_json_200": ("malformed", {}),
    "empty_200": ("empty", {}),
    "http_500": ("server_error", {"status": 500}),
    "http_502": ("server_error", {"status": 502}),
    "http_503": ("server_error", {"status": 503}),
    "http_504": ("server_error", {"status": 504}),
    "dropped": ("drop", {}),
    "hang": ("hang", {}),
}
# What the error says once the fault never goes away (each source words it in its own message).
CAUSES = {
    "reset_mid_body": r"reset|broke in the middle|cut short",
    "truncated_200": r"broke in the middle of the answer|cut short",
    "cut_json_200": r"cut short",
    "empty_200": r"an empty body",
    "http_500": r"\b500\b",
    "http_502": r"\b502\b",
    "http_503": r"\b503\b",
    "http_504": r"\b504\b",
    "dropped": r"closed the connection without answering",
    "hang": r"no answer within",
}


def set_fault(sb, service: str, name: str, count: int, path: str | None = None) -> None:
    kind, opts = FAULTS[name]
    sb.faults.set(service, kind, count=count, path=path, **opts)


def faulted_requests(sb, service: str, name: str) -> int:
    kind = FAULTS[name][0]
    return sum(1 for (s, k, _p) in sb.faults.applied if s == service and k == kind)


@pytest.fixture
def no_waits(monkeypatch):
    """urllib3's backoff and Retry-After waits recorded, not slept (the servers keep real time)."""
    import types

    import urllib3.util.retry

    sleeps: list[float] = []
    monkeypatch.setattr(urllib3.util.retry, "time",
                        types.SimpleNamespace(sleep=sleeps.append, time=time.time, monotonic=time.monotonic))
    return sleeps


def _sandbox(**kw) -> Sandbox:
    return Sandbox(seed=5, customers=6, invoices=40, as_of=date(2026, 3, 2),
                   zendesk_export_limit_per_minute=None, **kw)


@pytest.fixture(scope="module", params=["17.0", "19.0"], ids=["jsonrpc", "json2"])
def odoo_sb(request):
    with _sandbox(odoo_version=request.param) as sb:
        yield sb


@pytest.fixture(scope="module")
def sb():
    with _sandbox() as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _faults_cleared(request):
    yield
    for name in ("odoo_sb", "sb"):
        if name in request.fixturenames:
            sandbox = request.getfixturevalue(name)
            sandbox.faults.clear()  # also lets go of any request a "hang" still holds
            sandbox.faults.applied.clear()


# -- Odoo --------------------------------------------------------------------------------------
def odoo_client(sb, **kw) -> OdooClient:
    env = sb.env
    kw = {"max_retries": RETRIES, "backoff_factor": 0.0, "timeout_seconds": TIMEOUT,
          "deadline_seconds": 30.0, **kw}
    return OdooClient(env["ODOO_URL"], env["ODOO_DB"], env["ODOO_USERNAME"], env["ODOO_API_KEY"], **kw)


def invoice_ids(client) -> list[int]:
    pages = client.iter_pages("account.move", [["move_type", "in", ["out_invoice", "out_refund"]]],
                              ["name"], page_size=15)
    return [r["id"] for page in pages for r in page]


def expected_invoice_ids(sb) -> list[int]:
    return [m["id"] for m in sb.data.moves if m["move_type"] in ("out_invoice", "out_refund")]


@pytest.mark.parametrize("fault", FAULTS)
def test_odoo_retries_a_transient_fault(odoo_sb, fault, no_waits):
    with odoo_client(odoo_sb) as client:
        client.check_connection()
        set_fault(odoo_sb, "odoo", fault, count=1)
        assert invoice_ids(client) == expected_invoice_ids(odoo_sb)
    assert faulted_requests(odoo_sb, "odoo", fault) == 1 and not odoo_sb.faults.pending("odoo")


@pytest.mark.parametrize("fault", FAULTS)
def test_odoo_names_a_fault_that_stays(odoo_sb, fault, no_waits):
    with odoo_client(odoo_sb) as client:
        client.check_connection()
        set_fault(odoo_sb, "odoo", fault, count=PERMANENT)
        with pytest.raises(OdooError) as err:
            invoice_ids(client)
    text = str(err.value)
    assert re.search(CAUSES[fault], text), text
    assert f"{PERMANENT} attempts" in text and "ODOO_URL" in text and "Odoo at" in text
    # The attempts the message names are the requests the server saw: every fault was used up.
    assert faulted_requests(odoo_sb, "odoo", fault) == PERMANENT and not odoo_sb.faults.pending("odoo")
    assert odoo_sb.env["ODOO_API_KEY"] not in text


def test_odoo_500_with_its_own_error_is_not_retried():
    # JSON-2 answers an unknown field with HTTP 500 and Odoo's error: retrying cannot fix that.
    with _sandbox(odoo_version="19.0") as sb, odoo_client(sb) as client:
        client.check_connection()
        before = len(sb.requests["odoo"])
        with pytest.raises(OdooConfigError, match="field x_nope does not exist on model account.move"):
            client.search_read("account.move", [], ["name", "x_nope"])
        calls = sb.requests["odoo"][before:]
        assert [c["status"] for c in calls] == [500]


def test_odoo_gives_up_at_the_deadline_and_says_so(odoo_sb):
    odoo_sb.faults.set("odoo", "hang", count=50)
    started = time.monotonic()
    with odoo_client(odoo_sb, max_retries=20, timeout_seconds=1.0, deadline_seconds=2.5) as client, \
            pytest.raises(OdooError) as err:
        client.check_connection()
    elapsed = time.monotonic() - started
    text = str(err.value)
    assert "stopped by the deadline of 2.5 s (DUNNING_SOURCE_DEADLINE_SECONDS)" in text
    attempts = int(re.search(r"\((\d+) attempts? in", text).group(1))
    assert attempts == faulted_requests(odoo_sb, "odoo", "hang") >= 1
    assert attempts < 21 and elapsed < 2.5 + 5  # the deadline, not 21 x the read timeout


def test_the_deadline_comes_from_the_environment(odoo_sb, monkeypatch):
    monkeypatch.setenv(settings.SOURCE_DEADLINE_VAR, "1.5")
    odoo_sb.faults.set("odoo", "hang", count=50)
    env = odoo_sb.env
    resource = OdooResource(url=env["ODOO_URL"], database=env["ODOO_DB"], username=env["ODOO_USERNAME"],
                            api_key=env["ODOO_API_KEY"], timeout_seconds=1.0, backoff_factor=0)
    with resource.get_client() as client, pytest.raises(OdooError, match=r"deadline of 1.5 s"):
        client.check_connection()


@pytest.mark.parametrize("value", ["0", "soon", "-5", "7200"])
def test_a_bad_deadline_names_the_variable(value):
    with pytest.raises(settings.SettingsError, match=settings.SOURCE_DEADLINE_VAR):
        settings.source_deadline_seconds({settings.SOURCE_DEADLINE_VAR: value})
    assert settings.source_deadline_seconds({}) == 60.0


# -- Zendesk -----------------------------------------------------------------------------------
def zendesk_client(sb, **kw) -> ZendeskClient:
    env = sb.env
    kw = {"max_retries": RETRIES, "backoff_factor": 0.0, "timeout_seconds": TIMEOUT,
          "deadline_seconds": 30.0, **kw}
    return ZendeskClient(env["ZENDESK_URL"], env["ZENDESK_EMAIL"], env["ZENDESK_API_TOKEN"], **kw)


def a_commented_ticket(sb) -> int:
    return next(tid for tid, comments in sb.data.zendesk_comments.items() if comments)


def comment_ids(client, ticket_id: int) -> list[int]:
    return [c["id"] for page in client.ticket_comments(ticket_id) for c in page]


@pytest.mark.parametrize("fault", FAULTS)
def test_zendesk_retries_a_transient_fault(sb, fault, no_waits):
    ticket = a_commented_ticket(sb)
    with zendesk_client(sb) as zd:
        set_fault(sb, "zendesk", fault, count=1, path="/comments")
        assert comment_ids(zd, ticket) == [c["id"] for c in sb.data.zendesk_comments[ticket]]
    assert faulted_requests(sb, "zendesk", fault) == 1 and not sb.faults.pending("zendesk")


@pytest.mark.parametrize("fault", FAULTS)
def test_zendesk_names_a_fault_that_stays(sb, fault, no_waits):
    with zendesk_client(sb) as zd:
        set_fault(sb, "zendesk", fault, count=PERMANENT, path="/comments")
        with pytest.raises(ZendeskError) as err:
            comment_ids(zd, a_commented_ticket(sb))
    text = str(err.value)
    assert re.search(CAUSES[fault], text), text
    assert f"{PERMANENT} attempts" in text and "ZENDESK_URL" in text and "Zendesk" in text
    assert "ProtocolError" not in text and "urllib3" not in text  # words, not a raw exception
    assert faulted_requests(sb, "zendesk", fault) == PERMANENT and not sb.faults.pending("zendesk")
    assert sb.env["ZENDESK_API_TOKEN"] not in text


def test_zendesk_gives_up_at_the_deadline_from_the_environment(sb, monkeypatch):
    monkeypatch.setenv(settings.SOURCE_DEADLINE_VAR, "2")
    sb.faults.set("zendesk", "hang", count=50)
    env = sb.env
    resource = ZendeskResource(url=env["ZENDESK_URL"], email=env["ZENDESK_EMAIL"],
                               api_token=env["ZENDESK_API_TOKEN"], timeout_seconds=1.0,
                               max_retries=20, retry_backoff_seconds=0)
    started = time.monotonic()
    with resource.get_client() as zd, pytest.raises(ZendeskError) as err:
        comment_ids(zd, a_commented_ticket(sb))
    text = str(err.value)
    assert "stopped by the deadline of 2 s (DUNNING_SOURCE_DEADLINE_SECONDS)" in text
    attempts = int(re.search(r"\((\d+) attempts? in", text).group(1))
    assert attempts == faulted_requests(sb, "zendesk", "hang") and time.monotonic() - started < 2 + 5


# -- Slack -------------------------------------------------------------------------------------
def poster(sb, **kw) -> SlackPoster:
    kw = {"read_retries": RETRIES, "timeout": TIMEOUT, "deadline_seconds": 30.0, "backoff_seconds": 0, **kw}
    return SlackPoster(sb.env["SLACK_BOT_TOKEN"], api_url=sb.slack_api_url, **kw)


def slack_calls(sb, method: str) -> list[dict]:
    return [r for r in sb.requests["slack"] if r["path"].endswith("/" + method)]


@pytest.fixture
def posted(sb):
    """A message with metadata in the channel, to be looked up by `find`."""
    key = f"part-{time.monotonic_ns()}"
    message = poster(sb).post("part 1", [], channel="#dunning",
                              metadata={"event_type": "dunning_alert", "event_payload": {"key": key}})
    return key, message


@pytest.mark.parametrize("fault", FAULTS)
def test_slack_reads_retry_a_transient_fault(sb, posted, fault):
    key, message = posted
    set_fault(sb, "slack", fault, count=1, path="conversations.history")
    assert poster(sb).find(message.channel_id, "dunning_alert", key) == message
    set_fault(sb, "slack", fault, count=1, path="auth.test")
    assert "chat:write" in poster(sb).scopes()
    assert faulted_requests(sb, "slack", fault) == 2 and not sb.faults.pending("slack")


@pytest.mark.parametrize("fault", FAULTS)
def test_slack_reads_name_a_fault_that_stays(sb, posted, fault):
    key, message = posted
    set_fault(sb, "slack", fault, count=PERMANENT, path="conversations.history")
    with pytest.raises(SlackDeliveryError) as err:
        poster(sb).find(message.channel_id, "dunning_alert", key)
    text = str(err.value)
    assert "Slack at" in text and "conversations.history" in text and "SLACK_API_URL" in text
    assert f"{PERMANENT} attempts" in text
    assert "alert rendering" not in text
    slack_words = {"truncated_200": r"cut short|broke", "cut_json_200": r"cut short", "empty_200": r"empty body",
                   "hang": r"no answer within the timeout", "reset_mid_body": r"reset|cut short|closed"}
    assert re.search(slack_words.get(fault, CAUSES[fault]), text), text
    if fault.startswith("http_"):
        assert f"HTTP {fault[5:]} with an HTML page" in text
    assert faulted_requests(sb, "slack", fault) == PERMANENT and not sb.faults.pending("slack")
    assert sb.env["SLACK_BOT_TOKEN"] not in text


@pytest.mark.parametrize("fault", ["http_502", "http_503", "reset_mid_body", "hang", "empty_200"])
def test_a_post_whose_answer_is_lost_is_not_posted_again(sb, fault):
    before = len(slack_calls(sb, "chat.postMessage"))
    set_fault(sb, "slack", fault, count=PERMANENT, path="chat.postMessage")
    with pytest.raises(SlackDeliveryError) as err:
        poster(sb).post("part 2", [], channel="#dunning")
    assert err.value.code == OUTCOME_UNKNOWN  # the caller looks it up by its metadata instead
    assert "chat.postMessage" in str(err.value) and "alert rendering" not in str(err.value)
    assert len(slack_calls(sb, "chat.postMessage")) == before + 1  # one attempt, never a repost


def test_slack_reads_stop_at_the_deadline(sb, posted):
    key, message = posted
    sb.faults.set("slack", "hang", count=50, path="conversations.history")
    started = time.monotonic()
    with pytest.raises(SlackDeliveryError) as err:
        poster(sb, read_retries=20, timeout=1.0, deadline_seconds=2.5).find(message.channel_id, "dunning_alert", key)
    text = str(err.value)
    assert "stopped by the deadline of 2.5 s (DUNNING_SOURCE_DEADLINE_SECONDS)" in text
    attempts = int(re.search(r"(\d+) attempts?", text).group(1))
    assert attempts == faulted_requests(sb, "slack", "hang") and time.monotonic() - started < 2.5 + 5


# -- a whole night's Odoo assets against a server that hangs ----------------------------------
def test_a_hanging_odoo_fails_each_asset_at_the_deadline_not_after_every_timeout(odoo_sb, tmp_path, monkeypatch):
    import dagster as dg

    from dunning_pipeline.odoo.assets import odoo_customers, odoo_invoices
    from dunning_pipeline.warehouse.resource import WarehouseResource

    monkeypatch.setenv(settings.SOURCE_DEADLINE_VAR, "3")
    odoo_sb.faults.set("odoo", "hang", count=1000)
    env = odoo_sb.env
    # The defaults otherwise: a 30 s read timeout and 5 retries would be 6 x 30 s per asset.
    odoo = OdooResource(url=env["ODOO_URL"], database=env["ODOO_DB"], username=env["ODOO_USERNAME"],
                        api_key=env["ODOO_API_KEY"])
    started = time.monotonic()
    result = dg.materialize(
        [odoo_invoices, odoo_customers], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        resources={"odoo": odoo, "warehouse": WarehouseResource(database_url=f"sqlite:///{tmp_path / 'w.sqlite'}")})
    elapsed = time.monotonic() - started
    failures = result.get_step_failure_events()
    assert not result.success and len(failures) == 2
    for event in failures:
        text = event.event_specific_data.error.to_string()
        assert "stopped by the deadline of 3 s (DUNNING_SOURCE_DEADLINE_SECONDS)" in text and "ODOO_URL" in text
    assert elapsed < 2 * 3 + 20  # two assets at the deadline (plus Dagster's own time), not 12 x 30 s


def test_a_hanging_zendesk_costs_the_concurrent_comments_one_deadline(sb, tmp_path):
    from datetime import UTC, datetime

    from dunning_pipeline.warehouse.store import Warehouse
    from dunning_pipeline.zendesk import load

    night = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    wh.ensure_schema()
    with zendesk_client(sb) as zd:
        load.extract_tickets_and_users(zd, wh, extracted_at=night)
    due = len(load.tickets_needing_comments(wh))
    sb.faults.set("zendesk", "hang", count=10_000, path="/comments")
    started = time.monotonic()
    with zendesk_client(sb, timeout_seconds=1.0, deadline_seconds=2.0, max_retries=5) as zd:
        outcome = load.extract_comments(zd, wh, extracted_at=night, concurrency=4)
    elapsed = time.monotonic() - started
    # Once Zendesk stopped answering, every thread stopped at the same deadline: no ticket waited
    # out its own 6 x 1 s, and the ones after it were not tried at all.
    assert due >= 2 and outcome.written == 0
    assert len(outcome.failed_tickets) + len(outcome.deferred_tickets) == due
    assert all("DUNNING_SOURCE_DEADLINE_SECONDS" in m for m in outcome.failed_tickets.values())
    assert faulted_requests(sb, "zendesk", "hang") <= 4 * 2  # at most two attempts per thread
    assert elapsed < 2 + 8

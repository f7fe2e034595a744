"""The Odoo client against the sandbox's Odoo (JSON-RPC 17.0 and JSON-2 19.0): protocol
detection, keyset paging, retries, and an error that says what to fix for every failure."""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime

import pandas as pd
import pytest

from dunning_pipeline.odoo import parse
from dunning_pipeline.odoo.client import (
    OdooAccessError,
    OdooAuthError,
    OdooConfigError,
    OdooError,
    OdooResponseError,
    OdooUnavailableError,
)
from dunning_pipeline_tests.odoo.conftest import (
    assert_secret_free,
    client_for,
    make_sandbox,
    odoo_calls,
    out_moves,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
EXTRACTED = datetime(2026, 3, 3)


def fetch_all(client, page_size=50, fields=("name", "state")):
    pages = list(client.iter_pages("account.move", parse.INVOICE_DOMAIN, list(fields), page_size=page_size))
    return pages, [r["id"] for page in pages for r in page]


# -- protocol and reading ------------------------------------------------------------------------
def test_auto_protocol_follows_the_server_version(odoo_sandbox, odoo_version):
    sb = odoo_sandbox
    expected = "json2" if odoo_version == "19.0" else "jsonrpc"
    with client_for(sb) as client:
        assert client.version().label == odoo_version
        assert client.protocol == expected
        _pages, ids = fetch_all(client)
    assert ids == [m["id"] for m in out_moves(sb.data)]
    calls = odoo_calls(sb, "account.move")
    assert calls, "no account.move call reached the server"
    key = sb.env["ODOO_API_KEY"]
    for call in calls:
        if expected == "json2":
            assert call["path"] == "/json/2/account.move/search_read"
            assert call["headers"]["authorization"] == f"bearer {key}"
            assert call["headers"]["x-odoo-database"] == sb.env["ODOO_DB"]
        else:
            assert call["path"] == "/jsonrpc"
            assert call["json"]["params"]["service"] == "object"


def test_every_supported_version_gives_the_same_invoices():
    frames = {}
    for version in ("16.0", "17.0", "18.0", "19.0"):
        with make_sandbox(version) as sb, client_for(sb) as client:
            pages, _ids = fetch_all(client, page_size=64, fields=parse.INVOICE_FIELDS)
            assert client.protocol == ("json2" if version == "19.0" else "jsonrpc")
            frames[version] = parse.parse_invoices([r for p in pages for r in p], extracted_at=EXTRACTED)
            assert frames[version]["id"].tolist() == [m["id"] for m in out_moves(sb.data)]
    # same seed, same data: whatever the version and protocol, the same frame
    for version, frame in frames.items():
        pd.testing.assert_frame_equal(frame, frames["16.0"], obj=version)


def test_an_explicit_protocol_skips_detection_and_jsonrpc_still_works_on_19():
    with make_sandbox("19.0") as sb:
        with client_for(sb, protocol="jsonrpc") as client:
            _pages, ids = fetch_all(client)
        assert ids == [m["id"] for m in out_moves(sb.data)]
        assert not any(e["path"].startswith("/json/2/") for e in sb.requests["odoo"])
        assert not any(e["path"] == "/web/version" for e in sb.requests["odoo"])


def test_json2_against_an_older_odoo_says_so():
    with make_sandbox("17.0") as sb, client_for(sb, protocol="json2") as client, \
            pytest.raises(OdooConfigError, match="JSON-2 needs Odoo 19"):
        fetch_all(client)


def test_records_come_with_exact_amounts_and_every_state(odoo_sandbox):
    with client_for(odoo_sandbox) as client:
        pages, _ids = fetch_all(client, fields=parse.INVOICE_FIELDS)
    records = [r for p in pages for r in p]
    frame = parse.parse_invoices(records, extracted_at=odoo_sandbox.data.now.replace(tzinfo=None))
    assert set(frame["state"]) >= {"posted"}
    # drafts and cancelled moves are read too (a cancellation must reach the warehouse)
    assert set(frame["state"]) == {m["state"] for m in out_moves(odoo_sandbox.data)}
    from decimal import Decimal

    from dunning_pipeline import money
    expected = sum(Decimal(repr(m["amount_residual"])) for m in out_moves(odoo_sandbox.data))
    assert money.to_decimal(frame["amount_residual"].sum()) == expected


# -- keyset paging -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox_120():
    """A sandbox holding exactly 120 customer invoices and credit notes."""
    with make_sandbox("17.0", invoices=200) as sb:
        outs = out_moves(sb.data)
        assert len(outs) >= 120
        keep = {m["id"] for m in outs[:120]}
        sb.data.moves[:] = [m for m in sb.data.moves if m["move_type"] not in ("out_invoice", "out_refund")
                            or m["id"] in keep]
        sb.data.changed()
        yield sb


@pytest.mark.parametrize("page_size", [120, 40, 60, 50, 7, 121, 1000])
def test_paging_by_id_at_page_boundaries(sandbox_120, page_size):
    sb = sandbox_120
    sb.requests["odoo"].clear()
    with client_for(sb) as client:
        pages, ids = fetch_all(client, page_size=page_size)
    expected = [m["id"] for m in out_moves(sb.data)]
    assert len(expected) == 120
    assert ids == expected  # all, once each, in id order
    # n // size full pages, then one short (possibly empty) page that ends the loop
    assert len(pages) == math.ceil(120 / page_size)
    calls = odoo_calls(sb, "account.move")
    assert len(calls) == 120 // page_size + 1
    last = 0
    answered = pages + ([[]] if 120 % page_size == 0 else [])  # a full last page needs one more ask
    for call, page in zip(calls, answered, strict=True):
        assert ["id", ">", last] in call["call"]["domain"]
        assert call["call"]["order"] == "id asc"
        assert call["call"]["limit"] == page_size
        assert "offset" not in call["call"]  # keyset paging, never growing offsets
        if page:
            last = page[-1]["id"]


def test_paging_over_json2():
    with make_sandbox("19.0") as sb, client_for(sb) as client:
        n = len(out_moves(sb.data))
        pages, ids = fetch_all(client, page_size=n // 3)
        assert ids == [m["id"] for m in out_moves(sb.data)]
        calls = odoo_calls(sb, "account.move")
        assert len(calls) == n // (n // 3) + 1
        assert all("offset" not in c["call"] for c in calls)
        assert calls[1]["call"]["domain"][-1] == ["id", ">", pages[0][-1]["id"]]


def test_archived_partners_are_read_with_active_test_false(odoo_sandbox):
    sb = odoo_sandbox
    with client_for(sb) as client:
        records = [r for page in client.iter_pages("res.partner", [], ["name", "active"], page_size=25,
                                                   context=parse.ALL_RECORDS_CONTEXT) for r in page]
    assert [r["id"] for r in records] == [p["id"] for p in sb.data.partners]
    assert any(r["active"] is False for r in records), "the sandbox should hold an archived partner"


# -- credentials and configuration errors -----------------------------------------------------------
def test_wrong_api_key(odoo_sandbox):
    sb = odoo_sandbox
    wrong = "definitely-not-the-key-0123"
    with client_for(sb, api_key=wrong) as client, pytest.raises(OdooAuthError) as err:
        fetch_all(client)
    text = str(err.value)
    assert "ODOO_API_KEY" in text
    assert "re-issue your Odoo API key" in text
    assert_secret_free(err.value, wrong)
    assert_secret_free(err.value, sb.env["ODOO_API_KEY"])


def test_wrong_username_on_jsonrpc_names_the_login():
    with make_sandbox("17.0") as sb, client_for(sb, username="nobody@example.com") as client:
        with pytest.raises(OdooAuthError, match="refused the login 'nobody@example.com'") as err:
            client.authenticate()
        assert "ODOO_USERNAME" in str(err.value)
        assert_secret_free(err.value, sb.env["ODOO_API_KEY"])


def test_key_refused_on_a_call_after_login_is_an_auth_error():
    with make_sandbox("17.0") as sb, client_for(sb) as client:
        client.check_connection()
        sb.faults.set("odoo", "bad_credentials")
        with pytest.raises(OdooAuthError, match="re-issue your Odoo API key") as err:
            fetch_all(client)
        assert_secret_free(err.value, sb.env["ODOO_API_KEY"])


def test_expired_api_key_says_to_reissue_it():
    with make_sandbox("19.0") as sb, client_for(sb) as client:
        client.version()
        sb.faults.set("odoo", "expired_key")
        with pytest.raises(OdooAuthError) as err:
            fetch_all(client)
        text = str(err.value)
        assert "expired" in text and "re-issue your Odoo API key" in text
        assert_secret_free(err.value, sb.env["ODOO_API_KEY"])


def test_unknown_database(odoo_sandbox):
    with client_for(odoo_sandbox, database="no_such_db") as client, pytest.raises(OdooConfigError) as err:
        fetch_all(client)
    text = str(err.value)
    assert "'no_such_db'" in text and "ODOO_DB" in text
    assert_secret_free(err.value, odoo_sandbox.env["ODOO_API_KEY"])


def test_unknown_field_names_field_model_and_version(odoo_sandbox):
    with client_for(odoo_sandbox) as client, pytest.raises(OdooConfigError) as err:
        fetch_all(client, fields=("name", "x_studio_dunning_level"))
    version = client.version().label
    assert str(err.value).startswith(
        f"field x_studio_dunning_level does not exist on model account.move in Odoo {version}: "
    )


def test_unknown_model(odoo_sandbox):
    with client_for(odoo_sandbox) as client, pytest.raises(OdooConfigError) as err:
        client.search_read("account.movez", [], ["name"], limit=1)
    assert "model account.movez does not exist" in str(err.value)
    assert "Invoicing app" in str(err.value)


def test_wrong_url_path_is_a_configuration_error():
    with make_sandbox("17.0") as sb, client_for(sb, url=sb.env["ODOO_URL"] + "/odoo") as client, \
            pytest.raises(OdooConfigError, match="ODOO_URL must be the root address"):
        client.authenticate()


@pytest.mark.parametrize(
    ("error", "exc_type", "expected"),
    [
        ({"code": 200, "message": "Odoo Server Error", "data": {
            "name": "odoo.exceptions.AccessError",
            "message": "You are not allowed to access 'Journal Entry' (account.move) records.",
            "arguments": [], "context": {}, "debug": "Traceback ..."}},
         OdooAccessError, "may not run account.move.search_read"),
        ({"code": 100, "message": "Odoo Session Expired", "data": {
            "name": "odoo.http.SessionExpiredException", "message": "Session expired", "arguments": [],
            "context": {}, "debug": ""}},
         OdooAuthError, "Session Expired"),
        ({"code": 200, "message": "Odoo Server Error", "data": {
            "name": "builtins.ValueError", "message": "Invalid field account.move.x_level in leaf ('x_level', '=', 1)",
            "arguments": [], "context": {}, "debug": ""}},
         OdooConfigError, "field x_level does not exist on model account.move in Odoo"),
        ({"code": 0, "message": "Odoo Server Error", "data": {
            "name": "odoo.exceptions.ValidationError", "message": "Something odd\nsecond line",
            "arguments": [], "context": {}, "debug": "Traceback (most recent call last): ..."}},
         OdooError, "odoo.exceptions.ValidationError: Something odd"),
    ],
)
def test_odoo_error_payloads_map_to_specific_errors(error, exc_type, expected):
    with make_sandbox("17.0") as sb, client_for(sb) as client:
        client.check_connection()
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": error})
        sb.faults.set("odoo", "status", status=200, body=body, content_type="application/json")
        with pytest.raises(exc_type) as err:
            fetch_all(client)
    assert expected in str(err.value)
    assert "Traceback" not in str(err.value) and "second line" not in str(err.value)


# -- transient faults: retried, then success -------------------------------------------------------
def _fetch_with_fault(sb, kind, count, retry_sleeps=None, **opts):
    with client_for(sb) as client:
        client.version()
        if client.protocol == "jsonrpc":
            client.check_connection()
        sb.faults.set("odoo", kind, count=count, **opts)
        _pages, ids = fetch_all(client)
    assert ids == [m["id"] for m in out_moves(sb.data)]
    assert [k for (_s, k, _p) in sb.faults.applied].count(kind) == count
    assert not sb.faults.pending("odoo")


def test_rate_limit_is_retried_honouring_retry_after(odoo_sandbox, retry_sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    _fetch_with_fault(odoo_sandbox, "rate_limit", 2, retry_after=7)
    assert retry_sleeps == [7, 7]  # Retry-After, not our own backoff
    assert " 429 " in caplog.text  # urllib3 logs each request and its retries ...
    assert odoo_sandbox.env["ODOO_API_KEY"] not in caplog.text  # ... never the key


@pytest.mark.parametrize("status", [502, 503, 504])
def test_proxy_errors_with_html_are_retried(status, retry_sleeps):
    with make_sandbox("17.0") as sb:
        _fetch_with_fault(sb, "server_error", 2, status=status)


def test_dropped_connection_is_retried(odoo_sandbox, retry_sleeps):
    _fetch_with_fault(odoo_sandbox, "drop", 2)


def test_an_answer_that_never_comes_times_out_and_is_retried(retry_sleeps):
    # The server holds the request until released: the timeout fires whatever the machine's load.
    with make_sandbox("17.0") as sb, client_for(sb, timeout_seconds=0.5) as client:
        client.check_connection()
        sb.faults.set("odoo", "hang")
        _pages, ids = fetch_all(client)
        assert ids == [m["id"] for m in out_moves(sb.data)]
        assert ("odoo", "hang") in [(s, k) for (s, k, _p) in sb.faults.applied]


# -- transient faults: retries exhausted -> an error that says what happened -----------------------
def test_retries_exhausted_on_proxy_html(retry_sleeps):
    with make_sandbox("17.0") as sb, client_for(sb, max_retries=2, backoff_factor=0.5) as client:
        client.check_connection()
        sb.faults.set("odoo", "server_error", count=3, status=503)
        with pytest.raises(OdooUnavailableError) as err:
            fetch_all(client)
    text = str(err.value)
    assert "HTTP 503" in text and "after 3 attempts" in text
    assert "HTML page" in text and "proxy" in text
    assert "<" not in text and "nginx" not in text  # the page itself is not dumped
    assert retry_sleeps == [1.0]  # exponential backoff: none before the 1st retry, 2 * 0.5 s before the 2nd


def test_retries_exhausted_on_rate_limit(retry_sleeps):
    with make_sandbox("19.0") as sb, client_for(sb, max_retries=1) as client:
        client.version()
        sb.faults.set("odoo", "rate_limit", count=2, retry_after=3)
        with pytest.raises(OdooUnavailableError) as err:
            fetch_all(client)
        assert_secret_free(err.value, sb.env["ODOO_API_KEY"])
    assert "rate limiting requests (HTTP 429)" in str(err.value)
    assert "Retry-After was 3" in str(err.value)


def test_retries_exhausted_on_dropped_connections(retry_sleeps):
    with make_sandbox("17.0") as sb, client_for(sb, max_retries=2) as client:
        client.check_connection()
        sb.faults.set("odoo", "drop", count=3)
        with pytest.raises(OdooUnavailableError, match="closed the connection without answering"):
            fetch_all(client)


def test_retries_exhausted_on_timeouts(retry_sleeps):
    with make_sandbox("17.0") as sb, client_for(sb, max_retries=1, timeout_seconds=0.5) as client:
        client.check_connection()
        sb.faults.set("odoo", "hang", count=2)
        with pytest.raises(OdooUnavailableError, match=r"no answer within 0.5 s \(2 attempts in \d+ s\)"):
            fetch_all(client)


def test_unreachable_server(closed_port, retry_sleeps):
    url = f"http://127.0.0.1:{closed_port}"
    from dunning_pipeline.odoo.client import OdooClient

    client = OdooClient(url, "db", "user", "s3cr3t-key", max_retries=2, backoff_factor=0.0)
    with client, pytest.raises(OdooUnavailableError) as err:
        client.version()
    text = str(err.value)
    assert f"Odoo server unreachable at {url}" in text
    assert "refused" in text and "ODOO_URL" in text
    assert_secret_free(err.value, "s3cr3t-key")


def test_a_truncated_answer_is_asked_again_never_parsed(retry_sleeps):
    with make_sandbox("17.0") as sb, client_for(sb, max_retries=2) as client:
        client.check_connection()
        sb.faults.set("odoo", "malformed")
        _pages, ids = fetch_all(client)
        assert ids == [m["id"] for m in out_moves(sb.data)]
        sb.faults.set("odoo", "malformed", count=3)
        with pytest.raises(OdooUnavailableError, match=r"a JSON body cut short \(\d+ bytes\) with HTTP 200 \(3 attempts"):
            fetch_all(client)


def test_an_html_page_with_200_is_reported_not_retried(retry_sleeps):
    with make_sandbox("17.0") as sb, client_for(sb) as client:
        client.check_connection()
        sb.faults.set("odoo", "status", status=200, body="<html><body>Login</body></html>", content_type="text/html")
        with pytest.raises(OdooResponseError, match="instead of JSON"):
            fetch_all(client)
        assert sb.requests["odoo"][-1]["fault"] == "status"  # the page was the last request: not asked again

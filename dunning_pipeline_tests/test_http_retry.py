"""Retries are told to the run's log, with the cause and never a query string."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from dunning_pipeline.http_retry import LoggingRetry


def test_each_retry_is_reported_with_its_cause(sandbox):
    heard: list[str] = []
    sandbox.faults.set("zendesk", "rate_limit", retry_after=0)
    sandbox.faults.set("zendesk", "server_error", status=503)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=LoggingRetry(
        total=3, status_forcelist=[429, 503], respect_retry_after_header=True, backoff_factor=0,
        raise_on_status=False, on_retry=heard.append)))
    url = f"{sandbox.zendesk_url}/api/v2/incremental/users/cursor.json?start_time=0&secret=x"
    resp = session.get(url, auth=(sandbox.env["ZENDESK_EMAIL"] + "/token", sandbox.env["ZENDESK_API_TOKEN"]))
    assert resp.status_code == 200
    assert heard == [
        "GET /api/v2/incremental/users/cursor.json: HTTP 429, Retry-After 0 s; retry 1 of 3",
        "GET /api/v2/incremental/users/cursor.json: HTTP 503; retry 2 of 3",
    ]


def test_the_odoo_client_reports_its_retries(sandbox):
    from dunning_pipeline.odoo.client import OdooClient

    heard: list[str] = []
    sandbox.faults.set("odoo", "drop")
    with OdooClient(sandbox.odoo_url, sandbox.env["ODOO_DB"], sandbox.env["ODOO_USERNAME"],
                    sandbox.env["ODOO_API_KEY"], backoff_factor=0, on_retry=heard.append) as client:
        client.check_connection()
    # The first request (version detection) was dropped and retried.
    assert heard == ["GET /web/version: the server closed the connection without answering; retry 1 of 5"]

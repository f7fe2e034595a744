"""Sending a reminder through Zendesk from the workbench, against the sandbox Zendesk (the real
local server): only when the installation enables it, only by a CSRF-checked POST, with the
text as edited; the sandbox records the ticket or the reply; every failure says so on the page
and writes nothing."""

from __future__ import annotations

import copy
import re
import socket
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline.sandbox import Sandbox
from dunning_pipeline.sandbox import harness
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.workbench import config as wb_config
from dunning_pipeline_tests.workbench.conftest import csrf_of, login, make_client

EDITED = "Dear Acme,\n\nINV/2026/00104 is still open: 1,000.00 USD. If you dispute it, tell us.\n\nAlice"


@pytest.fixture(scope="module")
def zendesk():
    """A running sandbox Zendesk that also holds the hand-made dataset's open tickets 9001 and
    9005 of customer 10 (Acme), so replies on them can be recorded."""
    with Sandbox(seed=3, customers=5, invoices=30, as_of=date(2026, 3, 2)) as sb:
        with sb.data.lock:
            template = next(t for t in sb.data.zendesk_tickets if t["status"] != "deleted")
            for ticket_id in (9001, 9005):
                t = copy.deepcopy(template)
                t.update(id=ticket_id, status="open", url=f"/api/v2/tickets/{ticket_id}.json")
                sb.data.zendesk_tickets.append(t)
                sb.data.zendesk_comments[ticket_id] = []
            sb.data.changed()
        yield sb


@pytest.fixture(scope="module")
def drafted(aged_url):
    """A reminder draft of customer 10 (as the reporting part writes it)."""
    wh = Warehouse(aged_url)
    wh.append("reminder_drafts", pd.DataFrame([{
        "customer_id": 10, "company_id": 1, "stage": "reminder_1", "action": "email",
        "subject": "Reminder: INV/2026/00104", "body": "Dear Acme,\nplease pay 1,000.00 USD.",
        "template_body": "Dear Acme", "source": "template", "customer_email": "ap@acme.example",
        "status": "draft", "as_of_date": pd.Timestamp("2026-03-02")}]))
    wh.dispose()
    return aged_url


def _sender(zendesk, **override):
    return {"zendesk_url": zendesk.zendesk_url, "zendesk_email": harness.ZENDESK_EMAIL,
            "zendesk_api_token": harness.ZENDESK_API_TOKEN, **override}


def _client(url, users_file, zendesk=None, **override):
    client = make_client(url, users_file, **(_sender(zendesk, **override) if zendesk else {}))
    assert login(client, "alice").status_code == 303
    return client


def _form(client) -> dict:
    html = client.get("/customers/10").text
    [ref] = re.findall(r'name="draft_ref" value="([^"]+)"', html)[:1]
    return {"csrf_token": csrf_of(html), "draft_ref": ref, "subject": "Open invoice INV/2026/00104", "body": EDITED}


def _actions(url) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text("select * from workbench_actions order by id")).mappings()]
    engine.dispose()
    return rows


def _writes(zendesk) -> list[dict]:
    return [r for r in zendesk.requests["zendesk"] if r["method"] != "GET"]


def test_without_the_setting_there_is_no_send_button_and_no_route(drafted, users_file, zendesk):
    client = _client(drafted, users_file)
    html = client.get("/customers/10").text
    assert "Send through Zendesk" not in html and "zendesk-send" not in html
    assert re.search(r'<textarea id="draft-1" rows="10" readonly>', html)
    before = len(_writes(zendesk))
    r = client.post("/customers/10/zendesk-send", data={**_form(client), "target": "new"})
    assert r.status_code == 404
    assert len(_writes(zendesk)) == before


def test_the_setting_needs_the_zendesk_credentials_and_never_shows_the_token():
    env = {"DUNNING_DATABASE_URL": "sqlite:////tmp/x.sqlite", "DUNNING_WORKBENCH_ZENDESK_SEND": "1",
           "ZENDESK_URL": "https://acme.zendesk.com", "ZENDESK_EMAIL": "bot@acme.example"}
    with pytest.raises(Exception, match="ZENDESK_API_TOKEN is not set"):
        wb_config.from_env(env)
    cfg = wb_config.from_env({**env, "ZENDESK_API_TOKEN": "very-secret-token"})
    assert cfg.zendesk_send and "very-secret-token" not in repr(cfg)
    assert not wb_config.from_env({k: v for k, v in env.items() if k != "DUNNING_WORKBENCH_ZENDESK_SEND"}
                                  ).zendesk_send


def test_sending_needs_the_forms_csrf_token(drafted, users_file, zendesk):
    client = _client(drafted, users_file, zendesk)
    form = {**_form(client), "target": "new"}
    before = len(_writes(zendesk)), len(_actions(drafted))
    for token in (None, "forged-token"):
        data = {k: v for k, v in form.items() if k != "csrf_token"}
        if token:
            data["csrf_token"] = token
        r = client.post("/customers/10/zendesk-send", data=data)
        assert r.status_code == 403 and "nothing was saved" in r.text
    assert (len(_writes(zendesk)), len(_actions(drafted))) == before


def test_a_new_ticket_to_the_billing_contact_with_the_text_as_edited(drafted, users_file, zendesk):
    client = _client(drafted, users_file, zendesk)
    html = client.get("/customers/10").text
    assert "Send through Zendesk" in html
    assert 'value="new"' in html and 'value="ticket:9001"' in html and 'value="ticket:9005"' in html
    tickets_before = len(zendesk.data.zendesk_tickets)
    r = client.post("/customers/10/zendesk-send", data={**_form(client), "target": "new"})
    assert r.status_code == 303 and r.headers["location"] == "/customers/10?done=zendesk_send"
    assert len(zendesk.data.zendesk_tickets) == tickets_before + 1
    ticket = zendesk.data.zendesk_tickets[-1]
    requester = next(u for u in zendesk.data.zendesk_users if u["id"] == ticket["requester_id"])
    author = next(u for u in zendesk.data.zendesk_users if u["email"] == harness.ZENDESK_EMAIL)
    assert requester["email"] == "ap@acme.example" and requester["role"] == "end-user"
    assert ticket["subject"] == "Open invoice INV/2026/00104" and ticket["submitter_id"] == author["id"]
    [first] = zendesk.data.zendesk_comments[ticket["id"]]
    assert (first["body"], first["public"], first["author_id"]) == (EDITED, True, author["id"])
    action = _actions(drafted)[-1]
    assert (action["kind"], action["author"], action["customer_id"], action["ticket_id"]) == \
        ("reminder_sent", "alice", 10, ticket["id"])
    assert f"new ticket #{ticket['id']} to ap@acme.example" in action["note"]
    page = client.get("/customers/10?done=zendesk_send").text
    assert "Reminder sent through Zendesk" in page and f"new ticket #{ticket['id']}" in page


def test_a_public_reply_on_the_customers_open_ticket(drafted, users_file, zendesk):
    client = _client(drafted, users_file, zendesk)
    before = zendesk.data.ticket(9001)["generated_timestamp"]
    r = client.post("/customers/10/zendesk-send", data={**_form(client), "target": "ticket:9001"})
    assert r.status_code == 303
    reply = zendesk.data.zendesk_comments[9001][-1]
    assert (reply["body"], reply["public"]) == (EDITED, True)
    assert zendesk.data.ticket(9001)["generated_timestamp"] > before  # the next export re-sends the ticket
    action = _actions(drafted)[-1]
    assert (action["kind"], action["ticket_id"], action["author"]) == ("reminder_sent", 9001, "alice")


@pytest.mark.parametrize("target, message", [
    ("ticket:9003", "ticket #9003: not an open ticket of this customer"),  # Beta's ticket
    ("ticket:x", "send as: choose a new ticket or a reply"),
    ("", "send as: choose a new ticket or a reply"),
])
def test_a_target_that_is_not_the_customers_open_ticket_is_refused(drafted, users_file, zendesk, target, message):
    client = _client(drafted, users_file, zendesk)
    before = len(_writes(zendesk)), len(_actions(drafted))
    r = client.post("/customers/10/zendesk-send", data={**_form(client), "target": target})
    assert r.status_code == 400 and message in r.text
    assert (len(_writes(zendesk)), len(_actions(drafted))) == before


def test_an_empty_text_or_another_customers_draft_is_refused(drafted, users_file, zendesk):
    client = _client(drafted, users_file, zendesk)
    form = {**_form(client), "target": "new"}
    before = len(_writes(zendesk))
    assert "text: the reminder is empty" in client.post("/customers/10/zendesk-send",
                                                       data={**form, "body": "  "}).text
    r = client.post("/customers/20/zendesk-send", data=form)  # customer 10's draft on customer 20
    assert r.status_code == 400 and "draft: not a reminder draft of this customer" in r.text
    assert len(_writes(zendesk)) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["down", "401", "422", "503", "lost_answer"])
def test_zendesk_errors_show_on_the_page_and_write_nothing(drafted, users_file, zendesk, case):
    override = {"down": {"zendesk_url": f"http://127.0.0.1:{_free_port()}"},
                "401": {"zendesk_api_token": "wrong-token"}}.get(case, {})
    client = _client(drafted, users_file, zendesk, **override)
    form = {**_form(client), "target": "ticket:9005" if case == "422" else "new"}
    if case == "422":
        zendesk.data.ticket(9005)["status"] = "closed"  # closed in Zendesk since last night
    elif case == "503":
        zendesk.faults.set("zendesk", "server_error", status=503, path="/api/v2/tickets")
    elif case == "lost_answer":
        zendesk.faults.set("zendesk", "lost_answer", path="/api/v2/tickets")
    actions, tickets = len(_actions(drafted)), len(zendesk.data.zendesk_tickets)
    writes = len(_writes(zendesk))
    try:
        r = client.post("/customers/10/zendesk-send", data=form)
    finally:
        zendesk.data.ticket(9005)["status"] = "open"
    assert r.status_code == 502
    expected = {"down": "could not be reached", "401": "refused the credentials (401)",
                "422": "Status: closed prevents ticket update", "503": "Zendesk answered 503",
                "lost_answer": "the reminder may have been sent"}[case]
    assert expected in r.text and "Not saved" in r.text
    assert "If you dispute it, tell us." in r.text  # the edited text is kept on the form
    assert "wrong-token" not in r.text and harness.ZENDESK_API_TOKEN not in r.text
    assert len(_actions(drafted)) == actions
    # A write that may have reached Zendesk is never repeated: one request, at most one ticket.
    assert len(_writes(zendesk)) - writes == (0 if case == "down" else 1)
    assert len(zendesk.data.zendesk_tickets) - tickets == (1 if case == "lost_answer" else 0)

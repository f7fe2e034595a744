"""End to end on the sandbox: a reminder sent from the workbench through Zendesk (a new ticket
and a public reply, with dispute words and the customer's invoice numbers in our text) is in
the next night's email history as our outbound message, and holds nothing."""

from __future__ import annotations

import re
from datetime import date

import dagster as dg
import pytest
import sqlalchemy as sa

from dunning_pipeline.sandbox import harness
from dunning_pipeline_tests.conftest import point_at_sandbox
from dunning_pipeline_tests.workbench.conftest import csrf_of, login, make_client


def _night(day: str) -> None:
    from dunning_pipeline import definitions as top

    defs = dg.Definitions.merge(
        top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
        top.reporting_part.defs, dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
    result = defs.resolve_job_def("nightly_dunning").execute_in_process(
        partition_key=day, instance=dg.DagsterInstance.ephemeral())
    assert result.success


def _rows(engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


@pytest.mark.slow
def test_a_reminder_sent_through_zendesk_is_tomorrows_outbound_history_and_never_a_dispute(
        tmp_path, monkeypatch, users_file):
    from dunning_pipeline.sandbox import Sandbox

    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2)) as sb:
        url = point_at_sandbox(sb, tmp_path, monkeypatch)
        _night("2026-03-02")
        engine = sa.create_engine(url)
        # A customer with a draft and an open ticket on which nothing is held.
        [pick] = _rows(engine, """
            select d.customer_id, min(c.ticket_id) as ticket_id from reminder_drafts d
            join customer_communications c on c.customer_id = d.customer_id and c.is_open
            where c.ticket_id not in (select ticket_id from customer_communications where hold_kind is not null)
            group by d.customer_id order by d.customer_id limit 1""")
        customer, open_ticket = int(pick["customer_id"]), int(pick["ticket_id"])
        numbers = [r["invoice_number"] for r in _rows(
            engine, "select invoice_number from invoice_aging where customer_id = :c and dunning_status = 'dunned'"
                    " and move_type = 'out_invoice' order by invoice_id", c=customer)][:2]
        assert numbers
        held_before = {r["invoice_id"] for r in _rows(
            engine, "select invoice_id from invoice_aging where customer_id = :c and hold_reason = 'dispute'",
            c=customer)}

        client = make_client(url, users_file, zendesk_url=sb.zendesk_url, zendesk_email=harness.ZENDESK_EMAIL,
                             zendesk_api_token=harness.ZENDESK_API_TOKEN)
        assert login(client, "alice").status_code == 303
        sent = {}
        for target, words in (("new", "as a new ticket"), (f"ticket:{open_ticket}", "as a reply")):
            page = client.get(f"/customers/{customer}").text
            ref = re.search(r'name="draft_ref" value="([^"]+)"', page).group(1)
            body = (f"Dear customer,\n\ninvoice {' and '.join(numbers)} is overdue; we write {words}. If you "
                    f"dispute it or think it is wrong, tell us.\n\nAlice, accounts receivable")
            r = client.post(f"/customers/{customer}/zendesk-send", data={
                "csrf_token": csrf_of(page), "draft_ref": ref, "subject": f"Overdue: {numbers[0]}",
                "body": body, "target": target})
            assert r.status_code == 303, r.text[:2000]
            sent[target] = body
        new_ticket = sb.data.zendesk_tickets[-1]["id"]
        actions = _rows(engine, "select kind, ticket_id, author from workbench_actions where customer_id = :c"
                                " order by id", c=customer)
        assert actions == [{"kind": "reminder_sent", "ticket_id": new_ticket, "author": "alice"},
                           {"kind": "reminder_sent", "ticket_id": open_ticket, "author": "alice"}]

        sb.advance_night()
        _night("2026-03-03")

        timeline = _rows(engine, "select ticket_id, text, direction, event, author_role from customer_timeline"
                                 " where customer_id = :c and kind = 'message'", c=customer)
        ours = {(r["ticket_id"], r["text"]): r for r in timeline if r["text"] in sent.values()}
        assert set(ours) == {(new_ticket, sent["new"]), (open_ticket, sent[f"ticket:{open_ticket}"])}
        assert {(r["direction"], r["event"], r["author_role"]) for r in ours.values()} == {
            ("outbound", "outbound", "admin")}
        comms = _rows(engine, "select ticket_id, customer_id, hold_kind, is_dispute, last_inbound_at"
                              " from customer_communications where ticket_id = :t", t=new_ticket)
        assert comms and all(r["customer_id"] == customer and r["hold_kind"] is None and not r["is_dispute"]
                             and r["last_inbound_at"] is None for r in comms)
        assert not [r for r in _rows(engine, "select hold_kind from customer_communications where ticket_id = :t",
                                     t=open_ticket) if r["hold_kind"]]
        held_after = {r["invoice_id"] for r in _rows(
            engine, "select invoice_id from invoice_aging where customer_id = :c and hold_reason = 'dispute'",
            c=customer)}
        assert held_after <= held_before  # our words put nothing on hold
        # And the accountant sees it in the customer's email history.
        page = client.get(f"/customers/{customer}").text
        assert "If you dispute it or think it is wrong, tell us." in page.split('id="emails"')[1]
        engine.dispose()

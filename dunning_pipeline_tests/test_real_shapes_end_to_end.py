"""The real-world shapes of the sandbox, through the real nightly job: each Zendesk scenario
(forwarded mail, bookkeeper in CC, payment claim, German dispute, our own reminder, an internal
note, a merged pair) ends with the hold an accountant expects on its invoice."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest
import sqlalchemy as sa

from dunning_pipeline_tests.conftest import point_at_sandbox

HOLDS = {"dispute": "dispute", "payment_claimed": "payment_claimed", "none": None, None: None}


@pytest.mark.slow
def test_every_zendesk_scenario_holds_its_invoice_as_expected(tmp_path, monkeypatch):
    from dunning_pipeline import definitions as top
    from dunning_pipeline.sandbox import Sandbox

    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2)) as sb:
        url = point_at_sandbox(sb, tmp_path, monkeypatch)
        scenarios = sb.data.zendesk_scenarios
        defs = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs,
            dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        result = defs.resolve_job_def("nightly_dunning").execute_in_process(
            partition_key="2026-03-02", instance=dg.DagsterInstance.ephemeral())
    assert result.success
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        aging = {r.invoice_id: r for r in conn.execute(sa.text(
            "select invoice_id, hold_reason, hold_ticket_id, hold_note, customer_id from invoice_aging"))}
        comms = {r.ticket_id: r for r in conn.execute(sa.text(
            "select ticket_id, customer_id, match_method from customer_communications"))}
    engine.dispose()
    assert set(scenarios) >= {"forwarded_dispute", "bookkeeper_cc", "payment_claim", "german_dispute",
                              "reminder_pending", "internal_note", "merged_pair"}
    got, expected = {}, {}
    for name, case in scenarios.items():
        row = aging[case["invoice_id"]]
        reason = row.hold_reason if row.hold_reason in ("dispute", "payment_claimed") else None
        got[name] = (row.customer_id, reason)
        expected[name] = (case["customer_id"], HOLDS[case["expect"]])
    assert got == expected
    forwarded = comms[scenarios["forwarded_dispute"]["ticket_id"]]
    assert (forwarded.customer_id, forwarded.match_method) == (scenarios["forwarded_dispute"]["customer_id"],
                                                               "sender_email")
    claim = aging[scenarios["payment_claim"]["invoice_id"]]
    assert "check the bank" in claim.hold_note

"""A spoiled record is quarantined, never a crash: the real nightly job, on PostgreSQL (COPY), over a
sandbox with one record of every kind in `data_faults.SPOILED` (text no database can store,
amounts beyond NUMERIC(19,4), dates that do not parse, many2ones that are not [id, name],
invoices without or with a missing partner, reconciliations without or with a missing line), against the same sandbox's clean night.

For each kind: the check named in the fault fails with WARN and the quarantine names the record
and the field; the night still materializes every asset; and every row not related to a spoiled
record (other invoices, customers, tickets) is identical to the clean night's, table by table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline.dunning.communications import id_lists
from dunning_pipeline.sandbox import data_faults
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline_tests.conftest import fresh_pg_database, point_at_sandbox

pytestmark = [pytest.mark.faults, pytest.mark.slow]

AS_OF = date(2026, 3, 2)
SIZE = {"seed": 11, "customers": 24, "invoices": 200}
KINDS = list(data_faults.SPOILED)
# Columns that say when or by which run a row was written, not what it holds.
VOLATILE = {"run_id", "extracted_at", "quarantined_at", "recorded_at", "generated_at", "created_by_run",
            "written_at", "rendered_at", "built_at", "comments_updated_at"}


@dataclass
class Night:
    result: dg.ExecuteInProcessResult
    warehouse: Warehouse
    faults: list[data_faults.DataFault]
    job_assets: set[str]

    def materialized(self) -> set[str]:
        return {e.asset_key.to_user_string() for e in self.result.get_asset_materialization_events()}

    def evaluation(self, asset: str, check: str) -> dg.AssetCheckEvaluation:
        return next(e for e in self.result.get_asset_check_evaluations()
                    if e.asset_key.to_user_string() == asset and e.check_name == check)


def _night(url: str, tmp_path, kinds) -> Night:
    from dunning_pipeline import definitions as top
    from dunning_pipeline import settings
    from dunning_pipeline.sandbox import Sandbox

    with Sandbox(as_of=AS_OF, **SIZE) as sb, pytest.MonkeyPatch.context() as mp:
        point_at_sandbox(sb, tmp_path, mp)
        mp.setenv(settings.DATABASE_URL_VAR, url)  # PostgreSQL: the COPY write path
        faults = data_faults.inject(sb.data, kinds) if kinds else []
        defs = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs,
            dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        job = defs.resolve_job_def("nightly_dunning")
        result = job.execute_in_process(partition_key=AS_OF.isoformat(), raise_on_error=False,
                                        instance=dg.DagsterInstance.ephemeral())
    assets = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    return Night(result, Warehouse(url), faults, assets)


@pytest.fixture(scope="module")
def nights(pg_server_url, tmp_path_factory):
    """The clean night and the spoiled night, each on its own sandbox and PostgreSQL database."""
    with fresh_pg_database(pg_server_url) as clean_url, fresh_pg_database(pg_server_url) as spoiled_url:
        clean = _night(clean_url, tmp_path_factory.mktemp("clean"), None)
        spoiled = _night(spoiled_url, tmp_path_factory.mktemp("spoiled"), KINDS)
        yield clean, spoiled
        clean.warehouse.dispose()
        spoiled.warehouse.dispose()


@pytest.fixture(scope="module")
def quarantine(nights) -> pd.DataFrame:
    return nights[1].warehouse.read("data_quality_quarantine")


@pytest.fixture(scope="module")
def related(nights) -> dict[str, set[int]]:
    """What a spoiled record may change: its own row, and every row of the customers it touches
    (customer-level figures: net balance, highest stage, the customer's tickets)."""
    clean, spoiled = nights
    wh = clean.warehouse
    by_asset: dict[str, set[int]] = {}
    for f in spoiled.faults:
        by_asset.setdefault(f.asset, set()).add(f.record_id)
    invoices = wh.read("odoo_invoices", columns=["id", "partner_id", "commercial_partner_id"])
    lines = wh.read("odoo_receivable_lines", columns=["id", "move_id"])
    comments = wh.read("zendesk_comments", columns=["id", "ticket_id"])
    tickets = wh.read("zendesk_tickets", columns=["id", "requester_id", "organization_id", "email_cc_ids",
                                                  "collaborator_ids"])
    users = wh.read("zendesk_users", columns=["id", "organization_id"])
    comms = wh.read("customer_communications", columns=["ticket_id", "customer_id"])
    moves = by_asset.get("odoo_invoices", set()) | set(
        lines.loc[lines["id"].isin(by_asset.get("odoo_receivable_lines", set())), "move_id"])
    ticket_ids = by_asset.get("zendesk_tickets", set()) | set(
        comments.loc[comments["id"].isin(by_asset.get("zendesk_comments", set())), "ticket_id"]) | set(
        tickets.loc[tickets["requester_id"].isin(by_asset.get("zendesk_users", set())), "id"])
    # A quarantined user matches no ticket: neither as requester, CC or collaborator, nor through
    # their organization.
    held_users = by_asset.get("zendesk_users", set())
    held_orgs = set(users.loc[users["id"].isin(held_users), "organization_id"].dropna().astype(int))
    names_held = pd.Series(False, index=tickets.index)
    for col in ("email_cc_ids", "collaborator_ids"):
        names_held |= id_lists(tickets[col]).map(lambda ids: bool(held_users & set(ids)))
    ticket_ids |= set(tickets.loc[names_held | tickets["organization_id"].isin(held_orgs), "id"])
    ticket_ids |= set(tickets.loc[tickets["requester_id"].isin(
        users.loc[users["organization_id"].isin(held_orgs), "id"]), "id"])
    mine = invoices[invoices["id"].isin(moves)]
    customers = (by_asset.get("odoo_customers", set())
                 | set(mine["commercial_partner_id"].dropna().astype(int))
                 | set(mine["partner_id"].dropna().astype(int))
                 | set(comms.loc[comms["ticket_id"].isin(ticket_ids), "customer_id"].dropna().astype(int)))
    of_customers = invoices["commercial_partner_id"].isin(customers) | invoices["partner_id"].isin(customers)
    return {
        "invoice_id": moves | set(invoices.loc[of_customers, "id"]),
        "customer_id": customers,
        "ticket_id": ticket_ids,
        "line_id": set(lines.loc[lines["move_id"].isin(moves), "id"]),
        "odoo_invoices": moves,
        "odoo_customers": by_asset.get("odoo_customers", set()),
        "odoo_receivable_lines": by_asset.get("odoo_receivable_lines", set()),
        "odoo_reconciliations": by_asset.get("odoo_reconciliations", set()),
        "zendesk_tickets": ticket_ids,
        "zendesk_users": by_asset.get("zendesk_users", set()),
        "zendesk_comments": by_asset.get("zendesk_comments", set()),
    }


def test_the_spoiled_sandbox_holds_twenty_kinds_in_distinct_records(nights):
    faults = nights[1].faults
    assert len(faults) == len(KINDS) >= 20
    assert len({(f.asset, f.record_id) for f in faults}) == len(faults)
    assert {f.asset for f in faults} == {"odoo_invoices", "odoo_customers", "odoo_receivable_lines",
                                         "odoo_reconciliations", "zendesk_tickets", "zendesk_users",
                                         "zendesk_comments"}


def test_the_clean_night_quarantines_nothing(nights):
    clean = nights[0]
    assert clean.result.success
    assert clean.materialized() == clean.job_assets
    assert clean.warehouse.read("data_quality_quarantine").empty


@pytest.mark.parametrize("kind", KINDS)
def test_a_spoiled_record_is_quarantined_and_the_night_goes_on(nights, quarantine, kind):
    clean, spoiled = nights
    fault = next(f for f in spoiled.faults if f.kind == kind)
    # The check that flags it, with WARN: quarantined, not blocking.
    ev = spoiled.evaluation(fault.asset, fault.check)
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN, ev.description
    # The record and the field, named in the quarantine table.
    held = quarantine[(quarantine["asset"] == fault.asset) & (quarantine["record_id"] == fault.record_id)
                      & (quarantine["check_name"] == fault.check)]
    assert len(held) == 1, quarantine[quarantine["record_id"] == fault.record_id]
    assert fault.field in re.split("[;,] ", held["field"].iloc[0]), held.iloc[0].to_dict()
    if fault.check == "fields_parse":  # the value is the parse_error: it names the record and the field
        assert str(fault.record_id) in held["value"].iloc[0] and fault.field in held["value"].iloc[0]
    # The rest of the night completed.
    assert spoiled.result.success
    assert spoiled.materialized() == clean.materialized() == spoiled.job_assets
    # Held back from dunning.
    wh = spoiled.warehouse
    if fault.asset == "odoo_invoices":
        assert fault.record_id not in set(wh.read("receivables", columns=["invoice_id"])["invoice_id"])
    if fault.asset == "odoo_customers":
        assert fault.record_id not in set(wh.read("receivables", columns=["customer_id"])["customer_id"])
    if fault.asset == "odoo_receivable_lines":
        assert fault.record_id not in set(wh.read("instalment_aging", columns=["line_id"])["line_id"].dropna())


def _comparable(wh: Warehouse, table: str, related: dict[str, set[int]]) -> pd.DataFrame:
    frame = wh.read(table)
    frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE or c.endswith("_run_id")])
    if table in related:  # a raw table: the spoiled records themselves
        frame = frame[~frame["id"].isin(related[table])]
    elif "id" in frame.columns:  # a derived table's serial key counts rows written before
        frame = frame.drop(columns="id")
    if table == "odoo_receivable_lines":
        frame = frame[~frame["move_id"].isin(related["invoice_id"])]
    for key in ("invoice_id", "customer_id", "ticket_id", "line_id"):
        if key in frame.columns:
            frame = frame[~frame[key].isin(related[key])]
    if table == "odoo_invoices":
        frame = frame[~frame["id"].isin(related["invoice_id"])]
    return frame.sort_values(list(frame.columns[:3]), kind="stable").reset_index(drop=True)


# Every table the night writes that holds business rows (the quarantine differs by design).
COMPARED = ("odoo_invoices", "odoo_customers", "odoo_receivable_lines", "odoo_reconciliations", "zendesk_tickets",
            "zendesk_users", "zendesk_comments", "receivables", "customer_communications", "invoice_aging",
            "instalment_aging", "dunning_history")


@pytest.mark.parametrize("table", COMPARED)
def test_every_unrelated_row_is_as_on_the_clean_night(nights, related, table):
    clean, spoiled = nights
    before = _comparable(clean.warehouse, table, related)
    after = _comparable(spoiled.warehouse, table, related)
    assert len(before) > 0
    pd.testing.assert_frame_equal(after, before, check_dtype=False)

"""The real nightly job on the sandbox materializes the timeline, the charges and the drafts;
the drafts go through an LLM stand-in bound from the environment, like an operator sets it up."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline import settings
from dunning_pipeline.dunning.policy import DEFAULT_POLICY_FILE
from dunning_pipeline.warehouse.store import Warehouse

from .llm_standin import StandIn

AS_OF = date(2026, 3, 2)
LATE_PAYMENT = """late_payment:
  default:
    interest: {reference_rate_percent: 2.15, points: 9}
    fee: {amounts: {EUR: 40}}
"""


def _echo_with_greeting(request: dict) -> str:
    """Well-behaved for French drafts (the template's body and one personal sentence); for the
    others it invents an amount, which must be rejected."""
    system, user = (m["content"] for m in request["messages"])
    body = user.split("Draft:\n", 1)[1].split("\n\nRecent conversation, oldest first:", 1)[0]
    if "(fr)" not in system:
        return body + "\nP.S. We will also send a 5.00 EUR voucher."
    return body + "\nAu plaisir de poursuivre notre collaboration.\n"


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from dunning_pipeline import definitions as top
    from dunning_pipeline.sandbox import Sandbox

    tmp = tmp_path_factory.mktemp("night")
    policy = tmp / "policy.yaml"
    shipped = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    assert "\nlate_payment: {}\n" in shipped  # off in the shipped file: switched on here
    policy.write_text(shipped.replace("\nlate_payment: {}\n", "\n" + LATE_PAYMENT), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp, StandIn(_echo_with_greeting) as llm, \
            Sandbox(seed=7, customers=30, invoices=300, as_of=AS_OF) as sb:
        for name, value in sb.env.items():
            mp.setenv(name, value)
        url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
        mp.setenv(settings.DATABASE_URL_VAR, url)
        mp.setenv(settings.POLICY_FILE_VAR, str(policy))
        mp.setenv("DUNNING_TIMEZONE", "UTC")
        mp.setenv("DUNNING_LLM_URL", llm.url)
        mp.setenv("DUNNING_LLM_MODEL", "stand-in")
        mp.setenv("DUNNING_LLM_API_KEY", "sk-night-secret")
        defs = dg.Definitions.merge(
            top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
            top.reporting_part.defs, dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
        result = defs.resolve_job_def("nightly_dunning").execute_in_process(
            partition_key=AS_OF.isoformat(), instance=dg.DagsterInstance.ephemeral())
        asked = len(llm.requests)
    wh = Warehouse(url)
    yield result, wh, asked
    wh.dispose()


def _metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_nightly_job_materializes_the_reporting_assets(night):
    result, wh, _ = night
    assert result.success
    for asset in ("customer_timeline", "late_payment_charges", "reminder_drafts"):
        md = _metadata(result, asset)
        assert md["dagster/row_count"] == wh.count(asset) and md["as_of_date"] == AS_OF.isoformat()
    charges = _metadata(result, "late_payment_charges")
    assert "11.15" in charges["preview"] and "| EUR |" in charges["totals"]
    md = _metadata(result, "reminder_drafts")
    assert "| fr_FR |" in md["by_language"] and md["sample_draft"].startswith("**")


def test_timeline_holds_every_matched_message_and_every_history_row(night):
    _, wh, _ = night
    tl = wh.read("customer_timeline")
    comms = wh.read("customer_communications")
    matched = set(comms.loc[comms["customer_id"].notna(), "ticket_id"])
    comments = wh.read("zendesk_comments")
    assert (tl["kind"] == "message").sum() == comments["ticket_id"].isin(matched).sum()
    assert (tl["kind"] == "dunning").sum() == wh.count("dunning_history")
    assert (tl.groupby("customer_id")["seq"].agg(lambda s: list(s) == list(range(1, len(s) + 1)))).all()
    views = wh.read("customer_timeline_views")
    assert set(views["customer_id"]) == set(tl["customer_id"]) and views["html"].str.startswith("<section").all()


def test_drafts_in_the_customers_languages_with_interest_and_the_llm_checked(night):
    _, wh, asked = night
    drafts = wh.read("reminder_drafts")
    aging = wh.read("invoice_aging")
    assert len(drafts) and (drafts["status"] == "draft").all()
    assert set(drafts["action"]) <= {"email", "letter"}
    assert {"fr", "en"} <= {loc[:2] for loc in drafts["locale"]}
    assert asked == len(drafts)  # the stand-in was asked once per draft, through the EnvVar binding
    french = drafts[drafts["locale"].str.startswith("fr")]
    assert (french["source"] == "llm").all() and french["body"].str.contains("poursuivre notre collaboration").all()
    assert (french["source_note"] == "suggestion accepted: every invoice number and amount kept, no other amount").all()
    others = drafts[~drafts["locale"].str.startswith("fr")]
    assert len(others) and (others["source"] == "template").all()
    assert others["source_note"].str.contains("amount(s) not in the template: 5.00", regex=False).all()
    assert (others["body"] == others["template_body"]).all()
    assert drafts["llm_prompt"].notna().all() and not drafts["llm_prompt"].str.contains("sk-night-secret").any()
    # every demanded invoice is the customer's own and is dunned, none disputed
    by_id = aging.set_index(["company_id", "invoice_number"])  # numbers are unique per company only
    for r in drafts.itertuples():
        for number in json.loads(r.invoice_numbers):
            assert by_id.loc[(r.company_id, number), "customer_id"] == r.customer_id
            assert by_id.loc[(r.company_id, number), "dunning_status"] == "dunned"
    # statutory interest from the policy file shows in the overdue drafts
    charges = wh.read("late_payment_charges")
    assert len(charges) and (charges["interest_rate_percent"] == "11.15").all()
    overdue = drafts[drafts["interest_total"].notna()]
    assert len(overdue) and overdue["template_body"].str.contains("Verzugszinsen|interest|intérêts").all()
    assert (drafts["as_of_date"] == pd.Timestamp(AS_OF)).all()


def test_the_reporting_assets_are_in_the_nightly_job_with_group_owner_and_lineage():
    from dunning_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    nightly = {k.to_user_string() for k in defs.resolve_job_def("nightly_dunning").asset_layer.executable_asset_keys}
    for name in ("customer_timeline", "late_payment_charges", "reminder_drafts"):
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "reporting" and node.owners == ["team:finance-data"] and node.description
        assert name in nightly
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("reminder_drafts")).parent_keys}
    assert {"customer_timeline", "late_payment_charges", "invoice_aging", "receivables"} <= parents


def test_the_drafts_read_only_their_customers_yet_equal_drafts_built_from_every_table_whole(night):
    # reminder_drafts reads the rows of the customers that get a draft today, nothing else: the
    # same drafts as built from the whole of invoice_aging, receivables, timeline and instalments.
    from dunning_pipeline.reporting import drafts as drafts_mod

    _, wh, _ = night
    recv = wh.read("receivables").drop_duplicates(["customer_id", "company_id"])
    aging = wh.read("invoice_aging")
    assert aging["customer_id"].nunique() > len(drafts_mod.draft_customer_ids(aging)) > 0  # a real narrowing
    whole = drafts_mod.build_drafts(aging, recv, wh.read("customer_timeline"), AS_OF,
                                    charges=wh.read("late_payment_charges"), instalments=wh.read("instalment_aging"))
    written = wh.read("reminder_drafts")
    assert len(whole) == len(written)
    for column in ("customer_id", "company_id", "subject", "invoice_numbers", "amounts", "under_review"):
        assert whole[column].tolist() == written[column].tolist(), column
    assert whole["body"].tolist() == written["template_body"].tolist()

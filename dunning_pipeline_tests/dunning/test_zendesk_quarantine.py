"""Zendesk records the data-quality checks quarantine are left out of `customer_communications`:
a held ticket is not matched, a held comment's words hold nothing, a held user matches no ticket;
each is listed in the asset's metadata. Pure core on the test dataset, then a real night over a
sandbox with spoiled Zendesk records."""

from __future__ import annotations

from datetime import UTC, date

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline.dunning.communications import build_communications, leave_out_quarantined
from dunning_pipeline.dunning.policy import load_policy
from dunning_pipeline_tests.conftest import point_at_sandbox
from dunning_pipeline_tests.dunning import dataset as D

AS_OF = date(2026, 3, 2)


def _held(*records: tuple[str, int]) -> pd.DataFrame:
    return pd.concat([D.quarantine(), pd.DataFrame([
        {"asset": a, "record_id": r, "check_name": "fields_parse", "field": "body", "value": "x",
         "reason": "not valid UTF-8", "run_id": "q", "quarantined_at": pd.Timestamp("2026-03-02")}
        for a, r in records])], ignore_index=True)


def _communications(quarantine: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    tickets, users, comments, excluded = leave_out_quarantined(D.tickets(), D.users(), D.comments(), quarantine)
    return build_communications(tickets, users, comments, D.customers(), D.invoices(), load_policy(), AS_OF,
                                UTC), excluded


def test_nothing_zendesk_quarantined_leaves_everything_in():
    comms, excluded = _communications(D.quarantine())  # only Odoo records held
    assert excluded.empty and list(excluded.columns) == ["asset", "record_id", "ticket_id", "check_name", "reason"]
    assert 9001 in set(comms["ticket_id"])
    assert (comms.loc[comms["ticket_id"] == 9005, "invoice_number"] == "INV/2026/00105").any()
    assert comms.loc[comms["ticket_id"] == 9005, "is_dispute"].any()  # the words of comment 4


def test_a_quarantined_comments_words_make_no_dispute_and_its_ticket_stays():
    comms, excluded = _communications(_held(("zendesk_comments", 4)))
    on_9005 = comms[comms["ticket_id"] == 9005]
    assert len(on_9005) and not on_9005["is_dispute"].any() and on_9005["hold_kind"].isna().all()
    assert on_9005["customer_id"].notna().all()
    assert list(excluded[["asset", "record_id", "ticket_id"]].itertuples(index=False, name=None)) == [
        ("zendesk_comments", 4, 9005)]


def test_a_quarantined_ticket_is_not_matched():
    clean, _ = _communications(D.quarantine())
    comms, excluded = _communications(_held(("zendesk_tickets", 9001)))
    assert 9001 not in set(comms["ticket_id"])
    assert set(comms["ticket_id"]) == set(clean["ticket_id"]) - {9001}
    assert excluded["record_id"].tolist() == [9001] and excluded["ticket_id"].tolist() == [9001]


def test_a_quarantined_user_matches_no_ticket_and_their_words_hold_nothing():
    clean, _ = _communications(D.quarantine())
    assert clean.loc[clean["ticket_id"] == 9003, "customer_id"].notna().all()
    comms, excluded = _communications(_held(("zendesk_users", 7003)))
    beta = comms[comms["ticket_id"] == 9003]
    assert (beta["match_method"] == "unmatched").all() and beta["hold_kind"].isna().all()
    assert excluded[["asset", "record_id"]].values.tolist() == [["zendesk_users", 7003]]
    assert excluded["ticket_id"].isna().all()


def test_a_record_held_by_several_checks_is_listed_once_with_every_check_and_reason():
    held = _held(("zendesk_users", 7003), ("zendesk_comments", 4), ("zendesk_comments", 2))
    again = held.iloc[-3:-1].assign(check_name=["email_format", "body_length"], reason=["malformed email", "too long"])
    _, excluded = _communications(pd.concat([held, again, held.iloc[-3:-2]], ignore_index=True))  # 7003 twice the same
    # in order of asset and record; a comment with the ticket it is on (2: 9001, 4: 9005)
    assert excluded.drop(columns="ticket_id").to_dict("records") == [
        {"asset": "zendesk_comments", "record_id": 2, "check_name": "fields_parse", "reason": "not valid UTF-8"},
        {"asset": "zendesk_comments", "record_id": 4, "check_name": "body_length, fields_parse",
         "reason": "not valid UTF-8; too long"},
        {"asset": "zendesk_users", "record_id": 7003, "check_name": "email_format, fields_parse",
         "reason": "not valid UTF-8; malformed email"}]
    assert excluded["ticket_id"].iloc[:2].tolist() == [9001, 9005] and pd.isna(excluded["ticket_id"].iloc[2])


def test_a_comment_of_no_known_author_stays_when_users_are_held():
    comments = pd.concat([D.comments(), D.comments().iloc[[3]].assign(id=7, author_id=None)], ignore_index=True)
    _, _, kept, _ = leave_out_quarantined(D.tickets(), D.users(), comments, _held(("zendesk_users", 7003)))
    assert 7 in set(kept["id"])


def _night(day: str):
    from dunning_pipeline import definitions as top

    defs = dg.Definitions.merge(
        top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
        dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
    return defs.resolve_job_def("nightly_dunning").execute_in_process(
        partition_key=day, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


@pytest.mark.slow
def test_a_spoiled_zendesk_ticket_and_comment_are_left_out_of_the_night(tmp_path, monkeypatch):
    from dunning_pipeline.sandbox import Sandbox, data_faults
    from dunning_pipeline.warehouse.store import Warehouse

    with Sandbox(seed=7, customers=30, invoices=300, as_of=AS_OF) as sb:
        url = point_at_sandbox(sb, tmp_path, monkeypatch)
        # Two spoiled comments: the picker may spoil the first on the spoiled ticket itself.
        ticket_fault, *comment_faults = data_faults.inject(
            sb.data, ["ticket_subject_lone_surrogate", "comment_body_lone_surrogate", "comment_body_invalid_utf8"])
        result = _night(AS_OF.isoformat())
    assert result.success
    wh = Warehouse(url)
    held = wh.read("data_quality_quarantine")
    faults = [ticket_fault, *comment_faults]
    assert {(f.asset, f.record_id) for f in faults} <= set(zip(held["asset"], held["record_id"], strict=True))
    comms = wh.read("customer_communications")
    ticket_of = wh.read("zendesk_comments").set_index("id")["ticket_id"]
    clean_tickets = {int(ticket_of[f.record_id]) for f in comment_faults} - {ticket_fault.record_id}
    assert clean_tickets  # a ticket only a comment of which is held
    assert ticket_fault.record_id in set(wh.read("zendesk_tickets")["id"])  # extracted, but held back
    assert ticket_fault.record_id not in set(comms["ticket_id"])
    assert clean_tickets <= set(comms["ticket_id"])
    assert comms["customer_id"].notna().sum() > 10
    [md] = [e.step_materialization_data.materialization.metadata for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("customer_communications")]
    assert md["excluded_count"].value == len(faults)
    for f in faults:
        assert f.asset in md["excluded"].value and str(f.record_id) in md["excluded"].value
    wh.dispose()

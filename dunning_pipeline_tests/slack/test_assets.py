"""`weekly_slack_alert` materialized by Dagster with its resources pointed at the sandbox."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from dunning_pipeline.settings import SettingsError
from dunning_pipeline.slack.assets import weekly_slack_alert
from dunning_pipeline.slack.digest import FIRST_ALERT, Links, Period, render_digest
from dunning_pipeline.slack.resource import SlackResource
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline_tests.slack.history import alert_job, frame, row

MAR2 = date(2026, 3, 2)


def _history(url: str, customers: int = 3) -> Warehouse:
    wh = Warehouse(url)
    wh.ensure_schema()
    wh.append("dunning_history", frame([
        row(i, i, f"Customer {i}", "reminder_2", "call", MAR2 - timedelta(days=i % 7),
            amount=f"{i}000.00", due=MAR2 - timedelta(days=20))
        for i in range(1, customers + 1)
    ]))
    return wh


def _slack(sandbox, **overrides) -> SlackResource:
    fields = {"bot_token": sandbox.env["SLACK_BOT_TOKEN"], "channel": "#dunning",
              "api_url": sandbox.slack_api_url}
    return SlackResource(**{**fields, **overrides})


def _materialize(url, slack, as_of=MAR2, instance=None):
    """A run of the weekly_slack_alert job (the one job that posts), as its schedule launches it."""
    return alert_job({"warehouse": WarehouseResource(database_url=url), "slack": slack}).execute_in_process(
        tags={"dunning/as_of": as_of.isoformat()}, raise_on_error=False, instance=instance)


def test_materialize_all_renders_the_alert_but_never_posts_it(warehouse_url, sandbox):
    _history(warehouse_url)
    result = dg.materialize([weekly_slack_alert], resources={
        "warehouse": WarehouseResource(database_url=warehouse_url), "slack": _slack(sandbox)},
        tags={"dunning/as_of": MAR2.isoformat()})
    meta = _metadata(result)
    assert sandbox.slack_messages == [] and meta["dry_run"] is True and meta["messages"] >= 1
    assert "not of the weekly_slack_alert job: rendered, not posted" in meta["not_posted_because"]
    assert _materialize(warehouse_url, _slack(sandbox)).success  # its own job posts it
    assert len(sandbox.slack_messages) >= 1


def _metadata(result) -> dict:
    mat = result.asset_materializations_for_node("post_weekly_slack_alert")[0]
    return {k: v.value for k, v in mat.metadata.items()}


def _failure(result):
    return next(e for e in result.all_events if e.is_step_failure).step_failure_data


def test_materialize_posts_the_alert_once_and_a_rerun_posts_nothing(warehouse_url, sandbox):
    _history(warehouse_url)
    first = _materialize(warehouse_url, _slack(sandbox))
    assert first.success
    meta = _metadata(first)
    sent = sandbox.slack_messages
    assert len(sent) == 1 and sent[0]["channel"] == "C0SBXDUNN01"
    assert (meta["status"], meta["period_end"], meta["history_rows"], meta["customers_changed"]) == \
        ("posted", "2026-03-02", 3, 3)
    assert (meta["messages"], meta["posted_this_run"], meta["message_ts"]) == (1, 1, sent[0]["ts"])
    assert "**Customer 3**" in meta["preview"]

    again = _materialize(warehouse_url, _slack(sandbox))
    assert again.success
    meta = _metadata(again)
    assert (meta["status"], meta["posted_this_run"], meta["posted_before"]) == ("already_delivered", 0, 1)
    assert len(sandbox.slack_messages) == 1


def test_a_run_failing_half_way_is_completed_by_the_next_run(sqlite_url, sandbox):
    _history(sqlite_url, customers=150)  # long enough for several messages
    sandbox.faults.set("slack", "slow", path="chat.postMessage", delay=0)  # the first message passes
    sandbox.faults.set("slack", "slack_error", path="chat.postMessage", error="fatal_error")
    failed = _materialize(sqlite_url, _slack(sandbox))
    assert not failed.success
    failure = _failure(failed)
    assert failure.user_failure_data.metadata["slack_error"].value == "fatal_error"
    assert len(sandbox.slack_messages) == 1

    retried = _materialize(sqlite_url, _slack(sandbox))
    meta = _metadata(retried)
    sent = sandbox.slack_messages
    assert meta["messages"] >= 3
    assert (meta["posted_before"], meta["posted_this_run"]) == (1, meta["messages"] - 1)
    assert len(sent) == meta["messages"]
    assert len({m["ts"] for m in sent}) == len(sent)
    assert all(m["thread_ts"] == sent[0]["ts"] for m in sent[1:])
    assert meta["message_ts"] == ", ".join(m["ts"] for m in sent[1:])


SECRET = "xoxb-do-not-print-0000000000"


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.mark.parametrize(("overrides", "fault", "expected"), [
    ({"channel": "#no-such-channel"}, None, "Slack channel '#no-such-channel' (SLACK_CHANNEL) was not found"),
    ({"channel": "#private-finance"}, None, "invite it in that channel with /invite @<your bot>"),
    ({"channel": "#old-dunning"}, None, "'#old-dunning' (SLACK_CHANNEL) is archived (is_archived)"),
    ({"bot_token": SECRET}, None, "Slack rejected the bot token (invalid_auth): re-issue the bot token"),
    ({}, "token_revoked", "Slack rejected the bot token (token_revoked): re-issue the bot token"),
    ({}, "missing_scope", "The bot token lacks the scope chat:write (missing_scope)"),
])
def test_slack_errors_fail_the_run_with_what_to_fix_and_never_the_token(sqlite_url, sandbox, instance,
                                                                       overrides, fault, expected):
    _history(sqlite_url)
    if fault:
        sandbox.faults.set("slack", "slack_error", path="chat.postMessage", error=fault)
    result = _materialize(sqlite_url, _slack(sandbox, **overrides), instance=instance)
    assert not result.success
    failure = _failure(result)
    assert expected in failure.user_failure_data.description
    assert failure.error.cls_name == "Failure"
    # Nothing the run recorded (events, logs, errors, metadata) holds the token.
    dump = "\n".join(str(r) for r in instance.all_logs(result.run_id))
    assert expected in dump
    for token in (SECRET, sandbox.env["SLACK_BOT_TOKEN"]):
        assert token not in dump
    assert sandbox.slack_messages == []


def test_a_dry_run_puts_the_messages_in_the_metadata_and_posts_nothing(sqlite_url, sandbox, monkeypatch):
    wh = _history(sqlite_url)
    for slack in (_slack(sandbox, dry_run=True), _slack(sandbox)):
        if not slack.dry_run:
            monkeypatch.setenv("SLACK_DRY_RUN", "true")
        result = _materialize(sqlite_url, slack)
        meta = _metadata(result)
        expected = render_digest(wh.read("dunning_history", order_by=["as_of_date", "id"]),
                                 Period(end=MAR2, start=date(2026, 2, 27), summary=FIRST_ALERT), links=Links(),
                                 last_contact={})  # the table exists, empty
        assert (meta["status"], meta["dry_run"]) == ("dry_run", True)
        assert meta["rendered_messages"] == [m.to_dict() for m in expected]
    assert sandbox.slack_messages == [] and sandbox.requests["slack"] == []
    assert wh.count("alert_deliveries") == 0
    monkeypatch.setenv("SLACK_DRY_RUN", "maybe")
    with pytest.raises(SettingsError, match="SLACK_DRY_RUN must be true or false"):
        _slack(sandbox).is_dry_run()


def test_lines_link_to_odoo_and_zendesk_and_show_the_last_contact(sqlite_url, sandbox, monkeypatch):
    monkeypatch.setenv("ODOO_URL", sandbox.odoo_url)
    monkeypatch.setenv("ZENDESK_URL", sandbox.zendesk_url)
    wh = _history(sqlite_url, customers=1)
    wh.append("dunning_history", frame([row(9, 2, "Disputer", "call", "call", MAR2, reason="hold",
                                            hold="dispute", ticket=4242, due=MAR2 - timedelta(days=20))]))
    contacts = pd.DataFrame({
        "ticket_id": [4242, 4243], "customer_id": [1, 1], "match_method": ["email", "email"],
        "is_open": [True, False], "is_dispute": [False, False],
        "customer_last_inbound_at": [datetime(2026, 2, 26, 15, 0), datetime(2026, 3, 5, 9, 0)],
        "customer_last_outbound_at": [datetime(2026, 2, 27, 10, 30), None],
        "as_of_date": [pd.Timestamp(MAR2)] * 2,
    })
    wh.append("customer_communications", contacts)
    assert _materialize(sqlite_url, _slack(sandbox)).success
    text = str([m["blocks"] for m in sandbox.slack_messages])
    assert f"<{sandbox.odoo_url}/odoo/action-account.action_move_out_invoice_type/1|INV/2026/00001>" in text
    assert f"ticket <{sandbox.zendesk_url}/agent/tickets/4242|#4242>" in text
    # The newest contact up to the period end (the one on 5 March is after it).
    assert ("*Customer 1* · Call: phone the customer · 1 invoice · *1,000.00 EUR* · 20 days overdue on"
            " 2026-03-02 · last contact 2026-02-27") in text
    assert ("*Disputer* · on hold at Call (disputed) · 1 invoice · *100.00 EUR* · 20 days overdue on"
            " 2026-03-02 · no contact on record") in text

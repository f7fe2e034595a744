"""`weekly_slack_alert` with SLACK_ATTACH_CHART: the aging chart of the last report goes into the
alert's thread once; without the setting, or before any report, nothing is uploaded."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dunning_pipeline.slack.resource import SlackResource
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline_tests.slack.history import alert_job
from dunning_pipeline_tests.slack.test_assets import _history

MAR2 = date(2026, 3, 2)


def _report_buckets(wh) -> None:
    wh.append("ar_aging_report_buckets", pd.DataFrame({
        "company_id": [1, 1], "customer_id": [1, 1], "basis": ["company", "company"], "currency": ["EUR", "EUR"],
        "aging_bucket": ["current", "1-30"], "bucket_order": [0, 1], "amount": [1_000_000, 2_500_000],
        "items": [1, 2], "as_of_date": pd.Timestamp(MAR2)}))


def _run(url, sandbox, monkeypatch, attach: str | None):
    if attach is None:
        monkeypatch.delenv("SLACK_ATTACH_CHART", raising=False)
    else:
        monkeypatch.setenv("SLACK_ATTACH_CHART", attach)
    slack = SlackResource(bot_token=sandbox.env["SLACK_BOT_TOKEN"], channel="#dunning", api_url=sandbox.slack_api_url)
    result = alert_job({"warehouse": WarehouseResource(database_url=url), "slack": slack}).execute_in_process(
        tags={"dunning/as_of": MAR2.isoformat()})
    mat = result.asset_materializations_for_node("post_weekly_slack_alert")[0]
    return {k: v.value for k, v in mat.metadata.items()}


def test_the_chart_goes_into_the_thread_once(sqlite_url, sandbox, monkeypatch):
    wh = _history(sqlite_url)
    _report_buckets(wh)
    first = _run(sqlite_url, sandbox, monkeypatch, "true")
    (shared,) = sandbox.slack.files
    assert first["aging_chart"] == f"uploaded ({shared['id']})"
    assert shared["thread_ts"] == sandbox.slack_messages[0]["ts"] and shared["name"] == "ar_aging_2026-03-02.png"
    assert shared["size"] > 1000
    again = _run(sqlite_url, sandbox, monkeypatch, "true")
    assert again["aging_chart"] == f"already_uploaded ({shared['id']})"
    assert len(sandbox.slack.files) == 1 and len(sandbox.slack_messages) == 1


def test_no_upload_when_not_enabled_or_no_report(sqlite_url, sandbox, monkeypatch):
    _history(sqlite_url)
    meta = _run(sqlite_url, sandbox, monkeypatch, None)
    assert "aging_chart" not in meta and sandbox.slack.files == []
    meta = _run(sqlite_url, sandbox, monkeypatch, "yes")
    assert meta["aging_chart"] == "no report yet" and sandbox.slack.files == []

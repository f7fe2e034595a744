"""The aging chart attached to the weekly alert: Slack's three-step upload against the sandbox,
and exactly once per alert through the delivery ledger."""

from __future__ import annotations

import hashlib
import logging
from datetime import date

import pytest
import requests

from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.attachment import attach_file
from dunning_pipeline.slack.delivery import SlackDeliveryError, SlackPoster

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
LOG = logging.getLogger("test")


def _poster(sandbox) -> SlackPoster:
    return SlackPoster(sandbox.env["SLACK_BOT_TOKEN"], api_url=sandbox.slack_api_url)


def test_a_file_is_uploaded_in_three_steps_and_shared_in_the_thread(sandbox):
    poster = _poster(sandbox)
    top = poster.post("weekly alert", [], channel="#dunning")
    file_id = poster.upload(PNG, filename="ar_aging.png", title="Aging", channel_id=top.channel_id,
                            thread_ts=top.ts)
    methods = [r["path"].rsplit("/", 1)[-1] if r["path"].startswith("/api/") else "upload"
               for r in sandbox.requests["slack"]]
    assert methods == ["chat.postMessage", "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    (shared,) = sandbox.slack.files
    assert shared["id"] == file_id and shared["name"] == "ar_aging.png" and shared["title"] == "Aging"
    assert (shared["size"], shared["sha256"]) == (len(PNG), hashlib.sha256(PNG).hexdigest())
    assert (shared["channel"], shared["thread_ts"]) == (top.channel_id, top.ts)
    listed = requests.get(sandbox.slack_api_url + "_sandbox/files", timeout=5).json()["files"]
    assert [f["id"] for f in listed] == [file_id]


def test_the_sandbox_refuses_what_slack_refuses(sandbox):
    api, auth = sandbox.slack_api_url, {"Authorization": f"Bearer {sandbox.env['SLACK_BOT_TOKEN']}"}
    bad = requests.post(api + "files.getUploadURLExternal", data={"filename": "x.png"}, headers=auth, timeout=5).json()
    assert bad == {"ok": False, "error": "invalid_arguments", "response_metadata": bad["response_metadata"]}
    issued = requests.post(api + "files.getUploadURLExternal", data={"filename": "x.png", "length": "10"},
                           headers=auth, timeout=5).json()
    # Completing before the bytes arrived, or with bytes of another length, fails.
    files = f'[{{"id": "{issued["file_id"]}"}}]'
    early = requests.post(api + "files.completeUploadExternal", data={"files": files}, headers=auth, timeout=5).json()
    assert early["error"] == "file_not_found"
    assert requests.post(issued["upload_url"], data=b"123", timeout=5).status_code == 400
    assert requests.post(issued["upload_url"], data=b"0123456789", timeout=5).text == "OK - 10"
    wrong = requests.post(api + "files.completeUploadExternal", data={"files": files, "channel_id": "C0SBXPRIV04"},
                          headers=auth, timeout=5).json()
    assert wrong["error"] == "not_in_channel"
    done = requests.post(api + "files.completeUploadExternal", data={"files": files, "channel_id": "C0SBXDUNN01"},
                         headers=auth, timeout=5).json()
    assert done["ok"] is True and done["files"][0]["id"] == issued["file_id"]
    again = requests.post(api + "files.completeUploadExternal", data={"files": files}, headers=auth, timeout=5).json()
    assert again["error"] == "file_not_found"  # shared once
    no_token = requests.post(api + "files.getUploadURLExternal", data={"filename": "x", "length": "1"}, timeout=5)
    assert no_token.json()["error"] == "not_authed"
    assert len(sandbox.slack.files) == 1


def _delivered(wh, sandbox, period_end: date) -> ledger.Delivery:
    cover = ledger.Coverage(period_end)
    delivery = ledger.create_delivery(wh, alert="weekly_dunning", cover=cover, period_start=None, id_max=None,
                                      history_rows=1, invoices=1, customers=1, channel="#dunning",
                                      messages=[{"text": "alert", "blocks": []}], run_id="r1")
    posted = _poster(sandbox).post("alert", [], channel="#dunning")
    ledger.mark_posted(wh, "weekly_dunning", period_end, 1, run_id="r1", ts=posted.ts,
                       channel_id=posted.channel_id, thread_ts=None)
    return delivery


def test_the_chart_is_attached_once_however_often_the_alert_runs(warehouse, sandbox):
    day = date(2026, 3, 2)
    _delivered(warehouse, sandbox, day)
    args = dict(alert="weekly_dunning", period_end=day, content=PNG, filename="ar_aging.png", title="Aging",
                is_run_active=lambda run_id: False, log=LOG)
    first = attach_file(warehouse, _poster(sandbox), run_id="r1", **args)
    again = attach_file(warehouse, _poster(sandbox), run_id="r2", **args)
    assert first.status == "uploaded" and again.status == "already_uploaded"
    assert again.file_id == first.file_id
    (shared,) = sandbox.slack.files
    assert shared["thread_ts"] == sandbox.slack_messages[0]["ts"]
    row = warehouse.read("alert_delivery_files")
    assert row[["status", "file_id", "size"]].values.tolist() == [["posted", first.file_id, len(PNG)]]


def test_a_refused_upload_is_released_and_the_retry_uploads_it(warehouse, sandbox):
    day = date(2026, 3, 2)
    _delivered(warehouse, sandbox, day)
    args = dict(alert="weekly_dunning", period_end=day, content=PNG, filename="ar_aging.png", title="Aging",
                is_run_active=lambda run_id: False, log=LOG)
    sandbox.faults.set("slack", "slack_error", count=1, error="missing_scope")
    with pytest.raises(SlackDeliveryError) as err:
        attach_file(warehouse, _poster(sandbox), run_id="r1", **args)
    assert err.value.code == "missing_scope" and "files:write" in str(err.value)
    assert warehouse.read("alert_delivery_files")["status"].tolist() == ["pending"]
    retry = attach_file(warehouse, _poster(sandbox), run_id="r2", **args)
    assert retry.status == "uploaded" and len(sandbox.slack.files) == 1


def test_no_chart_without_a_delivered_alert(warehouse, sandbox):
    out = attach_file(warehouse, _poster(sandbox), alert="weekly_dunning", period_end=date(2026, 3, 2),
                      content=PNG, filename="a.png", title="a", run_id="r1", is_run_active=lambda r: False, log=LOG)
    assert out.status == "no_message" and sandbox.slack.files == []

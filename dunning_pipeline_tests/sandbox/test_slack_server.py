"""The sandbox's Slack: chat.postMessage accepted and recorded, or refused as Slack refuses it."""

from __future__ import annotations

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler


def post(sb, payload, token=None, **kwargs):
    token = sb.env["SLACK_BOT_TOKEN"] if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = requests.post(sb.slack_api_url + "chat.postMessage", json=payload, headers=headers, timeout=10, **kwargs)
    return resp


def section(text):
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_post_message_is_accepted_and_recorded(sandbox):
    first = post(sandbox, {"channel": "#dunning", "text": "Weekly dunning", "blocks": [section("*hi*")]}).json()
    second = post(sandbox, {"channel": "C0SBXALRT02", "text": "run failed"}).json()
    assert first["ok"] and first["channel"] == "C0SBXDUNN01" and first["message"]["text"] == "Weekly dunning"
    assert second["ok"] and float(second["ts"]) > float(first["ts"])
    thread = post(sandbox, {"channel": "dunning", "text": "more", "thread_ts": first["ts"]}).json()
    assert thread["message"]["thread_ts"] == first["ts"]
    assert [m["ts"] for m in sandbox.slack_messages] == [first["ts"], second["ts"], thread["ts"]]
    assert sandbox.slack_messages[0]["blocks"] == [section("*hi*")]
    assert sandbox.slack_messages[0]["channel_name"] == "#dunning"
    served = requests.get(sandbox.slack_api_url + "_sandbox/messages", timeout=10).json()["messages"]
    assert [m["ts"] for m in served] == [m["ts"] for m in sandbox.slack_messages]


@pytest.mark.parametrize("payload, token, error", [
    ({"channel": "#dunning", "text": "x"}, "", "not_authed"),
    ({"channel": "#dunning", "text": "x"}, "xoxb-wrong", "invalid_auth"),
    ({"channel": "#nowhere", "text": "x"}, None, "channel_not_found"),
    ({"text": "x"}, None, "channel_not_found"),
    ({"channel": "#old-dunning", "text": "x"}, None, "is_archived"),
    ({"channel": "#private-finance", "text": "x"}, None, "not_in_channel"),
    ({"channel": "#dunning"}, None, "no_text"),
    ({"channel": "#dunning", "blocks": [section("x")] * 51}, None, "invalid_blocks"),
    ({"channel": "#dunning", "blocks": [section("x" * 3001)]}, None, "invalid_blocks"),
    ({"channel": "#dunning", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
     None, "invalid_blocks"),
    ({"channel": "#dunning", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
     None, "invalid_blocks"),
    ({"channel": "#dunning", "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]},
     None, "invalid_blocks"),
    ({"channel": "#dunning", "blocks": [{"type": "banner"}]}, None, "invalid_blocks"),
    ({"channel": "#dunning", "blocks": "[not json"}, None, "invalid_blocks_format"),
])
def test_refusals(sandbox, payload, token, error):
    resp = post(sandbox, payload, token=token)
    assert resp.status_code == 200 and resp.json()["ok"] is False and resp.json()["error"] == error
    assert sandbox.slack_messages == []


def test_limits_are_inclusive(sandbox):
    blocks = [section("x" * 3000)] + [section("y")] * 48 + [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}]
    assert post(sandbox, {"channel": "#dunning", "text": "t", "blocks": blocks}).json()["ok"]
    long = post(sandbox, {"channel": "#dunning", "text": "z" * 40_001}).json()
    assert long["ok"] and long["response_metadata"]["warnings"] == ["message_truncated"]


def test_form_encoded_post_with_token_field(sandbox):
    resp = requests.post(sandbox.slack_api_url + "chat.postMessage", timeout=10,
                         data={"token": sandbox.env["SLACK_BOT_TOKEN"], "channel": "#dunning",
                               "text": "form", "blocks": '[{"type": "divider"}]'})
    assert resp.json()["ok"] and sandbox.slack_messages[-1]["blocks"] == [{"type": "divider"}]
    assert "token" not in sandbox.slack_messages[-1]


def test_faults_and_slack_sdk_retries(sandbox):
    client = WebClient(token=sandbox.env["SLACK_BOT_TOKEN"], base_url=sandbox.slack_api_url,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    assert client.auth_test()["user_id"]
    sandbox.faults.set("slack", "rate_limit", retry_after=0)
    sent = client.chat_postMessage(channel="#dunning", text="after a 429")
    assert sent["ok"] and [e["status"] for e in sandbox.requests["slack"][-2:]] == [429, 200]
    sandbox.faults.set("slack", "rate_limit", count=1, retry_after=3)
    resp = post(sandbox, {"channel": "#dunning", "text": "x"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json() == {"ok": False, "error": "ratelimited"}
    sandbox.faults.set("slack", "slack_error", error="token_revoked")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="#dunning", text="x")
    assert info.value.response["error"] == "token_revoked"
    sandbox.faults.set("slack", "bad_credentials")
    assert post(sandbox, {"channel": "#dunning", "text": "x"}).json()["error"] == "invalid_auth"
    sandbox.faults.set("slack", "server_error", status=503)
    resp = post(sandbox, {"channel": "#dunning", "text": "x"})
    assert resp.status_code == 503 and "text/html" in resp.headers["Content-Type"]
    assert [m["text"] for m in sandbox.slack_messages] == ["after a 429"]

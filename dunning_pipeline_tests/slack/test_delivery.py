"""Posting to the sandbox's Slack: success, rate limits, and every error an operator must fix."""

from __future__ import annotations

import socket

import pytest

from dunning_pipeline.slack.delivery import SlackDeliveryError, SlackPoster
from dunning_pipeline.slack.resource import SlackResource

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Acme* owes 10.00 EUR"}}]


def _poster(sandbox, token=None, **kwargs) -> SlackPoster:
    return SlackPoster(token or sandbox.env["SLACK_BOT_TOKEN"], api_url=sandbox.slack_api_url, **kwargs)


def test_a_message_is_posted_with_its_fallback_text_and_blocks(sandbox):
    posted = _poster(sandbox).post("Acme owes 10.00 EUR", BLOCKS, channel="#dunning")
    reply = _poster(sandbox).post("more", BLOCKS, channel=posted.channel_id, thread_ts=posted.ts)
    first, second = sandbox.slack_messages
    assert posted.channel_id == first["channel"] == "C0SBXDUNN01"
    assert (first["ts"], first["text"], first["blocks"]) == (posted.ts, "Acme owes 10.00 EUR", BLOCKS)
    assert (second["ts"], second["thread_ts"]) == (reply.ts, posted.ts)
    assert first["unfurl_links"] is False


def test_a_rate_limit_is_waited_out_by_slack_sdk_and_posts_once(sandbox):
    sandbox.faults.set("slack", "rate_limit", count=1, retry_after=0)
    posted = _poster(sandbox).post("hello", BLOCKS, channel="#dunning")
    statuses = [r["status"] for r in sandbox.requests["slack"]]
    assert statuses == [429, 200]
    assert [m["ts"] for m in sandbox.slack_messages] == [posted.ts]


def test_a_rate_limit_that_outlasts_the_retries_is_reported(sandbox):
    sandbox.faults.set("slack", "rate_limit", count=2, retry_after=0)
    with pytest.raises(SlackDeliveryError) as err:
        _poster(sandbox, rate_limit_retries=1).post("hello", BLOCKS, channel="#dunning")
    assert err.value.code == "ratelimited"
    assert sandbox.slack_messages == []


TOKEN_FIX = ("re-issue the bot token (Slack app > OAuth & Permissions > Bot User OAuth Token)"
             " and set it in SLACK_BOT_TOKEN.")


@pytest.mark.parametrize(("channel", "fault", "code", "message"), [
    ("#no-such-channel", None, "channel_not_found",
     "Slack channel '#no-such-channel' (SLACK_CHANNEL) was not found (channel_not_found): set"
     " SLACK_CHANNEL to an existing channel name such as #dunning or its ID (C0123...); for a"
     " private channel, invite the bot first with /invite @<your bot>."),
    ("#private-finance", None, "not_in_channel",
     "The bot is not a member of Slack channel '#private-finance' (SLACK_CHANNEL) (not_in_channel):"
     " invite it in that channel with /invite @<your bot>, then re-run."),
    ("#old-dunning", None, "is_archived",
     "Slack channel '#old-dunning' (SLACK_CHANNEL) is archived (is_archived): unarchive it or set"
     " SLACK_CHANNEL to an active channel."),
    ("#dunning", "token_revoked", "token_revoked", "Slack rejected the bot token (token_revoked): " + TOKEN_FIX),
    ("#dunning", "missing_scope", "missing_scope",
     "The bot token lacks the scope chat:write (missing_scope): add it under Slack app > OAuth &"
     " Permissions > Scopes, reinstall the app and update SLACK_BOT_TOKEN."),
])
def test_errors_say_what_to_fix(sandbox, channel, fault, code, message):
    if fault:
        sandbox.faults.set("slack", "slack_error", error=fault)
    with pytest.raises(SlackDeliveryError) as err:
        _poster(sandbox).post("hello", BLOCKS, channel=channel)
    assert (err.value.code, str(err.value)) == (code, message)
    assert sandbox.slack_messages == []


def test_a_wrong_token_is_invalid_auth_and_never_appears_in_the_error(sandbox):
    secret = "xoxb-wrong-0000-secret-token"
    poster = _poster(sandbox, token=secret)
    with pytest.raises(SlackDeliveryError) as err:
        poster.post("hello", BLOCKS, channel="#dunning")
    assert (err.value.code, str(err.value)) == ("invalid_auth", "Slack rejected the bot token (invalid_auth): " + TOKEN_FIX)
    # No chained exception carries the request (and its Authorization header) along.
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert secret not in repr(err.value) and secret not in repr(poster)
    resource = SlackResource(bot_token=secret, channel="#dunning")
    assert secret not in repr(resource) and secret not in str(resource)


def test_an_unreachable_server_names_the_url_and_what_to_check():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    poster = SlackPoster("xoxb-x", api_url=f"http://127.0.0.1:{port}/api/")
    with pytest.raises(SlackDeliveryError) as err:
        poster.post("hello", BLOCKS, channel="#dunning")
    assert err.value.code == "unreachable"
    assert str(err.value).startswith(f"Could not reach Slack at http://127.0.0.1:{port}/api/")

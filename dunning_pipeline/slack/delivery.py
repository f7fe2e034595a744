"""Posting to Slack with slack_sdk's WebClient, and Slack's errors turned into what to fix.

A post is never retried blindly: a 429 (Slack refused it, `Retry-After`) and a refused connection
(nothing was sent) are safe to retry, but a timeout, a reset after the request went out, a 5xx
page from a proxy or an answer without `ts` leave the outcome unknown: the message may be in the
channel. Those raise `SlackDeliveryError` with code `outcome_unknown`, and the caller looks the
message up by its metadata (`find`, `conversations.history` / `.replies`) before posting again.
Reads (`find`, `scopes`) are retried on connection errors and 5xx as usual.

Errors that a person must fix (a wrong channel, a bot not invited, a revoked token, a missing
scope) raise `SlackDeliveryError` whose message says what to do. Nothing here ever puts the token
in a message: errors are raised `from None` so the client's request (which carries the
Authorization header) is not attached.
"""

from __future__ import annotations

import socket
import urllib.error
from dataclasses import dataclass
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

TOKEN_VAR = "SLACK_BOT_TOKEN"
CHANNEL_VAR = "SLACK_CHANNEL"
OUTCOME_UNKNOWN = "outcome_unknown"
HISTORY_SCOPES = ("channels:history", "groups:history")


class SlackDeliveryError(RuntimeError):
    """Slack refused or could not be reached; `code` is Slack's error code (or 'unreachable')."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PostedMessage:
    channel_id: str
    ts: str


class Poster(Protocol):
    def post(self, text: str, blocks: list[dict], *, channel: str,
             thread_ts: str | None = None, metadata: dict | None = None) -> PostedMessage: ...

    def find(self, channel: str, event_type: str, key: str, *,
             thread_ts: str | None = None) -> PostedMessage | None: ...

    def scopes(self) -> set[str] | None: ...


class Uploader(Protocol):
    def upload(self, content: bytes, *, filename: str, title: str, channel_id: str,
               thread_ts: str | None = None, initial_comment: str | None = None) -> str: ...


def explain(code: str, channel: str, channel_var: str = CHANNEL_VAR, needed: str | None = None) -> str:
    """What a person must do about a Slack error code (never includes the token)."""
    where = f"Slack channel {channel!r} ({channel_var})"
    if code == "channel_not_found":
        return (f"{where} was not found (channel_not_found): set {channel_var} to an existing channel"
                " name such as #dunning or its ID (C0123...); for a private channel, invite the bot"
                " first with /invite @<your bot>.")
    if code == "not_in_channel":
        return (f"The bot is not a member of {where} (not_in_channel): invite it in that channel"
                " with /invite @<your bot>, then re-run.")
    if code == "is_archived":
        return (f"{where} is archived (is_archived): unarchive it or set {channel_var} to an"
                " active channel.")
    if code in ("invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"):
        return (f"Slack rejected the bot token ({code}): re-issue the bot token (Slack app >"
                f" OAuth & Permissions > Bot User OAuth Token) and set it in {TOKEN_VAR}.")
    if code == "missing_scope":
        scope = needed or "chat:write"
        return (f"The bot token lacks the scope {scope} (missing_scope): add it under Slack app >"
                f" OAuth & Permissions > Scopes, reinstall the app and update {TOKEN_VAR}.")
    if code == OUTCOME_UNKNOWN:
        return (f"Slack's answer to a post to {where} was lost (a timeout, a reset connection, a"
                " proxy error page or an answer without ts): the message may be in the channel."
                " The next run looks it up by its metadata before posting it again.")
    if code == "ratelimited":
        return "Slack kept rate-limiting chat.postMessage (ratelimited) after the retries: re-run later."
    return (f"Slack refused the message to {where}: {code}. This is likely a bug in the alert"
            " rendering; the run's metadata and the alert_delivery_parts table hold the payload.")


class SlackPoster:
    """chat.postMessage through one WebClient; `api_url` points it at a test server."""

    def __init__(self, token: str, *, api_url: str | None = None, rate_limit_retries: int = 5,
                 timeout: int = 30, channel_var: str = CHANNEL_VAR):
        kwargs = {"base_url": api_url} if api_url else {}
        rate_limits = RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)
        # Posting: only what Slack surely did not post is retried (429, refused connection).
        self._client = WebClient(token=token, timeout=timeout, retry_handlers=[rate_limits], **kwargs)
        # Reading: any transient fault.
        self._reader = WebClient(token=token, timeout=timeout, retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2), rate_limits,
            ServerErrorRetryHandler(max_retry_count=2)], **kwargs)
        self._channel_var = channel_var
        self.api_url = self._client.base_url

    def __repr__(self) -> str:  # never the token
        return f"SlackPoster(api_url={self.api_url!r})"

    def post(self, text: str, blocks: list[dict], *, channel: str,
             thread_ts: str | None = None, metadata: dict | None = None) -> PostedMessage:
        for attempt in range(3):
            try:
                resp = self._client.chat_postMessage(
                    channel=channel, text=text, blocks=blocks or None, thread_ts=thread_ts,
                    unfurl_links=False, unfurl_media=False, metadata=metadata,
                )
                break
            except SlackApiError as exc:
                raise self._api_error(exc, channel, posting=True) from None
            except (SlackClientError, OSError) as exc:
                if _refused(exc) and attempt < 2:
                    continue  # nothing reached Slack: safe to try again
                raise self._transport_error(exc, posting=True) from None
        ts = resp.get("ts")
        if not ts:
            raise SlackDeliveryError(explain(OUTCOME_UNKNOWN, channel, self._channel_var), OUTCOME_UNKNOWN)
        return PostedMessage(channel_id=str(resp.get("channel") or channel), ts=str(ts))

    def find(self, channel: str, event_type: str, key: str, *, thread_ts: str | None = None,
             pages: int = 10) -> PostedMessage | None:
        """The message of this bot whose metadata has `event_type` and `event_payload.key`, in
        the channel's latest `pages` x 200 top-level messages (newest first) or in the thread of
        `thread_ts`; None if absent."""
        cursor = None
        for _page in range(pages):
            try:
                if thread_ts:
                    resp = self._reader.conversations_replies(
                        channel=channel, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor)
                else:
                    resp = self._reader.conversations_history(
                        channel=channel, include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as exc:
                raise self._api_error(exc, channel, posting=False) from None
            except (SlackClientError, OSError) as exc:
                raise self._transport_error(exc, posting=False) from None
            for message in resp.get("messages") or []:
                meta = message.get("metadata") or {}
                if (meta.get("event_type") == event_type
                        and (meta.get("event_payload") or {}).get("key") == key):
                    return PostedMessage(channel_id=str(resp.get("channel") or channel), ts=str(message["ts"]))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def scopes(self) -> set[str] | None:
        """The bot token's scopes (Slack's `x-oauth-scopes` header of auth.test); None: unknown."""
        try:
            resp = self._reader.auth_test()
        except SlackApiError as exc:
            raise self._api_error(exc, "", posting=False) from None
        except (SlackClientError, OSError) as exc:
            raise self._transport_error(exc, posting=False) from None
        headers = {k.lower(): v for k, v in (resp.headers or {}).items()}
        raw = headers.get("x-oauth-scopes")
        if isinstance(raw, list):
            raw = ",".join(raw)
        return None if raw is None else {s.strip() for s in str(raw).split(",") if s.strip()}

    def upload(self, content: bytes, *, filename: str, title: str, channel_id: str,
               thread_ts: str | None = None, initial_comment: str | None = None) -> str:
        """Share a file in a channel (in a thread with `thread_ts`) by Slack's three-step upload
        (files.getUploadURLExternal, POST of the bytes, files.completeUploadExternal, which
        slack_sdk's files_upload_v2 makes). Needs the scope files:write. Returns the file id."""
        try:
            resp = self._client.files_upload_v2(
                content=content, filename=filename, title=title, channel=channel_id,
                thread_ts=thread_ts, initial_comment=initial_comment,
            )
        except SlackApiError as exc:
            raise self._api_error(exc, channel_id, posting=False, needed="files:write") from None
        except SlackRequestError as exc:  # the upload URL refused the bytes
            raise SlackDeliveryError(f"Slack refused the file upload of {filename}: {exc}", "upload_failed") from None
        except (SlackClientError, OSError) as exc:
            raise self._transport_error(exc, posting=False) from None
        files = resp.get("files") or []
        if not files or not files[0].get("id"):
            raise SlackDeliveryError(f"Slack answered the upload of {filename} without a file id", "no_file_id")
        return str(files[0]["id"])

    def _api_error(self, exc: SlackApiError, channel: str, *, posting: bool,
                   needed: str | None = None) -> SlackDeliveryError:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        status = exc.response.status_code
        if posting and status >= 500:
            # A proxy's error page says nothing about whether Slack posted the message.
            return SlackDeliveryError(explain(OUTCOME_UNKNOWN, channel, self._channel_var), OUTCOME_UNKNOWN)
        code = str(data.get("error") or f"http_{status}")
        if code != "missing_scope":
            needed = None
        return SlackDeliveryError(explain(code, channel, self._channel_var, data.get("needed") or needed), code)

    def _transport_error(self, exc: BaseException, *, posting: bool) -> SlackDeliveryError:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        if posting and not _refused(exc):
            return SlackDeliveryError(
                f"Slack at {self.api_url} did not answer a post ({reason}): the message may be in"
                " the channel; the next run looks it up by its metadata before posting again.",
                OUTCOME_UNKNOWN)
        # URLError, timeouts, refused connections: name the server, not the request.
        return SlackDeliveryError(
            f"Could not reach Slack at {self.api_url} ({reason}); check SLACK_API_URL and the"
            " network, then re-run: parts already posted are not posted again.",
            "unreachable",
        )


def _refused(exc: BaseException) -> bool:
    """Whether the request surely never reached Slack (the connection was refused)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, urllib.error.URLError) and isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
        return True
    return isinstance(exc, ConnectionRefusedError)


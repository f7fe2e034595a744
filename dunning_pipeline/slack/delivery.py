"""Posting to Slack with slack_sdk's WebClient, and Slack's errors turned into what to fix.

A post is never retried blindly: a 429 (Slack refused it, `Retry-After`) and a refused connection
(nothing was sent) are safe to retry, but a timeout, a reset after the request went out, a 5xx
page from a proxy or an answer without `ts` leave the outcome unknown: the message may be in the
channel. Those raise `SlackDeliveryError` with code `outcome_unknown`, and the caller looks the
message up by its metadata (`find`, `conversations.history` / `.replies`) before posting again.
Reads (`find`, `scopes`) are retried on connection errors, timeouts, 5xx pages and empty or cut
answers, within the source deadline (`slack/retry.py` holds the policy of both kinds of call).

Errors that a person must fix (a wrong channel, a bot not invited, a revoked token, a missing
scope) raise `SlackDeliveryError` whose message says what to do. Nothing here ever puts the token
in a message: errors are raised `from None` so the client's request (which carries the
Authorization header) is not attached.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError

from dunning_pipeline import settings
from dunning_pipeline.slack.retry import CallTally, describe_error, post_handlers, read_handlers, refused

# What a WebClient call raises when no usable answer came (after its retry handlers).
_TRANSPORT_ERRORS = (SlackClientError, OSError, ValueError, http.client.HTTPException)
_NOT_JSON = "Received a response in a non-JSON format"

TOKEN_VAR = settings.SLACK_TOKEN_VAR
CHANNEL_VAR = settings.SLACK_CHANNEL_VAR
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
                 timeout: float = 30, channel_var: str = CHANNEL_VAR, read_retries: int = 3,
                 backoff_seconds: float = 0.5, deadline_seconds: float | None = None):
        kwargs = {"base_url": api_url} if api_url else {}
        self._tally = CallTally(settings.source_deadline_seconds() if deadline_seconds is None
                                else deadline_seconds)
        # Posting: only what Slack surely did not post is retried (429, refused connection).
        self._client = WebClient(token=token, timeout=timeout, **kwargs, retry_handlers=post_handlers(
            self._tally, rate_limit_retries=rate_limit_retries))
        # Reading: any transient fault.
        self._reader = WebClient(token=token, timeout=timeout, **kwargs, retry_handlers=read_handlers(
            self._tally, retries=read_retries, rate_limit_retries=rate_limit_retries,
            backoff_seconds=backoff_seconds))
        self._channel_var = channel_var
        self.api_url = self._client.base_url

    def __repr__(self) -> str:  # never the token
        return f"SlackPoster(api_url={self.api_url!r})"

    def post(self, text: str, blocks: list[dict], *, channel: str,
             thread_ts: str | None = None, metadata: dict | None = None) -> PostedMessage:
        self._tally.begin()
        try:
            resp = self._client.chat_postMessage(
                channel=channel, text=text, blocks=blocks or None, thread_ts=thread_ts,
                unfurl_links=False, unfurl_media=False, metadata=metadata,
            )
        except SlackApiError as exc:
            raise self._api_error(exc, channel, posting=True) from None
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, posting=True, call="chat.postMessage") from None
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
            self._tally.begin()
            call = "conversations.replies" if thread_ts else "conversations.history"
            try:
                if thread_ts:
                    resp = self._reader.conversations_replies(
                        channel=channel, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor)
                else:
                    resp = self._reader.conversations_history(
                        channel=channel, include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as exc:
                raise self._api_error(exc, channel, posting=False) from None
            except _TRANSPORT_ERRORS as exc:
                raise self._transport_error(exc, posting=False, call=call) from None
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
        self._tally.begin()
        try:
            resp = self._reader.auth_test()
        except SlackApiError as exc:
            raise self._api_error(exc, "", posting=False) from None
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, posting=False, call="auth.test") from None
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
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, posting=False, call="files_upload_v2") from None
        files = resp.get("files") or []
        if not files or not files[0].get("id"):
            raise SlackDeliveryError(f"Slack answered the upload of {filename} without a file id", "no_file_id")
        return str(files[0]["id"])

    def _api_error(self, exc: SlackApiError, channel: str, *, posting: bool,
                   needed: str | None = None) -> SlackDeliveryError:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        status = exc.response.status_code
        call = urlsplit(exc.response.api_url or "").path.rsplit("/", 1)[-1] or "a Web API call"
        not_json = str(data.get("error") or "").startswith(_NOT_JSON) or not data
        if posting and (status >= 500 or not_json):
            # A proxy's error page or a cut answer says nothing about whether Slack posted it.
            return SlackDeliveryError(
                f"Slack answered HTTP {status} {_body_kind(exc.response)} to {call}: "
                + explain(OUTCOME_UNKNOWN, channel, self._channel_var), OUTCOME_UNKNOWN)
        if not_json:  # not Slack's API answering: a proxy's page, an empty or cut body
            return SlackDeliveryError(
                f"Slack at {self.api_url} answered {call} with HTTP {status} {_body_kind(exc.response)}"
                f" ({self._tally.describe()}): Slack or a proxy in front of it is failing; re-run"
                " later (parts already posted are not posted again), and check SLACK_API_URL if it"
                " persists.", f"http_{status}")
        code = str(data.get("error") or f"http_{status}")
        if code != "missing_scope":
            needed = None
        return SlackDeliveryError(explain(code, channel, self._channel_var, data.get("needed") or needed), code)

    def _transport_error(self, exc: BaseException, *, posting: bool, call: str) -> SlackDeliveryError:
        if posting and not refused(exc):
            return SlackDeliveryError(
                f"Slack at {self.api_url} did not answer a post ({call}: {describe_error(exc)}): the message may"
                " be in the channel; the next run looks it up by its metadata before posting again.",
                OUTCOME_UNKNOWN)
        # Refused, timed out, reset, cut short: name the server, the call and the attempts.
        head = "Could not reach Slack at" if refused(exc) else "No usable answer from Slack at"
        return SlackDeliveryError(
            f"{head} {self.api_url} for {call} ({describe_error(exc)}; {self._tally.describe()});"
            " check SLACK_API_URL and the network, then re-run: parts already posted are not posted again.",
            "unreachable",
        )


def _body_kind(resp) -> str:
    """'with an HTML page' / 'with an empty body' / 'with a body that is not JSON'."""
    headers = {k.lower(): v for k, v in (resp.headers or {}).items()}
    ctype = str(headers.get("content-type") or "").lower()
    error = str((resp.data or {}).get("error") or "") if isinstance(resp.data, dict) else ""
    text = error[len(_NOT_JSON):].lstrip(": ").lower() if error.startswith(_NOT_JSON) else ""
    if "html" in ctype or text.startswith(("<!doctype", "<html")):
        return "with an HTML page"
    if error.startswith(_NOT_JSON) and not text.strip():
        return "with an empty body"
    return "with a body that is not JSON"


"""Posting to Slack with slack_sdk's WebClient, and Slack's errors turned into what to fix.

Retries are slack_sdk's own handlers: `RateLimitErrorRetryHandler` waits out 429s for the
`Retry-After` Slack sends; connection resets and 5xx answers are retried a little. Errors that a
person must fix (a wrong channel, a bot not invited, a revoked token) raise `SlackDeliveryError`
whose message says what to do. Nothing here ever puts the token in a message: errors are raised
`from None` so the client's request (which carries the Authorization header) is not attached.
"""

from __future__ import annotations

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
             thread_ts: str | None = None) -> PostedMessage: ...


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
    if code == "ratelimited":
        return "Slack kept rate-limiting chat.postMessage (ratelimited) after the retries: re-run later."
    return (f"Slack refused the message to {where}: {code}. This is likely a bug in the alert"
            " rendering; the run's metadata and the alert_delivery_parts table hold the payload.")


class SlackPoster:
    """chat.postMessage through one WebClient; `api_url` points it at a test server."""

    def __init__(self, token: str, *, api_url: str | None = None, rate_limit_retries: int = 5,
                 timeout: int = 30, channel_var: str = CHANNEL_VAR):
        handlers = [
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
            ServerErrorRetryHandler(max_retry_count=2),
        ]
        kwargs = {"base_url": api_url} if api_url else {}
        self._client = WebClient(token=token, timeout=timeout, retry_handlers=handlers, **kwargs)
        self._channel_var = channel_var
        self.api_url = self._client.base_url

    def __repr__(self) -> str:  # never the token
        return f"SlackPoster(api_url={self.api_url!r})"

    def post(self, text: str, blocks: list[dict], *, channel: str,
             thread_ts: str | None = None) -> PostedMessage:
        try:
            resp = self._client.chat_postMessage(
                channel=channel, text=text, blocks=blocks or None, thread_ts=thread_ts,
                unfurl_links=False, unfurl_media=False,
            )
        except SlackApiError as exc:
            raise self._refused(exc, channel) from None
        except (SlackClientError, OSError) as exc:
            raise self._unreachable(exc) from None
        return PostedMessage(channel_id=str(resp.get("channel") or channel), ts=str(resp["ts"]))

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
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            needed = data.get("needed") or ("files:write" if data.get("error") == "missing_scope" else None)
            raise self._refused(exc, channel_id, needed) from None
        except SlackRequestError as exc:  # the upload URL refused the bytes
            raise SlackDeliveryError(f"Slack refused the file upload of {filename}: {exc}", "upload_failed") from None
        except (SlackClientError, OSError) as exc:
            raise self._unreachable(exc) from None
        files = resp.get("files") or []
        if not files or not files[0].get("id"):
            raise SlackDeliveryError(f"Slack answered the upload of {filename} without a file id", "no_file_id")
        return str(files[0]["id"])

    def _refused(self, exc: SlackApiError, channel: str, needed: str | None = None) -> SlackDeliveryError:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error") or f"http_{exc.response.status_code}")
        return SlackDeliveryError(explain(code, channel, self._channel_var, needed or data.get("needed")), code)

    def _unreachable(self, exc: BaseException) -> SlackDeliveryError:
        # URLError, timeouts, refused connections: name the server, not the request.
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        return SlackDeliveryError(
            f"Could not reach Slack at {self.api_url} ({reason}); check SLACK_API_URL and the"
            " network, then re-run: parts already posted are not posted again.",
            "unreachable",
        )

"""Sending one reminder through Zendesk, for the workbench: a new ticket to the customer's
billing contact (`POST /api/v2/tickets.json`, the requester by email, created by Zendesk when
unknown) or a public reply on their open ticket (`PUT /api/v2/tickets/{id}.json` with a
comment). Both are written as the API token's user, an agent, so the pipeline reads them as
ours (outbound), never as the customer's words.

Neither write is retried once it may have reached Zendesk: a ticket creation is not idempotent
(our Zendesk reference documents no idempotency key) and a PUT with a comment adds a comment
each time, so a lost answer retried would send the customer the reminder twice. Only failures
to connect (nothing sent) are retried, by urllib3's `Retry` on the session. Every failure raises
a `ZendeskError` whose message says whether the reminder may have gone out and what to check;
the API token is never part of a message or a repr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from dunning_pipeline.http_retry import LoggingRetry, retrying_session
from dunning_pipeline.zendesk.client import (
    ZendeskAuthError,
    ZendeskError,
    ZendeskNotFoundError,
    ZendeskPermissionError,
    ZendeskRequestError,
    ZendeskResponseError,
    ZendeskUnreachableError,
    _error_fields,
    _retry_after,
    _snippet,
)

log = logging.getLogger(__name__)

TICKETS_PATH = "/api/v2/tickets.json"
TICKET_PATH = "/api/v2/tickets/{ticket_id}.json"
TAGS = ["dunning", "dunning_workbench"]


@dataclass(frozen=True)
class SentReminder:
    """What Zendesk recorded: the ticket (new or replied to) and the comment that carries the text."""

    ticket_id: int
    comment_id: int | None
    new_ticket: bool


class ReminderSender:
    """Writes reminders to Zendesk with API-token basic auth (`{email}/token:{api_token}`)."""

    def __init__(self, base_url: str, email: str, api_token: str, *, timeout_seconds: float = 30.0,
                 connect_retries: int = 2, backoff_factor: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.email = email
        self.timeout_seconds = timeout_seconds
        # Connection failures only: urllib3 retries a refused or timed-out connect for any
        # method (the request never left); POST and PUT are not in allowed_methods (and read,
        # status and other have no budget), so nothing is retried once it may have been sent.
        retry = LoggingRetry(total=connect_retries, connect=connect_retries, read=0, status=0, other=0,
                             allowed_methods=frozenset({"GET"}), backoff_factor=backoff_factor,
                             raise_on_status=False,
                             on_retry=lambda msg: log.warning(f"Zendesk: {msg}"))
        self._session = retrying_session(retry)
        self._session.auth = (f"{email}/token", api_token)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "dunning-pipeline-workbench"})

    def __repr__(self) -> str:  # never the token
        return f"ReminderSender(base_url={self.base_url!r}, email={self.email!r})"

    def close(self) -> None:
        self._session.close()

    def new_ticket(self, *, requester_email: str, requester_name: str | None, subject: str,
                   body: str) -> SentReminder:
        """A new ticket requested for the billing contact, its first comment public: Zendesk mails it."""
        requester = {"email": requester_email, **({"name": requester_name} if requester_name else {})}
        payload = {"ticket": {"subject": subject, "requester": requester, "tags": TAGS,
                              "comment": {"body": body, "public": True}}}
        data = self._write("POST", TICKETS_PATH, payload)
        return SentReminder(ticket_id=_ticket_id(data, TICKETS_PATH), comment_id=_comment_id(data), new_ticket=True)

    def reply(self, ticket_id: int, body: str) -> SentReminder:
        """A public comment on the customer's ticket: Zendesk mails it to the requester."""
        path = TICKET_PATH.format(ticket_id=int(ticket_id))
        data = self._write("PUT", path, {"ticket": {"comment": {"body": body, "public": True}}})
        return SentReminder(ticket_id=_ticket_id(data, path), comment_id=_comment_id(data), new_ticket=False)

    def _write(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        what = f"{method} {path}"
        try:
            resp = self._session.request(method, self.base_url + path, json=payload, timeout=self.timeout_seconds)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            if _never_sent(exc):
                raise ZendeskUnreachableError(
                    f"Zendesk at {self.base_url} could not be reached ({what}); the reminder was not sent."
                    f" Check ZENDESK_URL and try again later") from None
            raise ZendeskUnreachableError(
                f"Zendesk did not answer {what}: the reminder may have been sent. Look at the customer's"
                f" tickets in Zendesk before sending it again") from None
        except requests.exceptions.RequestException as exc:
            raise ZendeskError(f"Zendesk {what} failed ({type(exc).__name__}); the reminder was not sent") from None
        status = resp.status_code
        if status == 401:
            raise ZendeskAuthError(f"Zendesk refused the credentials (401) for {what}: check ZENDESK_EMAIL and"
                                   f" ZENDESK_API_TOKEN; the reminder was not sent")
        if status == 403:
            _, message = _error_fields(resp)
            raise ZendeskPermissionError(
                f"Zendesk user {self.email} may not {what} (403{': ' + message if message else ''}); the reminder"
                f" was not sent. The token's user must be an agent")
        if status == 404:
            raise ZendeskNotFoundError(f"Zendesk has no such ticket ({what}: 404); it may have been deleted."
                                       f" The reminder was not sent")
        if status == 429:
            raise ZendeskRequestError(f"Zendesk is rate limiting (429): try again in {_retry_after(resp):.0f} s;"
                                      f" the reminder was not sent", status, "APIRateLimitExceeded", None)
        if status >= 500:
            raise ZendeskRequestError(
                f"Zendesk answered {status} to {what}: the reminder was probably not sent. Look at the customer's"
                f" tickets in Zendesk before sending it again", status, None, _snippet(resp))
        if status >= 400:
            error, description = _error_fields(resp)
            details = _details(resp)
            raise ZendeskRequestError(
                f"Zendesk refused the reminder ({status}{': ' + (details or description or error or '')}); it was"
                f" not sent", status, error, details or description)
        try:
            data = resp.json()
        except ValueError:
            raise ZendeskResponseError(
                f"Zendesk answered {what} with {status} but not JSON ({_snippet(resp, 80)}): the reminder may have"
                f" been sent; check ZENDESK_URL and the customer's tickets in Zendesk") from None
        if not isinstance(data, dict):
            raise ZendeskResponseError(f"Zendesk {what}: expected a JSON object; the reminder may have been sent")
        return data


def _never_sent(exc: BaseException) -> bool:
    """True when the connection was never made (so the request cannot have reached Zendesk)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen, inner = set(), exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, (NewConnectionError, ConnectTimeoutError)):
            return True
        inner = getattr(inner, "reason", None) or (inner.args[0] if inner.args and isinstance(
            inner.args[0], BaseException) else None)
    return False


def _details(resp: requests.Response) -> str | None:
    """Zendesk's 422 names each invalid field: {"details": {"requester": [{"description": ...}]}}."""
    try:
        details = resp.json().get("details")
    except (ValueError, AttributeError):
        return None
    if not isinstance(details, dict):
        return None
    texts = [d.get("description") for items in details.values() if isinstance(items, list)
             for d in items if isinstance(d, dict) and d.get("description")]
    return "; ".join(str(t) for t in texts) or None


def _ticket_id(data: dict[str, Any], path: str) -> int:
    ticket = data.get("ticket")
    if not isinstance(ticket, dict) or not isinstance(ticket.get("id"), int):
        raise ZendeskResponseError(f"Zendesk {path}: the answer names no ticket id; the reminder may have been"
                                   f" sent, check the customer's tickets in Zendesk")
    return int(ticket["id"])


def _comment_id(data: dict[str, Any]) -> int | None:
    events = (data.get("audit") or {}).get("events") if isinstance(data.get("audit"), dict) else None
    for event in events or []:
        if isinstance(event, dict) and event.get("type") == "Comment" and isinstance(event.get("id"), int):
            return int(event["id"])
    return None

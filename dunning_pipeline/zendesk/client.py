"""HTTP client of the Zendesk Support API: incremental exports (cursor-based tickets and users,
the time-based ticket event export that carries the comments) and ticket comments.

No Dagster here: the assets layer passes the pages on to the warehouse. Transient faults (5xx,
dropped or reset connections, also in the middle of the body, empty or truncated answers,
timeouts) are retried by one urllib3 `Retry` policy (`http_retry.SourceTransport`) within the
source deadline (DUNNING_SOURCE_DEADLINE_SECONDS); the error names the cause and the real number
of attempts. A 429
is waited out as long as Zendesk asks (Retry-After, else `ratelimit-reset`) within a total time
budget per request, not a fixed count: a rate-limit storm of a few minutes costs minutes, not
the night. The incremental export endpoints' own budget (10 requests per minute) is kept by a
client-side sliding-window limiter that only sleeps once the budget is used up. Errors that
retrying cannot fix get their own exception class and a message that says what to do. The API
token is never part of a message, a log line or a repr.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from dunning_pipeline import settings
from dunning_pipeline.http_retry import (
    NO_BODY,
    Answer,
    LoggingRetry,
    SourceDeadline,
    SourceTransport,
    TransportError,
    attempts_text,
)

log = logging.getLogger(__name__)

TICKETS_EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
USERS_EXPORT_PATH = "/api/v2/incremental/users/cursor.json"
COMMENTS_PATH = "/api/v2/tickets/{ticket_id}/comments.json"
TICKET_EVENTS_PATH = "/api/v2/incremental/ticket_events.json"

# Zendesk refuses a start_time less than a minute old (422 "Too recent start_time").
MIN_START_TIME_AGE_SECONDS = 60
_RETRY_STATUSES = (500, 502, 503, 504)  # urllib3 retries these; 429 is waited out below
_RATE_LIMITED = 429
_DEFAULT_429_WAIT = 10.0  # seconds, when a 429 names no wait at all
_MAX_START_TIME_CLAMPS = 3


class ZendeskError(RuntimeError):
    """Something went wrong talking to Zendesk; the message says what and what to check."""


class ZendeskAuthError(ZendeskError):
    """401: the email/token pair was refused."""


class ZendeskPermissionError(ZendeskError):
    """403: the user behind the token may not read this resource."""


class ZendeskNotFoundError(ZendeskError):
    """404: wrong URL, or a record deleted in the meantime."""


class ZendeskRequestError(ZendeskError):
    """Another 4xx: the request itself was refused (e.g. 422)."""

    def __init__(self, message: str, status: int, error: str | None, description: str | None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.description = description


class ZendeskInvalidCursorError(ZendeskRequestError):
    """422 on a cursor: the stored cursor expired or is not valid; restart from a time."""


class ZendeskUnreachableError(ZendeskError):
    """No answer at all: DNS, refused or dropped connections, timeouts (after the retries)."""


class ZendeskRetriesExhaustedError(ZendeskError):
    """Zendesk kept answering 5xx after every retry, or 429 beyond the waiting budget."""


class ZendeskResponseError(ZendeskError):
    """An answer that is not the JSON document the endpoint promises."""


class _Retry(LoggingRetry):
    """urllib3 would retry a 429 carrying Retry-After a fixed number of times: the client waits
    those out itself, within its time budget."""

    RETRY_AFTER_STATUS_CODES = frozenset({413, 503})


class SlidingWindowLimiter:
    """At most `max_calls` calls in any window of `period` seconds.

    `acquire()` returns at once while the budget of the last `period` seconds is not used up, and
    otherwise sleeps exactly until the oldest call of the window leaves it. `clock` (monotonic
    seconds) and `sleep` are injectable so the behaviour is testable without waiting.
    """

    def __init__(
        self,
        max_calls: int,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[float], None] | None = None,
    ):
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1 (got {max_calls})")
        if period <= 0:
            raise ValueError(f"period must be positive (got {period})")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait
        self._calls: deque[float] = deque()

    def acquire(self) -> float:
        """Take one call from the budget; returns the seconds slept (0.0 when none)."""
        slept = 0.0
        while True:
            now = self._clock()
            while self._calls and self._calls[0] <= now - self.period:
                self._calls.popleft()
            if len(self._calls) < self.max_calls:
                self._calls.append(now)
                return slept
            wait = self._calls[0] + self.period - now
            if self._on_wait is not None:
                self._on_wait(wait)
            self._sleep(wait)
            slept += wait


@dataclass(frozen=True)
class ExportPage:
    """One page of an incremental cursor export."""

    records: list[dict[str, Any]]
    users: list[dict[str, Any]] = field(default_factory=list)  # side-loaded (include=users)
    after_cursor: str | None = None
    end_of_stream: bool = True


@dataclass(frozen=True)
class EventPage:
    """One page of the time-based ticket event export; the next starts at `end_time`."""

    events: list[dict[str, Any]]
    end_time: int
    end_of_stream: bool


class ZendeskClient:
    """Zendesk Support API with API-token basic auth (`{email}/token:{api_token}`)."""

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str,
        *,
        page_size: int = 1000,
        comments_page_size: int = 100,
        export_requests_per_minute: int = 10,
        timeout_seconds: float = 30.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        rate_limit_budget_seconds: float = 900.0,
        connect_timeout_seconds: float = 5.0,
        deadline_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        logger: logging.Logger | Any | None = None,
    ):
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000 (got {page_size})")
        if not 1 <= comments_page_size <= 100:
            raise ValueError(f"comments_page_size must be between 1 and 100 (got {comments_page_size})")
        self.base_url = base_url.rstrip("/")
        self.email = email
        self.page_size = page_size
        self.comments_page_size = comments_page_size
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.rate_limit_budget_seconds = rate_limit_budget_seconds
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._log = logger or log
        self.export_limiter = SlidingWindowLimiter(
            export_requests_per_minute, 60.0, clock=clock, sleep=sleep,
            on_wait=lambda s: self._log.info(
                f"Zendesk export budget of {export_requests_per_minute} requests/minute used up:"
                f" waiting {s:.1f} s"
            ),
        )
        retry = _Retry(
            on_retry=lambda msg: self._log.warning(f"Zendesk: {msg}"),
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=backoff_factor,
            respect_retry_after_header=True,
        )
        deadline = SourceDeadline(settings.source_deadline_seconds() if deadline_seconds is None
                                  else deadline_seconds)
        self._transport = SourceTransport(
            "Zendesk", retry, connect_timeout=min(connect_timeout_seconds, timeout_seconds),
            read_timeout=timeout_seconds, deadline=deadline, pool_maxsize=32)  # comments fetch concurrently
        session = self._transport.session
        session.auth = (f"{email}/token", api_token)
        session.headers.update({"Accept": "application/json", "User-Agent": "dunning-pipeline"})
        self._session = session

    def __repr__(self) -> str:  # never the token
        return f"ZendeskClient(base_url={self.base_url!r}, email={self.email!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ZendeskClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- exports -------------------------------------------------------------------------------
    def export_tickets(
        self, *, cursor: str | None = None, start_time: int = 0, include_users: bool = True
    ) -> Iterator[ExportPage]:
        """Changed tickets since `cursor` (or `start_time` on the very first run), page by page,
        with the users they reference side-loaded. Deleted tickets come with status "deleted"."""
        extra = {"include": "users"} if include_users else {}
        yield from self._export(TICKETS_EXPORT_PATH, "tickets", cursor, start_time, extra)

    def export_users(self, *, cursor: str | None = None, start_time: int = 0) -> Iterator[ExportPage]:
        """Changed users since `cursor` (or `start_time`), page by page."""
        yield from self._export(USERS_EXPORT_PATH, "users", cursor, start_time, {})

    def _export(
        self, path: str, key: str, cursor: str | None, start_time: int, extra: dict[str, str]
    ) -> Iterator[ExportPage]:
        params: dict[str, Any] = {"per_page": self.page_size, **extra}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = self._clamp_start_time(int(start_time))
        clamps = 0
        while True:
            try:
                data = self._get(path, params, export=True)
            except ZendeskRequestError as exc:
                if exc.status == 422 and "cursor" in params:
                    raise ZendeskInvalidCursorError(
                        f"Zendesk refused the cursor of GET {path} (422: {exc.description or exc.error});"
                        f" it expired or is not valid", exc.status, exc.error, exc.description,
                    ) from None
                # Our clock may run ahead of Zendesk's: move start_time back and ask again.
                if not _too_recent_start_time(exc) or "start_time" not in params:
                    raise
                clamps += 1
                if clamps > _MAX_START_TIME_CLAMPS:
                    raise
                params["start_time"] = self._clamp_start_time(params["start_time"]) - 60 * clamps
                self._log.warning(
                    f"Zendesk refused start_time as too recent; retrying with start_time={params['start_time']}"
                )
                continue
            page = _export_page(data, key, path)
            yield page
            if page.end_of_stream:
                return
            if not page.after_cursor:
                raise ZendeskResponseError(
                    f"Zendesk GET {path}: a page before the end of the stream has no after_cursor"
                )
            params = {"per_page": self.page_size, **extra, "cursor": page.after_cursor}

    def _clamp_start_time(self, start_time: int) -> int:
        latest = int(self._wall_clock()) - MIN_START_TIME_AGE_SECONDS
        return max(0, min(start_time, latest))

    def export_ticket_events(self, *, start_time: int) -> Iterator[EventPage]:
        """Ticket events since `start_time` (Unix seconds), comments included
        (`include=comment_events`), page by page until `end_of_stream`. Time-based: each page
        starts at the previous page's `end_time`, so events of that second come again."""
        path = TICKET_EVENTS_PATH
        params: dict[str, Any] = {"start_time": self._clamp_start_time(int(start_time)),
                                  "include": "comment_events", "per_page": self.page_size}
        clamps = 0
        while True:
            try:
                data = self._get(path, params, export=True)
            except ZendeskRequestError as exc:
                clamps += 1  # our clock may run ahead of Zendesk's: move start_time back
                if not _too_recent_start_time(exc) or clamps > _MAX_START_TIME_CLAMPS:
                    raise
                params["start_time"] = self._clamp_start_time(params["start_time"]) - 60 * clamps
                self._log.warning(f"Zendesk refused start_time as too recent; retrying with"
                                  f" start_time={params['start_time']}")
                continue
            page = _event_page(data, path)
            yield page
            if page.end_of_stream:
                return
            if page.end_time <= params["start_time"]:
                raise ZendeskResponseError(
                    f"Zendesk GET {path}: a full page ended at end_time={page.end_time}, not after its"
                    f" start_time={params['start_time']}; the export would not advance"
                )
            params = {**params, "start_time": page.end_time}

    # -- comments ------------------------------------------------------------------------------
    def ticket_comments(self, ticket_id: int) -> Iterator[list[dict[str, Any]]]:
        """The comments of one ticket (public replies and internal notes), page by page."""
        path = COMMENTS_PATH.format(ticket_id=int(ticket_id))
        params: dict[str, Any] = {"page[size]": self.comments_page_size}
        while True:
            data = self._get(path, params)
            comments = data.get("comments")
            if not isinstance(comments, list):
                raise ZendeskResponseError(f"Zendesk GET {path}: the answer has no 'comments' list")
            yield comments
            meta = data.get("meta") or {}
            if not meta.get("has_more"):
                return
            after = meta.get("after_cursor")
            if not after:
                raise ZendeskResponseError(
                    f"Zendesk GET {path}: meta.has_more is true but meta.after_cursor is missing"
                )
            params = {"page[size]": self.comments_page_size, "page[after]": after}

    # -- transport -----------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any], *, export: bool = False) -> dict[str, Any]:
        """One GET; a 429 is waited out (as long as Zendesk asks) within the budget."""
        waited = 0.0
        started = self._clock()
        while True:
            answer = self._send(path, params, export)
            resp = answer.response
            if resp.status_code != _RATE_LIMITED:
                return self._decode(answer, path)
            wait = _retry_after(resp)
            spent = max(waited, self._clock() - started)
            if spent + wait > self.rate_limit_budget_seconds:
                raise ZendeskRetriesExhaustedError(
                    f"Zendesk kept answering 429 (rate limited) to GET {path}: waited {spent:.0f} s,"
                    f" another {wait:.0f} s would pass the budget of {self.rate_limit_budget_seconds:.0f} s"
                    f" (rate_limit_budget_seconds); the account's API limit is used up by other clients"
                )
            self._log.warning(f"Zendesk rate limit (429) on GET {path}: waiting {wait:.0f} s as asked"
                              f" ({spent:.0f} s of {self.rate_limit_budget_seconds:.0f} s waited so far)")
            self._sleep(wait)
            waited += wait

    def _send(self, path: str, params: dict[str, Any], export: bool) -> Answer:
        if export:
            self.export_limiter.acquire()
        url = self.base_url + path
        try:
            return self._transport.request("GET", url, params=params,
                                           decode=lambda r: r.json(parse_float=Decimal))
        except TransportError as exc:
            hint = (f"; if Zendesk is just slow, raise timeout_seconds ({self.timeout_seconds:g} s)"
                    f" or {exc.deadline.variable}" if exc.timed_out or exc.deadline_passed else "")
            raise ZendeskUnreachableError(
                f"No usable answer from Zendesk at {self.base_url} to GET {path}: {exc.cause}"
                f" ({exc.tally()}); check ZENDESK_URL and that the server is reachable{hint}"
            ) from None

    def _decode(self, answer: Answer, path: str) -> dict[str, Any]:
        resp = answer.response
        status = resp.status_code
        if status == 401:
            raise ZendeskAuthError(
                f"Zendesk refused the credentials (401) for GET {path}: check ZENDESK_EMAIL and"
                f" ZENDESK_API_TOKEN (the token must be active and token access enabled)"
            )
        if status == 403:
            _title, message = _error_fields(resp)
            said = f" (Zendesk: {message})" if message else ""
            raise ZendeskPermissionError(
                f"Zendesk user {self.email} may not read GET {path} (403){said}: incremental exports"
                f" and comments need an admin or an agent with access to all tickets"
            )
        if status == 404:
            raise ZendeskNotFoundError(
                f"Zendesk answered 404 Not Found to GET {path}: check ZENDESK_URL"
                f" ({self.base_url}) or whether the record was deleted"
            )
        if status in _RETRY_STATUSES:
            stopped = (f", stopped by the deadline ({settings.SOURCE_DEADLINE_VAR})"
                       if answer.deadline_passed else "")
            raise ZendeskRetriesExhaustedError(
                f"Zendesk answered {status} to GET {path} after {attempts_text(answer.attempts)}{stopped}:"
                f" {_snippet(resp)}; check ZENDESK_URL, or re-run later"
            )
        if status >= 400:
            error, description = _error_fields(resp)
            raise ZendeskRequestError(
                f"Zendesk refused GET {path} ({status}): {error or ''} {description or _snippet(resp)}".strip(),
                status, error, description,
            )
        try:
            data = answer.body if answer.body is not NO_BODY else resp.json(parse_float=Decimal)
        except ValueError:
            raise ZendeskResponseError(
                f"Zendesk answered GET {path} with a body that is not JSON"
                f" ({resp.headers.get('Content-Type', 'no content type')}: {_snippet(resp)});"
                f" check that ZENDESK_URL points at the Zendesk account"
            ) from None
        if not isinstance(data, dict):
            raise ZendeskResponseError(f"Zendesk GET {path}: expected a JSON object, got {type(data).__name__}")
        return data


def _export_page(data: dict[str, Any], key: str, path: str) -> ExportPage:
    records = data.get(key)
    if not isinstance(records, list):
        raise ZendeskResponseError(f"Zendesk GET {path}: the answer has no {key!r} list")
    users = data.get("users") if key != "users" else []
    if users is None:
        users = []
    if not isinstance(users, list):
        raise ZendeskResponseError(f"Zendesk GET {path}: side-loaded 'users' is not a list")
    if "end_of_stream" not in data:
        raise ZendeskResponseError(f"Zendesk GET {path}: the answer has no end_of_stream flag")
    return ExportPage(
        records=records,
        users=users,
        after_cursor=data.get("after_cursor") or None,
        end_of_stream=bool(data.get("end_of_stream")),
    )


def _event_page(data: dict[str, Any], path: str) -> EventPage:
    events = data.get("ticket_events")
    if not isinstance(events, list):
        raise ZendeskResponseError(f"Zendesk GET {path}: the answer has no 'ticket_events' list")
    end_time = data.get("end_time")
    if isinstance(end_time, bool) or not isinstance(end_time, int):
        raise ZendeskResponseError(f"Zendesk GET {path}: end_time is {end_time!r}, expected Unix seconds")
    if "end_of_stream" not in data:
        raise ZendeskResponseError(f"Zendesk GET {path}: the answer has no end_of_stream flag")
    return EventPage(events=events, end_time=end_time, end_of_stream=bool(data["end_of_stream"]))


def _retry_after(resp: requests.Response) -> float:
    """Seconds Zendesk asks to wait: Retry-After, else ratelimit-reset, else a default."""
    for header in ("Retry-After", "ratelimit-reset"):
        value = resp.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            try:  # Retry-After may be an HTTP date
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - time.time())
            except (TypeError, ValueError):
                continue
    return _DEFAULT_429_WAIT


def _too_recent_start_time(exc: ZendeskRequestError) -> bool:
    return exc.status == 422 and "too recent" in f"{exc.error} {exc.description}".lower()


def _error_fields(resp: requests.Response) -> tuple[str | None, str | None]:
    try:
        body = resp.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    description = body.get("description")
    if isinstance(error, dict):  # some endpoints nest {"error": {"title", "message"}}
        description = description or error.get("message")
        error = error.get("title")
    return (str(error) if error else None), (str(description) if description else None)


def _snippet(resp: requests.Response, limit: int = 200) -> str:
    text = " ".join((resp.text or "").split())
    return (text[:limit] + "...") if len(text) > limit else (text or "<empty body>")


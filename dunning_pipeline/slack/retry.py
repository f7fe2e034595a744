"""Slack's retry policy, made of slack_sdk's own retry handlers, one set per kind of call.

Reads (`conversations.history` / `.replies`, `auth.test`) may be repeated freely: connection
errors (refused, reset, also in the middle of the body, timeouts), 500/502/503/504 pages, empty or
cut answers and 429 are retried, within the source deadline (DUNNING_SOURCE_DEADLINE_SECONDS)
counted from the call's start. A post is retried only when Slack surely did not post it: a 429
(Slack refused it) or a refused connection (nothing was sent). Anything else leaves its outcome
unknown and the caller looks the message up before posting again (see `delivery.py`).

`CallTally` remembers the retry state of the current call, so an error can name the real number
of attempts.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
from collections.abc import Callable

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    BackoffRetryIntervalCalculator,
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.state import RetryState

from dunning_pipeline import settings

SERVER_ERROR_STATUSES = (500, 502, 503, 504)
# What urllib raises for a connection that broke (before or during the answer), a timeout, or a
# body cut short (slack_sdk parses a body starting with "{" inside the attempt).
TRANSIENT_ERRORS = [urllib.error.URLError, ConnectionError, http.client.RemoteDisconnected,
                    http.client.IncompleteRead, TimeoutError, json.JSONDecodeError]


class CallTally:
    """The attempts of the call in progress and its deadline (one poster, one thread)."""

    def __init__(self, deadline_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.deadline_seconds = deadline_seconds
        self._clock = clock
        self.started = clock()
        self.state: RetryState | None = None
        self.deadline_passed = False

    def begin(self) -> None:
        self.started = self._clock()
        self.state = None
        self.deadline_passed = False

    @property
    def attempts(self) -> int:
        return 1 if self.state is None else self.state.current_attempt + 1

    def describe(self) -> str:
        text = f"{self.attempts} attempt{'' if self.attempts == 1 else 's'}"
        if self.deadline_passed:
            text += (f"; stopped by the deadline of {self.deadline_seconds:g} s"
                     f" ({settings.SOURCE_DEADLINE_VAR})")
        return text

    def allows(self, state: RetryState, wait: float) -> bool:
        self.state = state
        if self._clock() - self.started + wait >= self.deadline_seconds:
            self.deadline_passed = True
            return False
        return True


class _Tallied:
    """Mixin: a handler that records the call's retry state and keeps to its deadline."""

    tally: CallTally

    def can_retry(self, *, state, request, response=None, error=None) -> bool:
        if not super().can_retry(state=state, request=request, response=response, error=error):
            self.tally.state = state
            return False
        return self.tally.allows(state, self.interval_calculator.calculate_sleep_duration(state.current_attempt))


class _ConnectionErrors(_Tallied, ConnectionErrorRetryHandler):
    pass


class _ServerErrors(_Tallied, ServerErrorRetryHandler):
    """slack_sdk's handler retries 500 and 503 only; a proxy in front of Slack also sends 502/504."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is not None and response.status_code in SERVER_ERROR_STATUSES


class _EmptyAnswers(_Tallied, RetryHandler):
    """An HTTP 200 whose body is not a JSON object at all (empty, or a page): ask again."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return (error is None and response is not None and response.status_code == 200
                and not response.body)


class _RateLimits(_Tallied, RateLimitErrorRetryHandler):
    def can_retry(self, *, state, request, response=None, error=None) -> bool:
        # Slack asked to wait: its Retry-After is honoured whatever the deadline (it answered).
        self.tally.state = state
        return RetryHandler.can_retry(self, state=state, request=request, response=response, error=error)


class _RefusedConnections(_Tallied, ConnectionErrorRetryHandler):
    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is None and error is not None and refused(error)


def _tallied(handler: RetryHandler, tally: CallTally) -> RetryHandler:
    handler.tally = tally
    return handler


def read_handlers(tally: CallTally, *, retries: int, rate_limit_retries: int,
                  backoff_seconds: float = 0.5) -> list[RetryHandler]:
    """Handlers of the calls that may be repeated (reads); exponential backoff with jitter."""
    interval = (BackoffRetryIntervalCalculator(backoff_seconds) if backoff_seconds > 0
                else FixedValueRetryIntervalCalculator(0.0))
    return [
        _tallied(_ConnectionErrors(max_retry_count=retries, interval_calculator=interval,
                                   error_types=TRANSIENT_ERRORS), tally),
        _tallied(_ServerErrors(max_retry_count=retries, interval_calculator=interval), tally),
        _tallied(_EmptyAnswers(max_retry_count=retries, interval_calculator=interval), tally),
        _tallied(_RateLimits(max_retry_count=rate_limit_retries), tally),
    ]


def post_handlers(tally: CallTally, *, rate_limit_retries: int, refused_retries: int = 2) -> list[RetryHandler]:
    """Handlers of a post: only what Slack surely did not post (429, a refused connection)."""
    return [
        _tallied(_RateLimits(max_retry_count=rate_limit_retries), tally),
        _tallied(_RefusedConnections(max_retry_count=refused_retries), tally),
    ]


def refused(exc: BaseException) -> bool:
    """Whether the request surely never reached Slack (the connection was refused)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, urllib.error.URLError) and isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
        return True
    return isinstance(exc, ConnectionRefusedError)


def describe_error(exc: BaseException) -> str:
    """A failed call's cause in words (urllib wraps the socket's error in URLError.reason)."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib.error.URLError) and isinstance(reason, BaseException):
        return describe_error(reason)
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, (http.client.IncompleteRead, json.JSONDecodeError)):
        return "the answer was cut short"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    return str(reason or type(exc).__name__)

"""One retry policy per source over a requests Session: urllib3's `Retry` decides what is retried,
how often and how long to wait (backoff, Retry-After); `SourceTransport` applies it to a whole
answer, body included, within a deadline, and tells the run's log about each retry.

Why the Retry is not simply mounted on the adapter: requests reads the body after urllib3's retry
loop has returned, so a connection reset in the middle of the body, a truncated or an empty 200
would escape it (as a raw ChunkedEncodingError / ProtocolError). Here each attempt reads the whole
answer, and every failure, before or after the headers, is one `Retry.increment` of the same
policy, so the number of attempts an error names is the real one.

The deadline (`SourceDeadline`): once a source stops giving usable answers, its calls give up
`seconds` after the first failed attempt, and each attempt's timeouts are cut to what is left, so
a dead or hanging server fails its asset in about that time, not retries x read timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    IncompleteRead,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from dunning_pipeline import settings

NO_BODY = object()  # Answer.body when the caller asked for none, or the answer was not JSON


def retrying_session(retry: Retry, *, pool_maxsize: int = DEFAULT_POOLSIZE) -> requests.Session:
    """A Session whose every http(s) request is retried by `retry` (headers only: see above)."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SourceDeadline:
    """How long one source may go without a usable answer: `seconds` from the first failed
    attempt since its last good answer. Shared by the calls of one client (one asset), also
    across threads: a good answer from any of them means the source answers again."""

    def __init__(self, seconds: float, *, variable: str = settings.SOURCE_DEADLINE_VAR,
                 clock: Callable[[], float] = time.monotonic):
        if seconds <= 0:
            raise ValueError(f"the deadline must be positive (got {seconds})")
        self.seconds = float(seconds)
        self.variable = variable
        self._clock = clock
        self._lock = threading.Lock()
        self._failing_since: float | None = None

    def now(self) -> float:
        return self._clock()

    def remaining(self) -> float:
        with self._lock:
            since = self._failing_since
        return self.seconds if since is None else since + self.seconds - self._clock()

    def failed(self, attempt_started: float) -> None:
        with self._lock:
            if self._failing_since is None or attempt_started < self._failing_since:
                self._failing_since = attempt_started

    def answered(self) -> None:
        with self._lock:
            self._failing_since = None

    def describe(self) -> str:
        return f"the deadline of {self.seconds:g} s ({self.variable})"


class DeadlineExceeded(HTTPError):
    """The next retry would end after the source's deadline; `last` is the failure before it."""

    def __init__(self, deadline: SourceDeadline, last: Any):
        super().__init__(f"{deadline.describe()} passed; last: {last!r}")
        self.deadline = deadline
        self.last = last


class LoggingRetry(Retry):
    """A `Retry` that reports each retry to `on_retry` (method, path, cause; never a query
    string or a header, so no secret can reach the log) and, given a `deadline`, refuses a retry
    whose wait would pass it."""

    def __init__(self, *args, on_retry: Callable[[str], None] | None = None,
                 deadline: SourceDeadline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_retry = on_retry
        self.deadline = deadline

    def new(self, **kw) -> LoggingRetry:
        kw.setdefault("on_retry", self.on_retry)
        kw.setdefault("deadline", self.deadline)
        return super().new(**kw)

    def wait_before_next(self, response=None) -> float:
        """The seconds `sleep(response)` will wait: the server's Retry-After, else the backoff."""
        after = self.get_retry_after(response) if self.respect_retry_after_header and response is not None else None
        return after if after else self.get_backoff_time()

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None) -> Retry:
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        if response is not None and response.status:
            cause = f"HTTP {response.status}"
            after = response.headers.get("Retry-After") if response.headers else None
            if after:
                cause += f", Retry-After {after} s"
        else:
            cause = describe_error(error) if error is not None else "an error"
        if self.deadline is not None and fresh.wait_before_next(response) >= self.deadline.remaining():
            raise MaxRetryError(_pool, url, DeadlineExceeded(self.deadline, error or cause))
        if self.on_retry is not None:
            path = urlsplit(url or "").path or "/"
            attempt = len(fresh.history)
            left = fresh.total if isinstance(fresh.total, int) else None
            budget = f" of {attempt + left}" if left is not None and left >= 0 else ""
            self.on_retry(f"{method} {path}: {cause}; retry {attempt}{budget}")
        return fresh


@dataclass
class Answer:
    """A complete answer: the response (body read), how many attempts it took, the decoded body
    (`NO_BODY` unless asked for and JSON), and whether retrying stopped at the deadline."""

    response: requests.Response
    attempts: int
    body: Any = NO_BODY
    deadline_passed: bool = False


class TransportError(Exception):
    """No usable answer after the retries: `cause` says what the last attempt met, in words."""

    def __init__(self, source: str, method: str, path: str, cause: str, *, attempts: int,
                 elapsed: float, deadline: SourceDeadline, deadline_passed: bool, unreachable: bool,
                 timed_out: bool = False):
        self.source, self.method, self.path, self.cause = source, method, path, cause
        self.attempts, self.elapsed = attempts, elapsed
        self.deadline, self.deadline_passed = deadline, deadline_passed
        self.unreachable = unreachable  # no connection at all (DNS, refused, connect timeout)
        self.timed_out = timed_out
        super().__init__(f"{source} {method} {path}: {cause} ({self.tally()})")

    def tally(self) -> str:
        """"3 attempts in 41 s", plus why it stopped when the deadline did."""
        if self.attempts == 0:
            return (f"not tried: {self.source} has given no usable answer for"
                    f" {self.deadline.seconds:g} s, {self.deadline.describe()}")
        text = f"{attempts_text(self.attempts)} in {self.elapsed:.0f} s"
        if self.deadline_passed:
            text += f"; stopped by {self.deadline.describe()}"
        return text


def attempts_text(n: int) -> str:
    return f"{n} attempt{'' if n == 1 else 's'}"


class SourceTransport:
    """The requests of one source (one client): `retry` is the policy, `deadline` bounds the
    time lost to faults. `application_error(response)` says whether a retryable status (Odoo's
    500) carries the application's own error, which retrying cannot fix."""

    def __init__(self, source: str, retry: LoggingRetry, *, connect_timeout: float,
                 read_timeout: float, deadline: SourceDeadline, pool_maxsize: int = DEFAULT_POOLSIZE,
                 application_error: Callable[[requests.Response], bool] | None = None):
        self.source = source
        self.retry = retry.new(deadline=deadline)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.application_error = application_error
        # No retries in the adapter: each attempt is made, and counted, in `request`.
        self.session = retrying_session(Retry(0, read=False), pool_maxsize=pool_maxsize)

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, url: str, *, decode: Callable[[requests.Response], Any] | None = None,
                **kwargs) -> Answer:
        """One call, retried by the policy until its answer is complete; `decode(response)`
        parses a 2xx body (a ValueError on an empty or cut JSON body is retried as a read
        error). Returns the last answer of a retryable status when retrying stops; raises
        `TransportError` when no answer came at all."""
        retry = self.retry
        path = urlsplit(url).path or "/"
        first = self.deadline.now()
        last_error: HTTPError | Exception | None = None
        while True:
            remaining = self.deadline.remaining()
            if remaining <= 0:
                raise self._give_up(method, path, last_error, None, retry, first, deadline_passed=True)
            timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
            started = self.deadline.now()
            try:
                resp = self.session.request(method, url, timeout=timeout, stream=True, **kwargs)
                try:
                    resp.content  # noqa: B018 - the whole body, inside this attempt
                except requests.exceptions.RequestException:
                    resp.close()
                    raise
            except requests.exceptions.RequestException as exc:
                last_error = _urllib3_cause(exc)
                self.deadline.failed(started)
                retry = self._next(retry, method, url, path, first, timeout, error=last_error)
                continue
            body = NO_BODY
            status = resp.status_code
            retryable_status = (retry.is_retry(method, status, "Retry-After" in resp.headers)
                                and not (self.application_error and self.application_error(resp)))
            if not retryable_status and decode is not None and 200 <= status < 300:
                try:
                    body = decode(resp)
                except ValueError:
                    if _cut_json(resp):
                        last_error = ProtocolError(
                            f"an empty body with HTTP {status}" if not resp.content.strip() else
                            f"a JSON body cut short ({len(resp.content)} bytes) with HTTP {status}")
                        self.deadline.failed(started)
                        retry = self._next(retry, method, url, path, first, timeout, error=last_error)
                        continue
            if retryable_status:
                self.deadline.failed(started)
                try:
                    fresh = retry.increment(method, url, response=resp.raw)
                except MaxRetryError as exc:
                    # The last answer goes back to the caller, which says what the server said.
                    return Answer(resp, len(retry.history) + 1,
                                  deadline_passed=isinstance(exc.reason, DeadlineExceeded))
                fresh.sleep(resp.raw)
                retry = fresh
                last_error = None
                continue
            self.deadline.answered()
            return Answer(resp, len(retry.history) + 1, body)

    def _next(self, retry: LoggingRetry, method: str, url: str, path: str, first: float,
              timeout: tuple[float, float], *, error: Exception) -> LoggingRetry:
        try:
            fresh = retry.increment(method, url, error=error)
        except MaxRetryError as exc:
            passed = isinstance(exc.reason, DeadlineExceeded)
            raise self._give_up(method, path, error, timeout, retry, first, deadline_passed=passed) from None
        except HTTPError:  # a read error of a method the policy may not repeat
            raise self._give_up(method, path, error, timeout, retry, first, deadline_passed=False) from None
        fresh.sleep()
        return fresh

    def _give_up(self, method, path, error, timeout, retry: Retry, first: float, *,
                 deadline_passed: bool) -> TransportError:
        attempts = len(retry.history) + (1 if error is not None and timeout is not None else 0)
        cause = describe_error(error, timeout) if error is not None else "no answer"
        return TransportError(
            self.source, method, path, cause, attempts=attempts, elapsed=self.deadline.now() - first,
            deadline=self.deadline, deadline_passed=deadline_passed,
            unreachable=isinstance(error, (ConnectTimeoutError, SSLError)),
            timed_out=isinstance(error, (ReadTimeoutError, ConnectTimeoutError))
            and not isinstance(error, NewConnectionError))


def _urllib3_cause(exc: requests.exceptions.RequestException) -> Exception:
    """The urllib3 error behind a requests exception (what `Retry` classifies), else `exc`."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return reason if isinstance(reason, HTTPError) else exc


def _cut_json(resp: requests.Response) -> bool:
    """An empty body, or one that claims to be JSON: an answer cut short, worth asking again
    (an HTML page with 200, a login page, is not: the caller explains it)."""
    return not resp.content.strip() or "json" in resp.headers.get("Content-Type", "").lower()


def describe_error(error: Any, timeout: tuple[float, float] | None = None) -> str:
    """A transport failure in words (never a URL's query string, never a header)."""
    if isinstance(error, DeadlineExceeded):
        return describe_error(error.last, timeout) if not isinstance(error.last, str) else error.last
    if isinstance(error, NameResolutionError):
        return "the host name could not be resolved"
    if isinstance(error, NewConnectionError):
        if "refused" in str(error).lower():
            return "the connection was refused (nothing listens on that port)"
        return "no connection could be made"
    if isinstance(error, ConnectTimeoutError):
        return "no connection within " + (f"{timeout[0]:g} s" if timeout else "the connect timeout")
    if isinstance(error, ReadTimeoutError):
        return "no answer within " + (f"{timeout[1]:g} s" if timeout else "the read timeout")
    if isinstance(error, SSLError):
        return "the TLS handshake failed (certificate or protocol mismatch)"
    if isinstance(error, ProtocolError):
        inner = error.args[1] if len(error.args) > 1 else None
        text = str(error)
        if isinstance(inner, IncompleteRead) or "IncompleteRead" in text:
            return "the connection broke in the middle of the answer (the body was cut short)"
        if "RemoteDisconnected" in text or "without response" in text:
            return "the server closed the connection without answering"
        if isinstance(inner, ConnectionResetError) or "reset" in text.lower():
            return "the connection was reset"
        if len(error.args) == 1 and "body" in text:
            return text  # ours: an empty or cut JSON body
        return "the connection broke"
    return type(error).__name__

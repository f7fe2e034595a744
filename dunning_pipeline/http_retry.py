"""urllib3's Retry, telling the run's log about each retry (a slowed run should say why), and
the requests Session that applies it to every request."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from urllib3.util.retry import Retry


def retrying_session(retry: Retry, *, pool_maxsize: int = DEFAULT_POOLSIZE) -> requests.Session:
    """A Session whose every http(s) request is retried by `retry`."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class LoggingRetry(Retry):
    """A `Retry` that reports each retry to `on_retry` (method, path, cause; never a query
    string or a header, so no secret can reach the log)."""

    def __init__(self, *args, on_retry: Callable[[str], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_retry = on_retry

    def new(self, **kw) -> LoggingRetry:
        fresh = super().new(**kw)
        fresh.on_retry = self.on_retry
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None) -> Retry:
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.on_retry is not None:
            if response is not None and response.status:
                cause = f"HTTP {response.status}"
                after = response.headers.get("Retry-After") if response.headers else None
                if after:
                    cause += f", Retry-After {after} s"
            else:
                cause = type(error).__name__ if error is not None else "an error"
            path = urlsplit(url or "").path or "/"
            attempt = len(fresh.history)
            left = fresh.total if isinstance(fresh.total, int) else None
            budget = f" of {attempt + left}" if left is not None and left >= 0 else ""
            self.on_retry(f"{method} {path}: {cause}; retry {attempt}{budget}")
        return fresh

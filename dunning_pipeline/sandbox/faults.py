"""Faults the sandbox servers inject on demand: per service, a queue for the next requests.

    sb.faults.set("zendesk", "rate_limit", count=2, retry_after=1)   # next 2 Zendesk requests get 429
    sb.faults.set("odoo", "server_error", status=503)                 # next Odoo request: HTML 503
    sb.faults.set("zendesk", "drop", path="/comments")                # only a matching path consumes it
    sb.faults.set("odoo", "hang")                                     # hangs until sb.faults.release()
    sb.faults.clear()

A "late commit" (`late_commit`, `Sandbox.late_commit`) is a data fault rather than an HTTP one:
an invoice paid by a transaction that committed after the last extraction, but stamped with a
`write_date` before that extraction's high-water mark, as Odoo stamps the transaction's start.

`set` appends to the service's queue; each request takes the first queued fault whose `path`
(a substring of the request path) matches, so faults fire in the order they were set. A random
mode (`enable_random`, the CLI's `--faults`) adds a light, seeded rate of transient faults for
demos. Thread-safe: the servers answer requests on several threads.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dunning_pipeline.sandbox import data as sd

SERVICES = ("odoo", "zendesk", "slack")

# kind -> {option: default}; a missing default (None) means "no such header / not used".
KINDS: dict[str, dict] = {
    "rate_limit": {"retry_after": 1},          # 429 + Retry-After (seconds)
    "server_error": {"status": 502, "retry_after": None},  # 5xx with a proxy's HTML page
    "slow": {"delay": 2.0},                    # answer normally after `delay` seconds
    "drop": {},                                # close the connection without any response
    "lost_answer": {},                         # serve the request, then close without answering
    "bad_credentials": {},                     # answer as the real API does for a wrong key/token
    "expired_key": {},                         # Odoo: the API key expired (401 "Invalid apikey", as a wrong one)
    "slack_error": {"error": "channel_not_found"},  # Slack: HTTP 200 {"ok": false, "error": ...}
    "malformed": {},                           # HTTP 200, JSON content type, truncated body
    "truncated": {},                           # the real answer, cut after half its Content-Length (FIN)
    "reset_mid_body": {},                      # the real answer's headers and half its body, then a reset (RST)
    "empty": {},                               # HTTP 200, JSON content type, no body at all
    "hang": {},                                # no answer until `release()` (or clear/stop), then closed
    "status": {"status": 500, "body": "", "content_type": "text/plain", "retry_after": None},
}
# Transient kinds the random mode draws from (a client with retries must survive all of them).
RANDOM_KINDS = ("rate_limit", "server_error", "slow")


@dataclass(frozen=True)
class Fault:
    kind: str
    opts: dict = field(default_factory=dict)
    path: str | None = None

    def opt(self, name: str):
        return self.opts.get(name, KINDS[self.kind].get(name))


class Faults:
    """The fault queues of the three services, plus an optional random rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, list[Fault]] = {s: [] for s in SERVICES}
        self._random_rate = 0.0
        self._random_rng = random.Random(0)
        self._random_kinds: tuple[str, ...] = RANDOM_KINDS
        self.applied: list[tuple[str, str, str]] = []  # (service, kind, path) of each fault served
        self._released = threading.Event()  # wakes every request held by a "hang" fault

    def set(self, service: str, kind: str, count: int = 1, path: str | None = None, **opts) -> None:
        """Make the next `count` requests to `service` (whose path contains `path`, if given) fail."""
        _check_service(service)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known kinds: {', '.join(KINDS)}")
        unknown = set(opts) - set(KINDS[kind])
        if unknown:
            raise ValueError(f"fault {kind!r} takes options {sorted(KINDS[kind]) or 'none'},"
                             f" not {sorted(unknown)}")
        if kind == "slack_error" and service != "slack":
            raise ValueError("fault 'slack_error' applies to the 'slack' service only")
        if kind == "expired_key" and service != "odoo":
            raise ValueError("fault 'expired_key' applies to the 'odoo' service only")
        if count < 0:
            raise ValueError("count must be >= 0")
        fault = Fault(kind, dict(opts), path)
        with self._lock:
            if kind == "hang":
                self._released.clear()
            self._queues[service].extend([fault] * count)

    def release(self) -> None:
        """Let every request held by a "hang" fault go (its connection is closed unanswered)."""
        self._released.set()

    def wait_released(self, timeout: float | None = None) -> bool:
        """Block a "hang" request until `release()`; True once released."""
        return self._released.wait(timeout)

    def clear(self, service: str | None = None) -> None:
        """Drop queued faults (of one service, or all) and switch the random mode off."""
        with self._lock:
            for name in ([service] if service else SERVICES):
                _check_service(name)
                self._queues[name].clear()
            if service is None:
                self._random_rate = 0.0
        self.release()

    def pending(self, service: str) -> list[Fault]:
        with self._lock:
            return list(self._queues[service])

    def enable_random(self, rate: float = 0.05, seed: int = 0,
                      kinds: tuple[str, ...] = RANDOM_KINDS) -> None:
        """Each request fails with probability `rate` with one of `kinds` (seeded, for demos)."""
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._random_rate = rate
            self._random_rng = random.Random(seed)
            self._random_kinds = tuple(kinds)

    def take(self, service: str, path: str) -> Fault | None:
        """The fault for this request, consumed; None when the request should be served."""
        with self._lock:
            queue = self._queues[service]
            for i, fault in enumerate(queue):
                if fault.path is None or fault.path in path:
                    del queue[i]
                    self.applied.append((service, fault.kind, path))
                    return fault
            if self._random_rate and self._random_rng.random() < self._random_rate:
                kind = self._random_rng.choice(self._random_kinds)
                opts = {"status": self._random_rng.choice([502, 503])} if kind == "server_error" else (
                    {"delay": 0.5} if kind == "slow" else {})
                self.applied.append((service, kind, path))
                return Fault(kind, opts)
        return None


@dataclass(frozen=True)
class LateCommit:
    move_id: int
    write_date: str  # what Odoo stamped: before the mark
    mark: str  # the newest write_date when the payment committed (the last high-water mark)


def late_commit(data: sd.SandboxData, *, seconds_before_mark: int = 3600,
                move_id: int | None = None, mark: str | None = None) -> LateCommit:
    """Pay an open invoice in full with a write_date `seconds_before_mark` before `mark` (default:
    the newest write_date of the moves, i.e. the mark of an extraction run now): a payment whose
    transaction started then and committed only now (a long reconciliation batch). A
    `write_date >= mark - overlap` read never returns it."""
    fmt = "%Y-%m-%d %H:%M:%S"
    with data.lock:
        mark = mark or newest_move_write_date(data)
        stamp = datetime.strptime(mark, fmt) - timedelta(seconds=seconds_before_mark)
        text = stamp.strftime(fmt)
        candidates = [m for m in data.moves if (move_id is None or m["id"] == move_id)
                      and m["move_type"] == "out_invoice" and m["state"] == "posted"
                      and m["payment_state"] in ("not_paid", "partial") and m["write_date"] < text]
        if not candidates:
            raise LookupError("no open invoice written before the mark to pay late"
                              + (f" (move {move_id})" if move_id is not None else ""))
        move = candidates[0]
        factory = data._seq.get("_factory")
        if factory is None:
            raise LookupError("the sandbox data has no move factory (generate it with data.generate)")
        sd._set_payment(factory, move, "paid", 0, int(stamp.replace(tzinfo=UTC).timestamp()))
        move["write_date"] = text  # the transaction's start, not its commit
        data.changed()
    return LateCommit(move["id"], text, mark)


def late_new_invoice(data: sd.SandboxData, *, seconds_before_mark: int = 3600) -> LateCommit:
    """A new invoice (a copy of an open one under the next id and number) created by a
    transaction that commits now but started `seconds_before_mark` before the newest write_date:
    an import that ran long. It was never extracted, and no write_date window returns it."""
    fmt = "%Y-%m-%d %H:%M:%S"
    with data.lock:
        mark = newest_move_write_date(data)
        text = (datetime.strptime(mark, fmt) - timedelta(seconds=seconds_before_mark)).strftime(fmt)
        template = next(m for m in data.moves if m["move_type"] == "out_invoice"
                        and m["state"] == "posted" and m["payment_state"] == "not_paid")
        seq = data._seq
        new_id = max(seq.get("_next_move_id", 0), data.moves[-1]["id"] + 1)
        seq["_next_move_id"] = new_id + 1
        day = datetime.strptime(text, fmt).date()
        move = dict(template, id=new_id, write_date=text, create_date=text, invoice_date=day.isoformat(),
                    name=sd._move_name(seq, template["company_id"][0], "out_invoice", day))
        data.moves.append(move)  # ids ascend: the list stays sorted by id
        data.changed()
    return LateCommit(new_id, text, mark)


def newest_move_write_date(data: sd.SandboxData) -> str:
    return max(m["write_date"] for m in data.moves)


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")


# Bodies a real proxy in front of the service sends: nginx for Odoo, Cloudflare for Zendesk/Slack.
_REASONS = {403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def nginx_page(status: int) -> bytes:
    title = f"{status} {_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
            f"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()


def cloudflare_page(status: int, host: str) -> bytes:
    reason = {502: "Bad gateway", 503: "Service unavailable", 504: "Gateway time-out",
              500: "Internal server error", 429: "Too many requests"}.get(status, "Error")
    return (f"<!DOCTYPE html>\n<!--[if lt IE 7]> <html class=\"no-js ie6 oldie\" lang=\"en-US\"> "
            f"<![endif]-->\n<html lang=\"en-US\">\n<head>\n<title>{host} | {status}: {reason}</title>\n"
            f"<meta charset=\"UTF-8\" />\n</head>\n<body>\n<div id=\"cf-wrapper\">\n"
            f"<h1><span class=\"cf-error-type\">Error</span> <span class=\"cf-error-code\">{status}"
            f"</span></h1>\n<h2 class=\"cf-subheadline\">{reason}</h2>\n"
            f"<p>The web server reported a {reason.lower()} error.</p>\n"
            f"<span class=\"cf-footer-item\">Cloudflare Ray ID: <strong>8a1f2c3d4e5f6a7b</strong>"
            f"</span>\n</div>\n</body>\n</html>\n").encode()

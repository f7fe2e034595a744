"""A local Zendesk Support API: incremental cursor exports, ticket comments, users, organizations.

Behaves as described in /work/shared/reference/ZENDESK.md: Basic auth `{email}/token:{token}`
(else 401 "Couldn't authenticate you"); the ticket export ordered by (generated_timestamp, id)
(the users export by (updated_at, id)), its cursors encoding that position, so a ticket re-sent
with a new generated_timestamp but the same updated_at reappears; the page that ends the stream
carries `after_cursor: null` when it is empty or answers a `start_time` request in one page (as
recorded traffic shows), otherwise the cursor to resume from; a cursor that does not decode, or
is older than `cursor_ttl_seconds`, is a 422; `start_time` less than a minute before the
sandbox's clock (`data.now`) is a 422; export endpoints allow `export_limit_per_minute` requests
per minute (429 + Retry-After); every endpoint counts against an account-wide limit and answers
with the `ratelimit-*` headers (and `zendesk-ratelimit-tickets-index` on the ticket export);
paths listed in `forbidden_paths` answer Zendesk's nested 403 body; unknown records are 404
RecordNotFound. Comments come with `html_body` and a `plain_body` reflowed from it (not equal
to `body`).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import html
import json
import math
import re
import threading
import time
from collections import deque
from datetime import datetime

from dunning_pipeline.sandbox import data as sd
from dunning_pipeline.sandbox.faults import Fault, cloudflare_page
from dunning_pipeline.sandbox.base_server import App, Request, Response

MAX_EXPORT_PAGE = 1000
TICKET_EVENTS_PATH = "/api/v2/incremental/ticket_events.json"
# Ids of the audits that are not a comment's (a later status change, a deletion, a redaction).
_STATUS_AUDIT_BASE = 8_000_000_000_000
_REDACTION_AUDIT_BASE = 9_000_000_000_000
REDACTED = "\u2587"  # what Zendesk writes over redacted text
MAX_CURSOR_PAGE = 100
_END = 2 ** 63  # an id after every id: "everything up to this second"


class _Window:
    """A sliding one-minute request counter (real time: clients really wait for Retry-After);
    tests may shorten the window (`period` seconds) so a 429 costs them a second, not a minute."""

    def __init__(self, limit: int | None, period: float = 60.0):
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()
        self.lock = threading.Lock()

    def hit(self) -> tuple[bool, int, int]:
        """(allowed, remaining, retry_after seconds)."""
        if not self.limit:
            return True, 1_000_000, 0
        now = time.monotonic()
        with self.lock:
            while self.stamps and now - self.stamps[0] >= self.period:
                self.stamps.popleft()
            if len(self.stamps) >= self.limit:
                return False, 0, max(1, math.ceil(self.period - (now - self.stamps[0])))
            self.stamps.append(now)
            return True, self.limit - len(self.stamps), 0


def encode_cursor(updated_at: str | int, record_id: int) -> str:
    """Zendesk's cursor shape: base64 of "<epoch>.0||<id>|" (the last position emitted)."""
    if isinstance(updated_at, int):  # a generated_timestamp
        position = f"{updated_at}.0"
    else:
        try:
            position = f"{int(sd.parse_zendesk_datetime(updated_at).timestamp())}.0"
        except (TypeError, ValueError):  # a hand-spoilt timestamp: keep its text so paging still advances
            position = str(updated_at)
    return base64.b64encode(f"{position}||{record_id}|".encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        position, sep, rest = text.partition("||")
        if not sep:
            raise ValueError("no separator")
        record_id = int(rest.rstrip("|"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    try:
        return _iso(int(float(position))), record_id
    except (ValueError, OverflowError, OSError):
        return position, record_id


def _epoch_of(position) -> int:
    """A cursor position (epoch seconds, or ISO text of an older cursor) as epoch seconds."""
    if isinstance(position, int):
        return position
    try:
        return int(sd.parse_zendesk_datetime(position).timestamp())
    except (TypeError, ValueError):
        return 0


def _iso(epoch: int) -> str:
    return sd.zendesk_datetime(datetime.fromtimestamp(epoch, tz=sd.UTC))


def _error(status: int, error: str, description: str, headers: dict | None = None) -> Response:
    return Response.json({"error": error, "description": description}, status, headers)


# Zendesk's 403 nests its error (unlike its 401/404/422 bodies).
FORBIDDEN_MESSAGE = ("You do not have access to this page. Please contact the account owner of this"
                     " help desk for further help.")


def _forbidden() -> Response:
    return Response.json({"error": {"title": "Forbidden", "message": FORBIDDEN_MESSAGE}}, 403)


def _ticket_position(rec: dict) -> int:
    """Where a ticket sits in the export: its generated_timestamp, which every change moves (so
    never before its updated_at; a record edited by hand by its updated_at alone moves too)."""
    stamp = rec.get("generated_timestamp")
    stamp = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else 0
    try:
        return max(stamp, int(sd.parse_zendesk_datetime(rec.get("updated_at")).timestamp()))
    except (TypeError, ValueError, AttributeError):
        return stamp


_TICKET_COMMENTS = re.compile(r"^/api/v2/tickets/(\d+)/comments\.json$")
_TICKET = re.compile(r"^/api/v2/tickets/(\d+)\.json$")
_USER = re.compile(r"^/api/v2/users/(\d+|me)\.json$")
_ORG = re.compile(r"^/api/v2/organizations/(\d+)\.json$")


class ZendeskApp(App):
    service = "zendesk"
    server_header = "cloudflare"

    def __init__(self, data: sd.SandboxData, email: str, api_token: str,
                 export_limit_per_minute: int | None = 10, rate_limit_per_minute: int | None = 700,
                 index_threshold: int = 20_000, cursor_ttl_seconds: int | None = None):
        self.data = data
        self.cursor_ttl_seconds = cursor_ttl_seconds  # cursors older than this (sandbox clock) expire
        self.forbidden_paths: set[str] = set()  # path substrings the token's user may not read
        self.email, self.api_token = email, api_token
        self.export_window = _Window(export_limit_per_minute)
        # The ticket event export has its own budget of the same size (see set_events_limit).
        self.events_window = _Window(export_limit_per_minute)
        self.redactions: list[dict] = []  # CommentRedactionEvent audits (see redact_comment)
        self.account_window = _Window(rate_limit_per_minute)
        self.index_threshold = index_threshold
        self._expected_auth = "Basic " + base64.b64encode(f"{email}/token:{api_token}".encode()).decode()
        self._indexes: dict = {}

    # ------------------------------------------------------------------ faults
    def fault_response(self, fault: Fault, req: Request) -> Response | None:
        if fault.kind == "rate_limit":
            retry = str(fault.opt("retry_after"))
            return _error(429, "APIRateLimitExceeded",
                          "Number of allowed API requests per minute exceeded",
                          {"Retry-After": retry, "X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0"})
        if fault.kind == "server_error":
            status = int(fault.opt("status"))
            headers = {"Retry-After": str(fault.opt("retry_after"))} if fault.opt("retry_after") else {}
            host = (req.headers.get("Host") or "sandbox.zendesk.com").split(":")[0]
            return Response.html(cloudflare_page(status, host), status, headers)
        return None

    # ------------------------------------------------------------------ routing
    def handle(self, req: Request) -> Response:
        auth = req.headers.get("Authorization") or ""
        if req.fault is not None and req.fault.kind == "bad_credentials" or auth.strip() != self._expected_auth:
            return Response.json({"error": "Couldn't authenticate you"}, 401)
        ok, remaining, retry = self.account_window.hit()
        limit = str(self.account_window.limit or 700)
        limit_headers = {"X-Rate-Limit": limit, "X-Rate-Limit-Remaining": str(remaining),
                         "ratelimit-limit": limit, "ratelimit-remaining": str(remaining),
                         "ratelimit-reset": str(max(1, retry or 60))}
        if not ok:
            return _error(429, "APIRateLimitExceeded", "Number of allowed API requests per minute exceeded",
                          {**limit_headers, "Retry-After": str(retry)})
        if req.method != "GET":
            return _error(405, "MethodNotAllowed", "The sandbox serves read endpoints only")
        path = req.path
        if any(p in path for p in self.forbidden_paths):
            resp = _forbidden()
            resp.headers.update(limit_headers)
            return resp
        if path == TICKET_EVENTS_PATH:
            ok, remaining, retry = self.events_window.hit()
            if not ok:
                return _error(429, "APIRateLimitExceeded",
                              "Number of allowed incremental export API requests per minute exceeded",
                              {"Retry-After": str(retry), "ratelimit-remaining": "0"})
            resp = self._ticket_events(req)
            resp.headers.update({"ratelimit-limit": str(self.events_window.limit or 700),
                                 "ratelimit-remaining": str(remaining)})
            return resp
        if path in ("/api/v2/incremental/tickets/cursor.json", "/api/v2/incremental/users/cursor.json"):
            ok, remaining, retry = self.export_window.hit()
            export_headers = {"X-Rate-Limit": str(self.export_window.limit or 700),
                              "X-Rate-Limit-Remaining": str(remaining),
                              "ratelimit-limit": str(self.export_window.limit or 700),
                              "ratelimit-remaining": str(remaining),
                              "ratelimit-reset": str(max(1, retry or 60))}
            if not ok:
                return _error(429, "APIRateLimitExceeded",
                              "Number of allowed incremental export API requests per minute exceeded",
                              {**export_headers, "Retry-After": str(retry)})
            kind = "tickets" if "/tickets/" in path else "users"
            resp = self._export(req, kind)
            resp.headers.update(export_headers)
            if kind == "tickets":
                resp.headers["zendesk-ratelimit-tickets-index"] = (
                    f"total={self.export_window.limit or 700}; remaining={remaining}; resets=60")
            return resp
        with self.data.lock:
            if m := _TICKET_COMMENTS.match(path):
                resp = self._comments(req, int(m.group(1)))
            elif m := _TICKET.match(path):
                resp = self._ticket(req, int(m.group(1)))
            elif m := _USER.match(path):
                resp = self._user(req, m.group(1))
            elif path == "/api/v2/organizations.json":
                resp = self._organizations(req)
            elif m := _ORG.match(path):
                org = next((o for o in self.data.zendesk_organizations if o["id"] == int(m.group(1))), None)
                resp = (Response.json({"organization": self._absolute(req, org)}) if org
                        else _error(404, "RecordNotFound", "Not found"))
            else:
                resp = _error(404, "InvalidEndpoint", "Not found")
        resp.headers.update(limit_headers)
        return resp

    @staticmethod
    def _absolute(req: Request, rec: dict) -> dict:
        url = rec.get("url")
        if isinstance(url, str) and url.startswith("/"):
            return {**rec, "url": req.base_url + url}
        return rec

    # ------------------------------------------------------------------ incremental exports
    def _keys(self, kind: str) -> list[tuple]:
        """(generated_timestamp, id, position) of tickets, (updated_at, id, position) of users,
        sorted: the export order."""
        records = self.data.zendesk_tickets if kind == "tickets" else self.data.zendesk_users
        stamp = (self.data.version, len(records))
        cached = self._indexes.get(kind)
        if len(records) >= self.index_threshold and cached and cached[0] == stamp:
            return cached[1]
        if kind == "tickets":
            keys = sorted((_ticket_position(r), r["id"], i) for i, r in enumerate(records))
        else:
            keys = sorted((str(r.get("updated_at") or ""), r["id"], i) for i, r in enumerate(records))
        self._indexes[kind] = (stamp, keys)
        return keys

    def _export(self, req: Request, kind: str) -> Response:
        per_page_text = req.arg("per_page", str(MAX_EXPORT_PAGE))
        try:
            per_page = int(per_page_text)
            if per_page < 1:
                raise ValueError
        except ValueError:
            return _error(400, "InvalidPaginationParameter", "per_page must be a positive integer")
        per_page = min(per_page, MAX_EXPORT_PAGE)
        cursor, start_time = req.arg("cursor"), req.arg("start_time")
        with self.data.lock:
            now_epoch = int(self.data.now.timestamp())
            if cursor:
                try:
                    position = decode_cursor(cursor)
                except ValueError:
                    return _error(422, "InvalidValue", "Invalid cursor")
                if self._expired(position):
                    return _error(422, "InvalidValue", "Cursor expired. Restart the export with a start_time.")
                if kind == "tickets":
                    position = (_epoch_of(position[0]), position[1])
            elif start_time is not None:
                try:
                    start = int(start_time)
                except ValueError:
                    return _error(422, "InvalidValue", "start_time must be a Unix epoch time in seconds")
                if start > now_epoch - 60:
                    return _error(422, "InvalidValue",
                                  "Too recent start_time. Use a start_time older than one minute.")
                if kind == "tickets":
                    position = (start - 1, _END)
                else:
                    position = (_iso(max(0, start - 1)), _END) if start > 0 else ("", _END)
            else:
                return _error(400, "InvalidValue", "start_time or cursor is required")
            records = self.data.zendesk_tickets if kind == "tickets" else self.data.zendesk_users
            keys = self._keys(kind)
            lo = bisect.bisect_right(keys, (position[0], position[1], _END))
            chunk = keys[lo:lo + per_page]
            exclude_deleted = kind == "tickets" and (req.arg("exclude_deleted") or "").lower() == "true"
            items = [records[i] for _, _, i in chunk]
            if exclude_deleted:
                items = [t for t in items if t.get("status") != "deleted"]
            end_of_stream = lo + per_page >= len(keys)
            if end_of_stream and (not chunk or not cursor):
                after = None  # recorded traffic: the last page may carry no cursor at all
            elif chunk:
                after = encode_cursor(chunk[-1][0], chunk[-1][1])
            else:
                after = cursor
            body = {kind: [self._absolute(req, r) for r in items]}
            includes = {s.strip() for s in (req.arg("include") or "").split(",") if s.strip()}
            if "users" in includes and kind == "tickets":
                body["users"] = self._users_for(req, items)
            if "organizations" in includes:
                org_ids = {r.get("organization_id") for r in items if r.get("organization_id")}
                body["organizations"] = [self._absolute(req, o) for o in self.data.zendesk_organizations
                                         if o["id"] in org_ids]
        path = req.path
        body.update({
            "after_url": f"{req.base_url}{path}?cursor={after}" if after else None, "after_cursor": after,
            "before_url": None, "before_cursor": None, "end_of_stream": end_of_stream,
        })
        return Response.json(body)

    def _expired(self, position: tuple) -> bool:
        if not self.cursor_ttl_seconds:
            return False
        epoch = _epoch_of(position[0])
        return epoch < int(self.data.now.timestamp()) - self.cursor_ttl_seconds

    def _users_for(self, req: Request, items: list[dict]) -> list[dict]:
        wanted = set()
        for t in items:
            for key in ("requester_id", "submitter_id", "assignee_id"):
                if t.get(key):
                    wanted.add(t[key])
            for key in ("collaborator_ids", "email_cc_ids", "follower_ids"):
                wanted.update(t.get(key) or [])
        users = self.data.zendesk_users
        out = []
        for uid in sorted(wanted):
            try:
                out.append(self._absolute(req, sd._by_id(users, uid)))
            except KeyError:
                continue
        return out

    # ------------------------------------------------------------------ ticket event export
    def set_events_limit(self, limit: int | None, period_seconds: float = 60.0) -> None:
        """The ticket event export's budget: `limit` requests per `period_seconds` (None: none)."""
        self.events_window = _Window(limit, period_seconds)

    def redact_comment(self, comment_id: int, text: str) -> int:
        """Redact `text` from a comment (Zendesk's redaction: the characters become \u2587 in
        every answer from now on) and log the CommentRedactionEvent audit at the sandbox's clock,
        one second later than the last; returns the ticket id."""
        with self.data.lock:
            for ticket_id, thread in self.data.zendesk_comments.items():
                for i, c in enumerate(thread):
                    if c["id"] == comment_id:
                        break
                else:
                    continue
                body = c["body"].replace(text, REDACTED * len(text))
                thread[i] = {k: v for k, v in c.items() if k not in ("html_body", "plain_body")}
                thread[i]["body"] = body
                at = int(self.data.now.timestamp()) - 120 + len(self.redactions)
                self.redactions.append({"ticket_id": ticket_id, "comment_id": comment_id, "timestamp": at,
                                        "id": _REDACTION_AUDIT_BASE + len(self.redactions) + 1})
                self.data.changed()
                return ticket_id
        raise KeyError(f"no comment {comment_id}")

    def _event_keys(self) -> list[tuple]:
        """(timestamp, audit id, kind, ticket, payload) of every ticket event, in export order:
        one audit per comment (the first also creating the ticket), a status-change audit when
        the ticket changed after its last comment (a deletion too), and the redactions."""
        tickets, comments = self.data.zendesk_tickets, self.data.zendesk_comments
        n_comments = sum(map(len, comments.values()))
        stamp = (self.data.version, len(tickets), n_comments, len(self.redactions))
        cached = self._indexes.get("events")
        if n_comments >= self.index_threshold and cached and cached[0] == stamp:
            return cached[1]
        keys = []
        for t in tickets:
            thread = comments.get(t["id"]) or []
            last = 0
            for n, c in enumerate(thread):
                at = _epoch_of(c.get("created_at"))
                last = max(last, at)
                keys.append((at, c.get("audit_id") or c["id"], "create" if n == 0 else "comment", t, c))
            changed = _ticket_position(t)
            if changed > last or t.get("status") == "deleted":
                keys.append((max(changed, last), _STATUS_AUDIT_BASE + t["id"], "status", t, None))
        by_id = {t["id"]: t for t in tickets} if self.redactions else {}
        for r in self.redactions:
            keys.append((r["timestamp"], r["id"], "redaction", by_id.get(r["ticket_id"]), r))
        keys.sort(key=lambda k: (k[0], k[1]))
        self._indexes["events"] = (stamp, keys)
        return keys

    def _ticket_events(self, req: Request) -> Response:
        """Time-based paging: events with timestamp >= start_time, up to per_page (1000); the
        next page starts at `end_time`, the last event's second, so that second's events come
        again (clients de-duplicate). A full page of one single second takes all of that second."""
        start_text = req.arg("start_time")
        if start_text is None:
            return _error(400, "InvalidValue", "start_time is required")
        try:
            start = int(start_text)
            per_page = min(MAX_EXPORT_PAGE, int(req.arg("per_page", str(MAX_EXPORT_PAGE))))
            if per_page < 1:
                raise ValueError
        except ValueError:
            return _error(422, "InvalidValue", "start_time must be a Unix epoch time in seconds")
        with self.data.lock:
            if start > int(self.data.now.timestamp()) - 60:
                return _error(422, "InvalidValue", "Too recent start_time. Use a start_time older than one minute.")
            keys = self._event_keys()
            lo = bisect.bisect_left(keys, start, key=lambda k: k[0])
            hi = min(len(keys), lo + per_page)
            whole_second = hi - lo == per_page and keys[hi - 1][0] == start
            if whole_second:
                hi = bisect.bisect_right(keys, start, key=lambda k: k[0])
            comments = "comment_events" in (req.arg("include") or "")
            events = [self._event(k, comments) for k in keys[lo:hi]]
        end_time = start + 1 if whole_second else keys[hi - 1][0] if hi > lo else start
        include = "&include=comment_events" if comments else ""
        return Response.json({
            "ticket_events": events, "count": len(events),
            "next_page": f"{req.base_url}{req.path}?start_time={end_time}{include}",
            "end_time": end_time, "end_of_stream": hi - lo < per_page})

    @staticmethod
    def _event(key: tuple, with_comments: bool) -> dict:
        at, audit_id, kind, ticket, payload = key
        ticket_id = ticket["id"] if ticket else payload["ticket_id"]
        children: list[dict] = []
        if kind in ("create", "comment"):
            comment = _render_comment(payload)
            if kind == "create":  # mixed types: the fields the ticket was created with
                children += [{"id": audit_id + 1, "event_type": "Create", "field_name": "subject",
                              "value": ticket.get("raw_subject")},
                             {"id": audit_id + 2, "event_type": "Create", "field_name": "requester_id",
                              "value": str(ticket.get("requester_id"))}]
            if with_comments:
                children.insert(0, {**comment, "event_type": "Comment"})
            updater, via = payload.get("author_id"), payload.get("via")
        elif kind == "status":
            children.append({"id": audit_id + 1, "event_type": "Change", "field_name": "status",
                             "value": ticket.get("status"), "previous_value": "open"})
            updater, via = ticket.get("assignee_id") or -1, {"channel": "web", "source": {}}
        else:
            children.append({"id": audit_id + 1, "event_type": "CommentRedactionEvent",
                             "comment_id": payload["comment_id"]})
            updater, via = -1, {"channel": "web", "source": {}}
        return {"id": audit_id, "ticket_id": ticket_id, "timestamp": at, "created_at": _iso(at),
                "updater_id": updater, "via": via, "event_type": "Audit", "system": {},
                "merged_ticket_ids": [], "child_events": children}

    # ------------------------------------------------------------------ records
    def _live_ticket(self, ticket_id: int) -> dict | None:
        """The ticket, or None when it does not exist or was deleted (Zendesk answers 404 for both)."""
        try:
            ticket = sd._by_id(self.data.zendesk_tickets, ticket_id)
        except KeyError:
            return None
        return None if ticket.get("status") == "deleted" else ticket

    def _ticket(self, req: Request, ticket_id: int) -> Response:
        ticket = self._live_ticket(ticket_id)
        if ticket is None:
            return _error(404, "RecordNotFound", "Not found")
        return Response.json({"ticket": self._absolute(req, ticket)})

    def _user(self, req: Request, which: str) -> Response:
        users = self.data.zendesk_users
        if which == "me":
            user = next((u for u in users if u.get("email") == self.email), None)
        else:
            try:
                user = sd._by_id(users, int(which))
            except KeyError:
                user = None
        if user is None:
            return _error(404, "RecordNotFound", "Not found")
        return Response.json({"user": self._absolute(req, user)})

    def _comments(self, req: Request, ticket_id: int) -> Response:
        if self._live_ticket(ticket_id) is None:
            return _error(404, "RecordNotFound", "Not found")
        thread = list(self.data.zendesk_comments.get(ticket_id, []))
        if (req.arg("sort_order") or "asc").lower() == "desc":
            thread.reverse()
        resp = self._paginate(req, thread, "comments", _render_comment)
        if resp.status == 200 and "users" in (req.arg("include") or ""):
            payload = json.loads(resp.body)
            authors = sorted({c["author_id"] for c in payload["comments"]})
            payload["users"] = [self._absolute(req, u) for u in self.data.zendesk_users
                                if u["id"] in authors]
            resp = Response.json(payload, headers=resp.headers)
        return resp

    def _organizations(self, req: Request) -> Response:
        return self._paginate(req, self.data.zendesk_organizations, "organizations",
                              lambda o: self._absolute(req, o))

    def _paginate(self, req: Request, records: list[dict], key: str, render) -> Response:
        """Cursor pagination (page[size], page[after], page[before]) or, without page[...], offset pages."""
        base = f"{req.base_url}{req.path}"
        if any(k.startswith("page[") for k in req.query):
            try:
                size = int(req.arg("page[size]", "100"))
            except ValueError:
                return _error(400, "InvalidPaginationParameter", "page[size] must be an integer")
            if size < 1 or size > MAX_CURSOR_PAGE:
                return _error(400, "InvalidPaginationParameter",
                              f"page[size] must be between 1 and {MAX_CURSOR_PAGE}")
            start = 0
            after, before = req.arg("page[after]"), req.arg("page[before]")
            try:
                if after:
                    start = _decode_page_cursor(after) + 1
                    end = start + size
                elif before:
                    end = _decode_page_cursor(before)
                    start = max(0, end - size)
                else:
                    end = size
            except ValueError:
                return _error(400, "InvalidPaginationParameter", "invalid page cursor")
            page = records[start:end]
            has_more = (end < len(records)) if not before else start > 0
            after_cursor = _encode_page_cursor(start + len(page) - 1) if page else None
            before_cursor = _encode_page_cursor(start) if page else None
            body = {key: [render(r) for r in page],
                    "meta": {"has_more": has_more, "after_cursor": after_cursor,
                             "before_cursor": before_cursor},
                    "links": {"prev": f"{base}?page%5Bbefore%5D={before_cursor}&page%5Bsize%5D={size}"
                              if before_cursor else None,
                              "next": f"{base}?page%5Bafter%5D={after_cursor}&page%5Bsize%5D={size}"
                              if after_cursor else None}}
            return Response.json(body)
        try:
            per_page = min(100, max(1, int(req.arg("per_page", "100"))))
            page_no = max(1, int(req.arg("page", "1")))
        except ValueError:
            return _error(400, "InvalidPaginationParameter", "page and per_page must be integers")
        start = (page_no - 1) * per_page
        page = records[start:start + per_page]
        more = start + per_page < len(records)
        return Response.json({
            key: [render(r) for r in page],
            "next_page": f"{base}?page={page_no + 1}&per_page={per_page}" if more else None,
            "previous_page": f"{base}?page={page_no - 1}&per_page={per_page}" if page_no > 1 else None,
            "count": len(records)})


def _encode_page_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": "created_at,id", "v": position}).encode()).decode()


def _decode_page_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())["v"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(value, int) or value < -1:
        raise ValueError("invalid cursor")
    return value


def _render_comment(comment: dict) -> dict:
    """`html_body` from the body's paragraphs and lines; `plain_body` reflowed from the HTML as
    Zendesk does it (lines of a paragraph joined, runs of spaces collapsed): not equal to `body`."""
    if "html_body" in comment and "plain_body" in comment:
        return comment
    body = comment.get("body") or ""
    paragraphs = [p for p in body.split("\n\n")]
    markup = "".join("<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
                     for p in paragraphs)
    plain = "\n\n".join(" ".join(p.split()) for p in paragraphs).strip()
    return {**comment, "html_body": f'<div class="zd-comment" dir="auto">{markup}</div>',
            "plain_body": plain}


"""A read-only client for Odoo's external API: JSON-RPC (Odoo 16 to 19) and JSON-2 (Odoo 19+).

It authenticates with an API key, pages through `search_read` by `id > last_id` (never by
growing offsets, which get slow on large tables), and turns every failure into an `OdooError`
subclass whose message says what happened and what to fix. Transient faults (429, 500 without an
Odoo error in the body, 502/503/504, timeouts, connections dropped or reset, also in the middle of
the body, empty or truncated answers) are retried by one urllib3 `Retry` policy
(`http_retry.SourceTransport`), honouring `Retry-After`, within the source deadline
(DUNNING_SOURCE_DEADLINE_SECONDS). The API key never appears in a message, a log line or a repr.

No Dagster import here: the resource (`resource.py`) builds this client from configuration.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.util.retry import Retry

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
from dunning_pipeline.odoo.errors import (  # noqa: F401 - raised by the client, part of its API
    OdooAccessError,
    OdooAuthError,
    OdooConfigError,
    OdooDataError,
    OdooError,
    OdooJson2Unavailable,
    OdooResponseError,
    OdooUnavailableError,
)

log = logging.getLogger(__name__)

PROTOCOLS = settings.ODOO_PROTOCOLS
# 500 too, unless its body is Odoo's own error (JSON-2 answers an unknown field with 500).
RETRY_STATUSES = (429, 500, 502, 503, 504)
# JSON-2 (`/json/2/<model>/<method>`) exists from Odoo 19 on.
JSON2_MIN_MAJOR = 19
_MAX_SERVER_TEXT = 300


# -- value objects -----------------------------------------------------------------------------
class _Secret:
    """Holds the API key so that no repr, str or vars() dump of the client can show it."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


@dataclass(frozen=True)
class OdooVersion:
    """The server's version as reported by `common.version` or `GET /web/version`."""

    label: str  # e.g. "17.0", "saas~18.3", "19.0"
    major: int

    @property
    def supports_json2(self) -> bool:
        return self.major >= JSON2_MIN_MAJOR


def build_retry(max_retries: int, backoff_factor: float,
                on_retry: Callable[[str], None] | None = None) -> Retry:
    """The retry policy: transient statuses, timeouts, dropped or reset connections and cut
    answers, POST included (every call this client makes is a read), honouring Retry-After."""
    return LoggingRetry(
        on_retry=on_retry,
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
        # After the last retry we want the response itself, to say what the server answered.
        raise_on_status=False,
        raise_on_redirect=False,
    )


class OdooClient:
    """Odoo's external API for reading records, authenticated with an API key.

    `protocol` is "jsonrpc" (`/jsonrpc`, Odoo 8 to 21), "json2" (`/json/2/...`, Odoo 19+) or
    "auto": ask the server its version and use JSON-2 from 19 on, falling back to JSON-RPC
    (with a warning) where `/json/2` is blocked. Warnings (a fallback, JSON-RPC's deprecation on
    19) are logged once, kept in `warnings` and passed to `on_warning`.
    """

    def __init__(
        self,
        url: str,
        database: str,
        username: str,
        api_key: str,
        *,
        protocol: str = "auto",
        timeout_seconds: float = 30.0,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        connect_timeout_seconds: float = 5.0,
        deadline_seconds: float | None = None,
        on_retry: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        self.url = url.rstrip("/")
        self.database = database
        self.username = username
        self._api_key = _Secret(api_key)
        self.requested_protocol = protocol
        self.timeout_seconds = timeout_seconds  # the read timeout of one attempt
        self.max_retries = max_retries
        deadline = SourceDeadline(settings.source_deadline_seconds() if deadline_seconds is None
                                  else deadline_seconds)
        self._transport = SourceTransport(
            "Odoo", build_retry(max_retries, backoff_factor, on_retry),
            connect_timeout=min(connect_timeout_seconds, timeout_seconds), read_timeout=timeout_seconds,
            deadline=deadline, application_error=self._is_application_error)
        self._session = self._transport.session
        self._session.headers["User-Agent"] = "dunning_pipeline " + requests.utils.default_user_agent()
        self._ids = itertools.count(1)
        self._uid: int | None = None
        self._version: OdooVersion | None = None
        self._protocol: str | None = None if protocol == "auto" else protocol
        self._on_warning = on_warning
        self.warnings: list[str] = []
        # The login of the user the API key belongs to, once JSON-2 has read it.
        self.key_owner: str | None = None

    def __repr__(self) -> str:
        return (
            f"OdooClient(url={self.url!r}, database={self.database!r}, username={self.username!r}, "
            f"protocol={self.requested_protocol!r}, api_key='***')"
        )

    __str__ = __repr__

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> OdooClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- version and protocol -------------------------------------------------------------------
    def version(self) -> OdooVersion:
        """The server version: `GET /web/version` (served from Odoo 19 on), else JSON-RPC
        `common.version`. With protocol "jsonrpc" the probe is skipped: older Odoo answers it
        with a 404 page."""
        if self._version is None:
            probe = None if self.requested_protocol == "jsonrpc" else self._web_version()
            self._version = probe or self._rpc_version()
        return self._version

    def _web_version(self) -> OdooVersion | None:
        answer = self._http("GET", "/web/version", what="GET /web/version")
        resp = answer.response
        if resp.status_code in RETRY_STATUSES:
            self._raise_for_http(answer, "GET /web/version")
        if resp.status_code != 200 or answer.body is NO_BODY:
            return None  # not Odoo's JSON (an older server's web client page): ask JSON-RPC
        try:
            body = answer.body
            info = body["version_info"]
            return OdooVersion(label=str(body.get("version") or ".".join(map(str, info[:2]))), major=int(info[0]))
        except (ValueError, KeyError, IndexError, TypeError):
            return None  # not Odoo's JSON (an older server's web client page): ask JSON-RPC

    def _rpc_version(self) -> OdooVersion:
        result = self._jsonrpc("common", "version", [], what="common.version")
        try:
            info = result["server_version_info"]
            label = str(result.get("server_serie") or result.get("server_version"))
            return OdooVersion(label=label, major=int(info[0]))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise OdooResponseError(
                f"{self.url}/jsonrpc answered common.version without a usable server_version_info;"
                " is ODOO_URL the address of an Odoo server?"
            ) from exc

    @property
    def protocol(self) -> str:
        """The protocol in use ("jsonrpc" or "json2"), detecting the version when "auto"."""
        if self._protocol is None:
            self._protocol = "json2" if self.version().supports_json2 else "jsonrpc"
            log.info("Odoo %s at %s: using %s", self.version().label, self.url, self._protocol)
        return self._protocol

    def _version_label(self) -> str:
        """The version for an error message; never raises (we are already reporting an error)."""
        try:
            return self.version().label
        except OdooError:
            return "(version unknown)"

    @property
    def acting_user(self) -> str:
        """Whose rights the calls run with: the API key's owner once known, else ODOO_USERNAME."""
        return self.key_owner or self.username

    def _warn(self, message: str) -> None:
        if message in self.warnings:
            return  # reported once
        self.warnings.append(message)
        log.warning("%s", message)
        if self._on_warning is not None:
            self._on_warning(message)

    # -- authentication ---------------------------------------------------------------------------
    def authenticate(self) -> int:
        """The user id for JSON-RPC calls (`common.authenticate`); checks the credentials."""
        uid = self._login()
        self._report_jsonrpc_deprecation()
        return uid

    def _report_jsonrpc_deprecation(self) -> None:
        if self.version().major >= JSON2_MIN_MAJOR:
            self._warn(
                f"Odoo {self.version().label} at {self.url} is read over JSON-RPC, which Odoo"
                " deprecated in 19 (removal planned for Odoo 22): use JSON-2"
                " (ODOO_PROTOCOL=auto or json2) once /json/2 is reachable"
            )

    def _login(self) -> int:
        if self._uid is None:
            uid = self._jsonrpc(
                "common", "authenticate", [self.database, self.username, self._api_key.value, {}],
                what="common.authenticate",
            )
            if not uid:  # Odoo answers `false`, not an error, for a wrong login or key
                raise OdooAuthError(
                    f"Odoo at {self.url} refused the login {self.username!r} with the given API key"
                    f" on database {self.database!r}: the key is wrong or expired, or it is not"
                    " this user's. Check ODOO_USERNAME (the user's login, usually an email) and"
                    " ODOO_API_KEY; if the key expired or was revoked, re-issue your Odoo API key"
                    " (Preferences > Account Security > New API Key)"
                )
            if not isinstance(uid, int):
                raise OdooResponseError(
                    f"Odoo at {self.url} answered authenticate with {type(uid).__name__}, not a user id"
                )
            self._uid = uid
        return self._uid

    def check_connection(self) -> OdooVersion:
        """Fail early with a clear error: the server answers, the credentials are accepted and,
        on JSON-2, the API key belongs to ODOO_USERNAME."""
        version = self.version()
        if self.protocol == "json2":
            self._check_key_owner()
        if self.protocol == "jsonrpc":
            self.authenticate()
        return version

    def _check_key_owner(self) -> None:
        """JSON-2 has no login: read whose key it is (`res.users.context_get` carries the uid)."""
        context = self.call("res.users", "context_get", [], {})
        if self.protocol != "json2":
            return  # fell back to JSON-RPC, whose login checked the user already
        uid = context.get("uid") if isinstance(context, dict) else None
        if isinstance(uid, bool) or not isinstance(uid, int):
            log.info("Odoo at %s did not say whose API key this is; not checked", self.url)
            return
        users = self.call("res.users", "read", [], {"ids": [uid], "fields": ["login", "name"]})
        if not isinstance(users, list) or not users or not isinstance(users[0], dict):
            return
        login = str(users[0].get("login") or "")
        self.key_owner = login or None
        if login and login.strip().lower() != self.username.strip().lower():
            raise OdooAuthError(
                f"the API key in ODOO_API_KEY belongs to Odoo user {login!r}"
                f" ({users[0].get('name') or 'no name'}), not to ODOO_USERNAME {self.username!r}:"
                f" set ODOO_USERNAME to {login!r}, or use an API key of {self.username!r}"
            )

    # -- reading --------------------------------------------------------------------------------
    def search_read(
        self,
        model: str,
        domain: Sequence,
        fields: Sequence[str],
        *,
        limit: int | None = None,
        order: str | None = None,
        context: dict | None = None,
    ) -> list[dict[str, Any]]:
        """Records matching `domain` with the given fields (plus `id`); floats come as Decimal."""
        kwargs: dict[str, Any] = {"fields": list(fields)}
        if limit is not None:
            kwargs["limit"] = limit
        if order:
            kwargs["order"] = order
        if context:
            kwargs["context"] = context
        result = self.call(model, "search_read", [list(domain)], kwargs)
        if not isinstance(result, list):
            raise OdooResponseError(f"{model}.search_read answered {type(result).__name__}, not a list of records")
        return result

    def iter_pages(
        self,
        model: str,
        domain: Sequence,
        fields: Sequence[str],
        *,
        page_size: int,
        context: dict | None = None,
        after_id: int = 0,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of records ordered by id, each fetched with `id > last id of the previous page`.

        Keyset paging stays fast at any depth and never skips or repeats a record when others are
        inserted or deleted meanwhile. A page shorter than `page_size` is the last one.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        last_id = after_id
        while True:
            page = self.search_read(
                model, [*domain, ["id", ">", last_id]], fields,
                limit=page_size, order="id asc", context=context,
            )
            if page:
                ids = [r.get("id") for r in page]
                if not all(isinstance(i, int) for i in ids) or ids != sorted(ids) or ids[0] <= last_id:
                    raise OdooResponseError(
                        f"{model}.search_read ordered by id returned ids out of order or not above"
                        f" {last_id}; paging would not be reliable"
                    )
                last_id = ids[-1]
                yield page
            if len(page) < page_size:
                return

    def call(self, model: str, method: str, args: list, kwargs: dict) -> Any:
        """Call a model method. `args` are positional for JSON-RPC; JSON-2 takes them by name,
        so only the methods this client uses are mapped (search_read's domain)."""
        if self.protocol == "json2":
            body = dict(kwargs)
            if method in ("search_read", "search", "search_count") and args:
                body["domain"] = args[0]
            elif args:
                raise ValueError(f"JSON-2 takes named arguments only; map {method}'s positional args")
            try:
                return self._json2(model, method, body)
            except OdooJson2Unavailable as exc:
                if self.requested_protocol != "auto":
                    raise
                self._fall_back_to_jsonrpc(exc)
        if method == "read" and "ids" in kwargs:  # JSON-2's named ids are positional here
            kwargs = dict(kwargs)
            args = [kwargs.pop("ids"), *args]
        uid = self.authenticate()
        return self._jsonrpc(
            "object", "execute_kw", [self.database, uid, self._api_key.value, model, method, args, kwargs],
            what=f"{model}.{method}", model=model,
        )

    def _fall_back_to_jsonrpc(self, exc: OdooJson2Unavailable) -> None:
        """"auto" on a server whose /json/2 is blocked: JSON-RPC, if it answers. Its errors are
        the better ones then (an unknown database, a refused key), else JSON-2's stands."""
        self._protocol = "jsonrpc"
        try:
            self._login()
        except (OdooAuthError, OdooConfigError):
            raise
        except OdooError:
            raise exc from None
        self._warn(
            f"JSON-2 at {self.url}/json/2 answered {exc.answer}"
            f" although the server is Odoo {self._version_label()}: a proxy or a module blocks it."
            " Falling back to JSON-RPC; unblock /json/2, or set ODOO_PROTOCOL=jsonrpc to skip the attempt"
        )
        self._report_jsonrpc_deprecation()

    # -- transports -----------------------------------------------------------------------------
    def _jsonrpc(self, service: str, method: str, args: list, *, what: str, model: str | None = None) -> Any:
        payload = {
            "jsonrpc": "2.0", "method": "call", "id": next(self._ids),
            "params": {"service": service, "method": method, "args": args},
        }
        answer = self._http("POST", "/jsonrpc", what=what, json_body=payload)
        resp = answer.response
        # A URL with a path reaches a web page, not the API: 404, or 400 (Odoo 18's /odoo/...
        # pages refuse a POST without a CSRF token).
        if resp.status_code == 404 or (resp.status_code == 400 and self._try_decode(resp) is None):
            path = urlsplit(self.url).path
            raise OdooConfigError(
                f"{self.url}/jsonrpc is not Odoo's API (HTTP {resp.status_code}, the body was"
                f" {_describe_body(resp)}): ODOO_URL must be the root address of the Odoo server"
                " (e.g. https://mycompany.odoo.com), without a path"
                + (f"; drop {path!r}" if path else "")
            )
        self._raise_for_http(answer, what)
        body = self._decode(answer, what)
        if not isinstance(body, dict):
            raise OdooResponseError(f"{self.url}/jsonrpc answered {what} with JSON that is not a JSON-RPC response")
        if "error" in body and body["error"]:
            raise self._error_from_payload(body["error"], what, model=model, status=None)
        if "result" not in body:
            raise OdooResponseError(f"{self.url}/jsonrpc answered {what} without a result or an error")
        return body["result"]

    def _json2(self, model: str, method: str, body: dict) -> Any:
        what = f"{model}.{method}"
        headers = {
            "Authorization": f"bearer {self._api_key.value}",
            "X-Odoo-Database": self.database,
        }
        answer = self._http("POST", f"/json/2/{model}/{method}", what=what, json_body=body, headers=headers)
        resp = answer.response
        if resp.status_code == 200:
            return self._decode(answer, what)
        payload = self._try_decode(resp)
        if isinstance(payload, dict) and ("name" in payload or "message" in payload):
            raise self._error_from_payload(payload, what, model=model, status=resp.status_code)
        if resp.status_code in (400, 403, 404, 405, 410):
            raise self._json2_unavailable(resp, f"/json/2/{model}/{method}")
        self._raise_for_http(answer, what)
        raise OdooResponseError(f"{self.url} answered {what} with HTTP {resp.status_code} and no Odoo error")

    def _json2_unavailable(self, resp: requests.Response, path: str) -> OdooJson2Unavailable:
        """Not Odoo's API at /json/2: say the likeliest cause for this server's version."""
        answer = f"HTTP {resp.status_code} with {_describe_body(resp)}"
        head = f"{self.url}{path} answered {answer}"
        try:
            major = self.version().major
        except OdooError:
            major = None
        if major is not None and major < JSON2_MIN_MAJOR:
            return OdooJson2Unavailable(
                f"{head}: JSON-2 needs Odoo 19 or later and this server is Odoo {self.version().label}:"
                " set ODOO_PROTOCOL=jsonrpc (or auto)", answer)
        return OdooJson2Unavailable(
            f"{head}: Odoo 19 answers so for a database it does not have: check ODOO_DB"
            f" ({self.database!r}; the list is at /web/database/selector). If it is right, /json/2"
            " is blocked (a proxy, a module) or ODOO_URL is not the server's root address:"
            " ODOO_PROTOCOL=auto falls back to JSON-RPC, ODOO_PROTOCOL=jsonrpc uses it directly", answer)

    def _http(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json_body: Any = None,
        headers: dict | None = None,
    ) -> Answer:
        url = self.url + path
        data = None
        hdrs = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json; charset=utf-8"
        try:
            return self._transport.request(method, url, data=data, headers=hdrs,
                                           decode=lambda r: r.json(parse_float=Decimal))  # money stays exact
        except TransportError as exc:
            raise self._transport_error(exc, what) from None

    @staticmethod
    def _is_application_error(resp: requests.Response) -> bool:
        """A 500 whose body is Odoo's error (an unknown field or model on JSON-2): not transient."""
        if resp.status_code != 500:
            return False
        payload = OdooClient._try_decode(resp)
        return isinstance(payload, dict) and ("name" in payload or "message" in payload)

    def _transport_error(self, exc: TransportError, what: str) -> OdooError:
        """Name what happened after the retries: refused, timed out, dropped, cut short."""
        tally = exc.tally()
        if exc.unreachable:
            return OdooUnavailableError(
                f"Odoo server unreachable at {self.url} for {what}: {exc.cause} ({tally}); check that"
                " ODOO_URL is right and the server is up, then re-run"
            )
        hint = (f"; if Odoo is just slow, raise timeout_seconds ({self.timeout_seconds:g} s) or"
                f" {exc.deadline.variable}" if exc.timed_out or exc.deadline_passed else "")
        return OdooUnavailableError(
            f"No usable answer from Odoo at {self.url} for {what}: {exc.cause} ({tally}); Odoo or a"
            f" proxy in front of it is overloaded or restarting: check ODOO_URL and re-run later{hint}"
        )

    def _raise_for_http(self, answer: Answer, what: str) -> None:
        resp = answer.response
        status = resp.status_code
        if status < 400:
            return
        tries = f"after {attempts_text(answer.attempts)}"
        if answer.deadline_passed:
            tries += f", stopped by the deadline ({settings.SOURCE_DEADLINE_VAR})"
        body = _describe_body(resp)
        if status == 429:
            after = resp.headers.get("Retry-After")
            hint = f" (its last Retry-After was {after} s)" if after else ""
            raise OdooUnavailableError(
                f"Odoo at {self.url} is rate limiting requests (HTTP 429) and still did {tries}"
                f" for {what}{hint}: try again later, or lower the load (a larger page_size means"
                " fewer requests)"
            )
        if status in (500, 502, 503, 504):
            source = ("an HTML page, so it came from a proxy or load balancer in front of Odoo"
                      if _is_html(resp) and status != 500 else body)
            raise OdooUnavailableError(
                f"Odoo at {self.url} answered HTTP {status} ({resp.reason or 'error'}) {tries} for"
                f" {what}; the body was {source}. Odoo is down, restarting or overloaded: check"
                " ODOO_URL and try again later"
            )
        if status in (401, 403):
            raise OdooAuthError(
                f"Odoo at {self.url} refused {what} with HTTP {status} (the body was {body}): check ODOO_API_KEY"
                " and any proxy authentication in front of Odoo"
            )
        raise OdooResponseError(
            f"Odoo at {self.url} answered {what} with HTTP {status} ({resp.reason or 'error'}); the"
            f" body was {body}"
        )

    def _decode(self, answer: Answer, what: str) -> Any:
        if answer.body is not NO_BODY:
            return answer.body
        resp = answer.response
        try:
            return resp.json(parse_float=Decimal)  # money stays exact
        except ValueError:
            raise OdooResponseError(
                f"{resp.url.split('?')[0]} answered {what} with {_describe_body(resp)} instead of JSON:"
                " is ODOO_URL the Odoo server itself (not a login page or a proxy)?"
            ) from None

    @staticmethod
    def _try_decode(resp: requests.Response) -> Any:
        try:
            return resp.json(parse_float=Decimal)
        except ValueError:
            return None

    # -- Odoo's error payloads -------------------------------------------------------------------
    def _error_from_payload(self, error: dict, what: str, *, model: str | None, status: int | None) -> OdooError:
        """Map an Odoo error (JSON-RPC `error` or a JSON-2 error body) to a specific exception."""
        data = error.get("data") if isinstance(error.get("data"), dict) else error
        name = str(data.get("name") or "")
        message = self._redact(str(data.get("message") or error.get("message") or ""))
        short = _first_line(message)
        code = error.get("code")
        where = f"Odoo at {self.url}"

        if code == 100 or "SessionExpired" in name:
            return OdooAuthError(
                f"{where} answered {what} with 'Session Expired' (code 100): the session behind"
                " the API key was invalidated; re-run, and if it persists re-issue your Odoo API key"
            )
        if name.endswith("AccessDenied") or status == 401 or name.endswith("Unauthorized"):
            # A real Odoo answers an expired key exactly as a wrong one ("Invalid apikey").
            return OdooAuthError(
                f"{where}: the API key in ODOO_API_KEY (for {self.acting_user!r}) on database"
                f" {self.database!r} is wrong or expired (Odoo answered {short or name!r}):"
                " re-issue your Odoo API key (Preferences > Account Security > New API Key; keys"
                " last at most 3 months) and update ODOO_API_KEY; also check ODOO_USERNAME and ODOO_DB"
            )
        if "OperationalError" in name or _looks_like_missing_db(message):
            return OdooConfigError(
                f"{where} cannot open database {self.database!r} ({short}): check ODOO_DB; the"
                " database list is at /web/database/selector"
            )
        if name.endswith("AccessError") or status == 403:
            owner = " (the API key's owner)" if self.key_owner else ""
            return OdooAccessError(
                f"{where}: user {self.acting_user!r}{owner} may not run {what} ({short}): give the"
                " user read access to invoices and contacts (e.g. Invoicing / Billing or"
                " Accounting / Read-only)"
            )
        field = _invalid_field(message)
        if field is not None:
            fname, fmodel = field
            return OdooConfigError(
                f"field {fname} does not exist on model {fmodel or model} in Odoo"
                f" {self._version_label()}: {short}. The pipeline only asks for fields present in"
                " Odoo 16 to 19; a module that removes it, or another Odoo edition, needs a code change"
            )
        missing_model = _missing_model(message)
        if missing_model is not None:
            return OdooConfigError(
                f"model {missing_model} does not exist in Odoo {self._version_label()} at {self.url}"
                f" ({short}): is the Invoicing app (module 'account') installed in this database?"
            )
        if name.endswith("AttributeError") and "method" in message.lower():
            return OdooConfigError(
                f"{what} does not exist in Odoo {self._version_label()} at {self.url} ({short})"
            )
        if status == 404:
            return OdooConfigError(f"{where} has no {what} (HTTP 404: {short or name})")
        return OdooError(f"{where} failed on {what}: {name or 'error'}: {short or 'no message'}")

    def _redact(self, text: str) -> str:
        key = self._api_key.value
        return text.replace(key, "***") if key else text


# -- helpers -----------------------------------------------------------------------------------
_INVALID_FIELD = re.compile(
    r"Invalid field\s+'?(?P<a>[\w.]+)'?(?:\s+on model\s+'?(?P<model>[\w.]+)'?)?"
)


def _invalid_field(message: str) -> tuple[str, str | None] | None:
    """('foo', 'account.move') from "Invalid field 'foo' on model 'account.move'" (16-19 wording)
    or from a domain error "Invalid field account.move.foo in leaf/condition ..."."""
    m = _INVALID_FIELD.search(message)
    if not m:
        return None
    name, model = m.group("a"), m.group("model")
    if model is None and "." in name:
        # "account.move.foo": the model is everything but the last part
        model, name = name.rsplit(".", 1)
    return name, model


# "Object foo doesn't exist" (JSON-RPC), "the model 'foo' does not exist" (JSON-2), "Unknown model"
_MISSING_MODEL = re.compile(
    r"Object\s+'?(?P<m>[\w.]+)'?\s+doesn't exist"
    r"|[Mm]odel\s+'?(?P<m2>[\w.]+)'?\s+(?:does not|doesn't) exist"
    r"|Unknown model\s+'?(?P<m3>[\w.]+)'?"
)


def _missing_model(message: str) -> str | None:
    m = _MISSING_MODEL.search(message)
    if not m:
        return None
    return m.group("m") or m.group("m2") or m.group("m3")


def _looks_like_missing_db(message: str) -> bool:
    low = message.lower()
    return "database" in low and ("does not exist" in low or "not found" in low)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MAX_SERVER_TEXT else line[: _MAX_SERVER_TEXT - 1] + "…"


def _is_html(resp: requests.Response) -> bool:
    ctype = resp.headers.get("Content-Type", "").lower()
    start = (resp.text or "").lstrip()[:200].lower()
    return "html" in ctype or start.startswith(("<!doctype html", "<html", "<head", "<body"))


def _describe_body(resp: requests.Response) -> str:
    """What the body was, without dumping it (an HTML error page says nothing useful)."""
    text = resp.text or ""
    if _is_html(resp):
        return "an HTML page"
    if not text.strip():
        return "empty"
    if "json" in resp.headers.get("Content-Type", "").lower():
        return f"JSON: {_first_line(text)[:120]!r}"
    return f"text: {_first_line(text)[:120]!r}"

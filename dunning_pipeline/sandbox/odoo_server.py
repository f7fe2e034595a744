"""A local Odoo: JSON-RPC (`POST /jsonrpc`, 16 to 19) and JSON-2 (`POST /json/2/<model>/<method>`, 19).

It answers the way a real Odoo does (see /work/shared/reference/ODOO.md): errors on JSON-RPC are
HTTP 200 with an error envelope (`code` 200 in 16-18, 0 in 19) naming the exception class;
JSON-2 errors are HTTP 4xx/5xx with the error object as body; only the requested fields plus
`id` come back; archived records are hidden unless `context.active_test` is false or the domain
names `active`.

Reads are fast at a million moves: records are kept sorted by id, so `id > N` ordered by id
with a limit starts by bisection and stops after `limit` matches; a `write_date >=` filter uses
a sorted index (built per data version) when the model is large.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import operator
import re
from typing import Callable

from dunning_pipeline.sandbox import data as sd
from dunning_pipeline.sandbox.faults import Fault, late_commit, newest_move_write_date, nginx_page
from dunning_pipeline.sandbox.base_server import App, Request, Response

VERSIONS = ("16.0", "17.0", "18.0", "19.0")
DEFAULT_INDEX_THRESHOLD = 20_000

_SEL_MOVE_TYPE = ["entry", "out_invoice", "out_refund", "in_invoice", "in_refund", "out_receipt", "in_receipt"]
_SEL_STATE = ["draft", "posted", "cancel"]
_SEL_PAYMENT_STATE_16 = ["not_paid", "in_payment", "paid", "partial", "reversed", "invoicing_legacy"]


def _f(ftype: str, string: str, relation: str | None = None, selection=None, store: bool = True):
    spec = {"type": ftype, "string": string, "store": store, "readonly": True, "required": False,
            "searchable": True, "sortable": store}
    if relation:
        spec["relation"] = relation
    if selection:
        spec["selection"] = [[v, v.replace("_", " ").title()] for v in selection]
    return spec


def _move_fields(version: str) -> dict:
    payment_states = _SEL_PAYMENT_STATE_16 + (["blocked"] if version >= "17.0" else [])
    return {
        "id": _f("integer", "ID"),
        "name": _f("char", "Number"),
        "display_name": _f("char", "Display Name", store=False),
        "move_type": _f("selection", "Type", selection=_SEL_MOVE_TYPE),
        "state": _f("selection", "Status", selection=_SEL_STATE),
        "payment_state": _f("selection", "Payment Status", selection=payment_states),
        "partner_id": _f("many2one", "Partner", "res.partner"),
        "commercial_partner_id": _f("many2one", "Commercial Entity", "res.partner"),
        "company_id": _f("many2one", "Company", "res.company"),
        "currency_id": _f("many2one", "Currency", "res.currency"),
        "company_currency_id": _f("many2one", "Company Currency", "res.currency"),
        "date": _f("date", "Date"),
        "invoice_date": _f("date", "Invoice/Bill Date"),
        "invoice_date_due": _f("date", "Due Date"),
        "invoice_payment_term_id": _f("many2one", "Payment Terms", "account.payment.term"),
        "amount_untaxed": _f("monetary", "Untaxed Amount"),
        "amount_tax": _f("monetary", "Tax"),
        "amount_total": _f("monetary", "Total"),
        "amount_residual": _f("monetary", "Amount Due"),
        "amount_untaxed_signed": _f("monetary", "Untaxed Amount Signed"),
        "amount_total_signed": _f("monetary", "Total Signed"),
        "amount_residual_signed": _f("monetary", "Amount Due Signed"),
        "invoice_origin": _f("char", "Origin"),
        "ref": _f("char", "Reference"),
        "payment_reference": _f("char", "Payment Reference"),
        "reversed_entry_id": _f("many2one", "Reversal of", "account.move"),
        "narration": _f("html", "Terms and Conditions"),
        "invoice_user_id": _f("many2one", "Salesperson", "res.users"),
        "create_date": _f("datetime", "Created on"),
        "write_date": _f("datetime", "Last Updated on"),
    }


def _partner_fields(version: str) -> dict:
    return {
        "id": _f("integer", "ID"),
        "name": _f("char", "Name"),
        "display_name": _f("char", "Display Name", store=False),
        "complete_name": _f("char", "Complete Name"),
        "email": _f("char", "Email"),
        "phone": _f("char", "Phone"),
        "vat": _f("char", "Tax ID"),
        "lang": _f("selection", "Language", selection=["de_DE", "de_CH", "en_US", "en_GB", "fr_FR",
                                                        "fr_BE", "fr_CH", "nl_NL", "nl_BE", "ja_JP"]),
        "country_id": _f("many2one", "Country", "res.country"),
        "city": _f("char", "City"),
        "is_company": _f("boolean", "Is a Company"),
        "type": _f("selection", "Address Type", selection=["contact", "invoice", "delivery", "other"]),
        "parent_id": _f("many2one", "Related Company", "res.partner"),
        "commercial_partner_id": _f("many2one", "Commercial Entity", "res.partner"),
        "customer_rank": _f("integer", "Customer Rank"),
        "supplier_rank": _f("integer", "Supplier Rank"),
        "category_id": _f("many2many", "Tags", "res.partner.category"),
        "company_id": _f("many2one", "Company", "res.company"),
        "ref": _f("char", "Reference"),
        "active": _f("boolean", "Active"),
        "create_date": _f("datetime", "Created on"),
        "write_date": _f("datetime", "Last Updated on"),
    }


def _line_fields(version: str) -> dict:
    return {
        "id": _f("integer", "ID"),
        "name": _f("char", "Label"),
        "display_name": _f("char", "Display Name", store=False),
        "move_id": _f("many2one", "Journal Entry", "account.move"),
        "move_name": _f("char", "Number"),
        "move_type": _f("selection", "Type", selection=_SEL_MOVE_TYPE, store=False),
        "parent_state": _f("selection", "Status", selection=_SEL_STATE),
        "company_id": _f("many2one", "Company", "res.company"),
        "company_currency_id": _f("many2one", "Company Currency", "res.currency"),
        "currency_id": _f("many2one", "Currency", "res.currency"),
        "partner_id": _f("many2one", "Partner", "res.partner"),
        "account_id": _f("many2one", "Account", "account.account"),
        "account_type": _f("selection", "Internal Type", selection=[
            "asset_receivable", "liability_payable", "income", "asset_current"], store=False),
        "display_type": _f("selection", "Display Type", selection=[
            "product", "cogs", "tax", "discount", "rounding", "payment_term", "line_section",
            "line_note", "epd"]),
        "date": _f("date", "Date"),
        "date_maturity": _f("date", "Due Date"),
        "balance": _f("monetary", "Balance"),
        "debit": _f("monetary", "Debit"),
        "credit": _f("monetary", "Credit"),
        "amount_currency": _f("monetary", "Amount in Currency"),
        "amount_residual": _f("monetary", "Residual Amount"),
        "amount_residual_currency": _f("monetary", "Residual Amount in Currency"),
        "reconciled": _f("boolean", "Reconciled"),
        "create_date": _f("datetime", "Created on"),
        "write_date": _f("datetime", "Last Updated on"),
    }


def _partial_fields(version: str) -> dict:
    """account.partial.reconcile: what one reconciliation settled between a debit and a credit
    journal item (an invoice's receivable line and a payment's or credit note's)."""
    return {
        "id": _f("integer", "ID"),
        "display_name": _f("char", "Display Name", store=False),
        "debit_move_id": _f("many2one", "Debit Journal Item", "account.move.line"),
        "credit_move_id": _f("many2one", "Credit Journal Item", "account.move.line"),
        "full_reconcile_id": _f("many2one", "Full Reconcile", "account.full.reconcile"),
        "company_currency_id": _f("many2one", "Company Currency", "res.currency"),
        "debit_currency_id": _f("many2one", "Currency of the debit journal item", "res.currency"),
        "credit_currency_id": _f("many2one", "Currency of the credit journal item", "res.currency"),
        "amount": _f("monetary", "Amount"),
        "debit_amount_currency": _f("monetary", "Debit amount in currency"),
        "credit_amount_currency": _f("monetary", "Credit amount in currency"),
        "company_id": _f("many2one", "Company", "res.company"),
        "max_date": _f("date", "Max Date of Matched Lines"),
        "create_date": _f("datetime", "Created on"),
        "write_date": _f("datetime", "Last Updated on"),
    }


# Related paths a domain may name on account.partial.reconcile (both lines of a reconciliation
# are on one account).
_PARTIAL_PATHS = {
    "debit_move_id.account_id.account_type": ("selection", "account_type"),
    "credit_move_id.account_id.account_type": ("selection", "account_type"),
}


# Related paths a domain may name on account.move.line (Odoo resolves `a.b` through the
# many2one); the sandbox's lines carry the values they lead to.
_LINE_PATHS = {
    "account_id.account_type": ("selection", "account_type"),
    "move_id.move_type": ("selection", "move_type"),
    "move_id.state": ("selection", "parent_state"),
    "move_id.company_id": ("many2one", "company_id"),
}


def _simple_fields(**extra) -> dict:
    out = {"id": _f("integer", "ID"), "name": _f("char", "Name"),
           "display_name": _f("char", "Display Name", store=False),
           "write_date": _f("datetime", "Last Updated on")}
    out.update(extra)
    return out


class _Model:
    def __init__(self, name: str, records: Callable[[], list], fields: dict, order: str,
                 has_active: bool, computed: dict | None = None):
        self.name, self.records, self.fields = name, records, fields
        self.default_order, self.has_active = order, has_active
        self.computed = computed or {}  # field -> function(record): fields Odoo derives
        self.paths: dict = {}  # "many2one.field" usable in domains -> (field type, record key)

    def getter(self, field_name: str) -> Callable[[dict], object]:
        fn = self.computed.get(field_name)
        if fn is not None:
            return fn
        return lambda r: r.get(field_name, False)


_MOVE_LABEL = {"out_invoice": "Invoice", "out_refund": "Credit Note", "in_invoice": "Vendor Bill",
               "in_refund": "Refund", "entry": "Entry"}
_TAX_RATE = {1: 19, 2: 8}  # percent, per company: untaxed = total * 100 / (100 + rate)


def _move_computed(data: sd.SandboxData) -> dict:
    """The account.move fields Odoo derives from others; computed when read, not stored."""

    def company_currency(r):
        company = r.get("company_id")
        for c in data.companies:
            if company and c["id"] == company[0]:
                return c["currency_id"]
        return False

    def untaxed_minor(r):
        currency = r.get("currency_id")
        total = r.get("amount_total")
        if not currency or not isinstance(total, (int, float)):
            return None, 0
        dec = sd.CURRENCY_BY_CODE.get(currency[1], (0, "", "", 2))[3]
        minor = round(total * 10 ** dec)
        rate = _TAX_RATE.get((r.get("company_id") or [0])[0], 0)
        return minor * 100 // (100 + rate), dec

    def amount_untaxed(r):
        minor, dec = untaxed_minor(r)
        return False if minor is None else sd.minor_to_float(minor, dec)

    def amount_tax(r):
        minor, dec = untaxed_minor(r)
        return False if minor is None else sd.minor_to_float(round(r["amount_total"] * 10 ** dec) - minor, dec)

    def amount_untaxed_signed(r):
        minor, _dec = untaxed_minor(r)
        company_cur = company_currency(r)
        if minor is None or not company_cur:
            return False
        sign = -1 if r.get("move_type") in ("out_refund", "in_invoice", "in_refund") else 1
        converted = sd.convert_minor(minor, r["currency_id"][1], company_cur[1])
        return sd.minor_to_float(sign * converted, sd.CURRENCY_BY_CODE[company_cur[1]][3])

    def display_name(r):
        name = r.get("name")
        if name and name != "/":
            return name
        return f"Draft {_MOVE_LABEL.get(r.get('move_type'), 'Entry')} (* {r['id']})"

    return {
        "display_name": display_name,
        "date": lambda r: r.get("invoice_date") or (r.get("create_date") or "")[:10] or False,
        "company_currency_id": company_currency,
        "payment_reference": lambda r: r.get("name") if r.get("move_type") == "out_invoice"
        and r.get("name") not in (None, False, "/") else False,
        "amount_untaxed": amount_untaxed,
        "amount_tax": amount_tax,
        "amount_untaxed_signed": amount_untaxed_signed,
        "narration": lambda r: False,
        "invoice_user_id": lambda r: False,
    }


class OdooError(Exception):
    """An exception Odoo would raise; `name` is its dotted class as Odoo reports it."""

    def __init__(self, name: str, message: str, http_status: int = 422):
        super().__init__(message)
        self.name, self.message, self.http_status = name, message, http_status


def _access_denied() -> OdooError:
    return OdooError("odoo.exceptions.AccessDenied", "Access Denied", 401)


# Models behind the accounting access rights (Invoicing / Billing and up).
_ACCOUNTING_MODELS = ("account.move", "account.move.line", "account.payment.term", "account.partial.reconcile")
_MODEL_LABELS = {"account.move": "Journal Entry", "account.move.line": "Journal Item",
                 "account.payment.term": "Payment Terms", "account.partial.reconcile": "Partial Reconcile"}


@dataclasses.dataclass(frozen=True)
class ApiUser:
    """A user holding an API key: `accounting` False is a user without invoicing rights."""

    uid: int
    login: str
    name: str
    accounting: bool = True


def _accounting_denied(model_name: str) -> OdooError:
    return OdooError(
        "odoo.exceptions.AccessError",
        f"You are not allowed to access '{_MODEL_LABELS.get(model_name, model_name)}' ({model_name})"
        " records.\n\nThis operation is allowed for the following groups:\n\t- Invoicing/Billing\n"
        "\t- Invoicing/Show Accounting Features - Readonly\n\nContact your administrator to request"
        " access if necessary.", 403)


class OdooApp(App):
    service = "odoo"
    server_header = "nginx"

    def __init__(self, data: sd.SandboxData, version: str = "17.0", database: str = sd.DB_NAME,
                 login: str = sd.ADMIN_LOGIN, api_key: str = "sandbox-odoo-api-key",
                 index_threshold: int = DEFAULT_INDEX_THRESHOLD):
        if version not in VERSIONS:
            raise ValueError(f"odoo_version must be one of {', '.join(VERSIONS)}, not {version!r}")
        self.data, self.version, self.database = data, version, database
        self.login, self.api_key, self.uid = login, api_key, sd.ADMIN_UID
        self.index_threshold = index_threshold
        self.major = int(version.split(".")[0])
        # API key -> its user; add_api_key adds others (e.g. one without accounting rights).
        self.api_users: dict[str, ApiUser] = {api_key: ApiUser(self.uid, login, "Administrator")}
        # Companies the API users lost access to: Odoo's multi-company record rules hide them.
        self.unreadable_company_ids: set[int] = set()
        # A proxy (or a module policy) in front of Odoo 19 that refuses /json/2 with its own page.
        self.json2_blocked = False
        # Each night advanced over HTTP also pays one invoice in a transaction that commits late.
        self.late_commit_each_night = False
        self.models = {
            "account.move": _Model("account.move", lambda: self.data.moves, _move_fields(version),
                                   "date desc, name desc, id desc", False, _move_computed(data)),
            "res.partner": _Model("res.partner", lambda: self.data.partners, _partner_fields(version),
                                  "display_name asc, id desc", True,
                                  {"complete_name": lambda r: r.get("display_name", False)}),
            "res.partner.category": _Model(
                "res.partner.category", lambda: self.data.partner_categories,
                _simple_fields(color=_f("integer", "Color"), active=_f("boolean", "Active"),
                               parent_id=_f("many2one", "Parent", "res.partner.category")),
                "name asc", True),
            "res.currency": _Model(
                "res.currency", lambda: self.data.currencies,
                _simple_fields(symbol=_f("char", "Symbol"), decimal_places=_f("integer", "Decimals"),
                               rounding=_f("float", "Rounding"), rate=_f("float", "Current Rate"),
                               full_name=_f("char", "Full Name"), active=_f("boolean", "Active")),
                "active desc, name asc", True),
            "res.company": _Model(
                "res.company", lambda: self.data.companies,
                _simple_fields(currency_id=_f("many2one", "Currency", "res.currency"),
                               partner_id=_f("many2one", "Partner", "res.partner"),
                               country_id=_f("many2one", "Country", "res.country"),
                               email=_f("char", "Email"), vat=_f("char", "Tax ID")),
                "name asc", False),
            "account.move.line": self._line_model(version),
            "account.partial.reconcile": self._partial_model(version),
            "account.payment.term": _Model(
                "account.payment.term", lambda: self.data.payment_terms,
                _simple_fields(active=_f("boolean", "Active")), "id asc", True),
            "res.users": _Model(
                "res.users", self._user_records,
                _simple_fields(login=_f("char", "Login"), active=_f("boolean", "Active")),
                "name asc, login asc", True),
        }
        self._indexes: dict = {}
        self._count_cache: dict = {}
        self.index_hits = 0  # queries answered from the write_date index (for tests)

    def add_api_key(self, api_key: str, login: str, name: str, *, accounting: bool = True) -> ApiUser:
        """Another user with an API key (uid after the existing ones)."""
        user = ApiUser(max(u.uid for u in self.api_users.values()) + 1, login, name, accounting)
        self.api_users[api_key] = user
        return user

    def _user_records(self) -> list[dict]:
        users = sorted({u.uid: u for u in self.api_users.values()}.values(), key=lambda u: u.uid)
        return [{"id": u.uid, "name": u.name, "display_name": u.name, "login": u.login, "active": True,
                 "write_date": "2026-01-01 00:00:00"} for u in users]

    def _user_by_uid(self, uid) -> ApiUser | None:
        return next((u for u in self.api_users.values() if u.uid == uid), None)

    def _readable(self, model: _Model) -> Callable[[dict], bool] | None:
        """The multi-company record rule: records of an unreadable company are not there."""
        hidden = self.unreadable_company_ids
        if not hidden:
            return None
        if model.name == "res.company":
            return lambda r: r["id"] not in hidden
        if "company_id" in model.fields:
            return lambda r: not (r.get("company_id") and r["company_id"][0] in hidden)
        return None
    def _line_model(self, version: str) -> _Model:
        """account.move.line: the receivable lines, derived from the moves as they are now (so
        a payment made to a move shows on its lines), each built when read. The view is made per
        request on small datasets (a test may edit a move by hand), per data version on large ones."""
        cache: dict = {}

        def records() -> list:
            stamp = (self.data.version, len(self.data.moves))
            if len(self.data.moves) < self.index_threshold or cache.get("stamp") != stamp:
                cache["lines"], cache["stamp"] = sd.ReceivableLines(self.data), stamp
            return cache["lines"]

        model = _Model("account.move.line", records, _line_fields(version), "date_maturity asc, id asc", False,
                       {"display_name": lambda r: r.get("name") or "/"})
        model.paths = _LINE_PATHS
        return model

    def _partial_model(self, version: str) -> _Model:
        """account.partial.reconcile: the reconciliations the dataset's payments and credit notes
        made (`SandboxData.reconciliations`), consistent with the receivable lines."""
        model = _Model("account.partial.reconcile", lambda: self.data.reconciliations, _partial_fields(version),
                       "id desc", False, {"display_name": lambda r: f"account.partial.reconcile,{r['id']}"})
        model.paths = _PARTIAL_PATHS
        return model

    # ------------------------------------------------------------------ routing
    def handle(self, req: Request) -> Response:
        if req.path == "/jsonrpc":
            if req.method != "POST":
                return Response.html(_werkzeug_page(405, "Method Not Allowed",
                                                    "The method is not allowed for the requested URL."), 405)
            return self._jsonrpc(req)
        if req.path == "/_sandbox/advance_night" and req.method == "POST":
            # Not an Odoo route: lets a sandbox running in another process move to the next day.
            mark = newest_move_write_date(self.data)
            changes = sd.advance_night(self.data)
            body = dataclasses.asdict(changes)
            body["as_of"] = changes.as_of.isoformat()
            if self.late_commit_each_night:  # stamped before the previous night's mark
                body["late_commit"] = dataclasses.asdict(late_commit(self.data, mark=mark))
            return Response.json(body)
        if req.path == "/_sandbox/late_commit" and req.method == "POST":
            # Not an Odoo route either: the late-commit fault for a sandbox in another process.
            opts = req.json if req.body and isinstance(req.json, dict) else {}
            try:
                late = late_commit(self.data, seconds_before_mark=int(opts.get("seconds_before_mark", 3600)),
                                   move_id=opts.get("move_id"))
            except LookupError as exc:
                return Response.json({"error": str(exc)}, 409)
            return Response.json(dataclasses.asdict(late))
        if self.major >= 19 and req.path == "/web/version" and req.method == "GET":
            return Response.json({"version_info": [self.major, 0, 0, "final", 0, ""],
                                  "version": self.version})
        if self.major >= 19 and req.path.startswith("/json/2/"):
            if self.json2_blocked:
                return Response.html(nginx_page(403), 403)
            return self._json2(req)
        if self.major >= 18 and req.method == "POST" and req.path.startswith("/odoo/"):
            # Odoo 18's web client lives under /odoo/...: a POST there fails its CSRF check.
            return Response.html(_werkzeug_page(
                400, "Bad Request", "Session expired (invalid CSRF token)"), 400)
        return Response.html(_werkzeug_page(
            404, "Not Found", "The requested URL was not found on the server. If you entered the URL"
            " manually please check your spelling and try again."), 404)

    def fault_response(self, fault: Fault, req: Request) -> Response | None:
        if fault.kind == "rate_limit":
            return Response.html(nginx_page(429), 429, {"Retry-After": str(fault.opt("retry_after"))})
        if fault.kind == "server_error":
            status = int(fault.opt("status"))
            headers = {"Retry-After": str(fault.opt("retry_after"))} if fault.opt("retry_after") else {}
            return Response.html(nginx_page(status), status, headers)
        return None  # bad_credentials / expired_key: handled where credentials are checked

    # ------------------------------------------------------------------ JSON-RPC
    def _jsonrpc(self, req: Request) -> Response:
        body = req.json
        rid = body.get("id") if isinstance(body, dict) else None
        try:
            if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
                raise OdooError("werkzeug.exceptions.BadRequest",
                                "400 Bad Request: Invalid JSON data" if not isinstance(body, dict)
                                else "400 Bad Request: params must be an object", 400)
            params = body["params"]
            service, method = params.get("service"), params.get("method")
            args = params.get("args") or []
            if service == "common":
                result = self._common(method, args, req.fault)
            elif service == "object":
                result = self._object(method, args, req.fault)
            elif service == "db":
                if method == "list":
                    result = [self.database]
                elif method == "server_version":
                    result = self.version
                else:
                    raise OdooError("builtins.KeyError", f"'{method}'")
            else:
                raise OdooError("builtins.Exception", f"No such service: {service!r}")
        except OdooError as exc:
            return Response.json({"jsonrpc": "2.0", "id": rid, "error": self._error_envelope(exc)})
        return Response.json({"jsonrpc": "2.0", "id": rid, "result": result})

    def _error_envelope(self, exc: OdooError) -> dict:
        return {"code": 0 if self.major >= 19 else 200, "message": "Odoo Server Error",
                "data": _error_data(exc)}

    def _common(self, method: str, args: list, fault: Fault | None):
        if method == "version":
            return {"server_version": self.version,
                    "server_version_info": [self.major, 0, 0, "final", 0, ""],
                    "server_serie": self.version, "protocol_version": 1}
        if method in ("login", "authenticate"):
            if len(args) < 3:
                raise OdooError("builtins.TypeError",
                                f"{method}() missing required positional arguments", 422)
            db, login, key = args[0], args[1], args[2]
            self._check_db(db)
            user = self.api_users.get(key) if isinstance(key, str) else None
            if fault is not None or user is None or login != user.login:
                return False
            return user.uid
        if method == "about":
            return "See http://openerp.com"
        raise OdooError("builtins.AttributeError",
                        f"'module' object has no attribute 'exp_{method}'")

    def _check_db(self, db) -> None:
        if db != self.database:
            raise OdooError("psycopg2.OperationalError",
                            f'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed:'
                            f' FATAL:  database "{db}" does not exist\n', 500)

    def _object(self, method: str, args: list, fault: Fault | None):
        if method not in ("execute_kw", "execute"):
            raise OdooError("builtins.AttributeError",
                            f"'module' object has no attribute 'exp_{method}'")
        if len(args) < 5:
            raise OdooError("builtins.TypeError", f"{method}() missing required positional arguments")
        db, uid, key, model_name, model_method = args[:5]
        self._check_db(db)
        user = self.api_users.get(key) if isinstance(key, str) else None
        if fault is not None or user is None or uid != user.uid:
            raise _access_denied()
        if method == "execute_kw":
            call_args = args[5] if len(args) > 5 else []
            call_kwargs = args[6] if len(args) > 6 else {}
        else:
            call_args, call_kwargs = list(args[5:]), {}
        if not isinstance(call_args, list) or not isinstance(call_kwargs, dict):
            raise OdooError("builtins.TypeError", "execute_kw expects a list of args and a dict of kwargs")
        return self._call(model_name, model_method, call_args, call_kwargs, user=user)

    # ------------------------------------------------------------------ JSON-2
    def _json2(self, req: Request) -> Response:
        try:
            if req.method != "POST":
                raise OdooError("werkzeug.exceptions.MethodNotAllowed",
                                "405 Method Not Allowed: The method is not allowed for the requested URL.", 405)
            db = req.headers.get("X-Odoo-Database")
            if db is not None and db != self.database:
                # No such database: no registry, so no /json/2 route, the server-wide 404 page.
                return Response.html(_werkzeug_page(
                    404, "Not Found", "The requested URL was not found on the server. If you entered"
                    " the URL manually please check your spelling and try again."), 404)
            auth = req.headers.get("Authorization") or ""
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise OdooError("werkzeug.exceptions.Unauthorized",
                                'User not authenticated, use the "Authorization" header', 401)
            user = self.api_users.get(token.strip())
            # An expired key is simply not found among the valid ones: the same answer as a wrong one.
            if user is None or req.fault is not None:
                raise OdooError("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401)
            parts = req.path[len("/json/2/"):].strip("/").split("/")
            if len(parts) != 2 or not all(parts):
                raise OdooError("werkzeug.exceptions.NotFound", "404 Not Found", 404)
            model_name, method = parts
            body = req.json if req.body else {}
            if not isinstance(body, dict):
                raise OdooError("werkzeug.exceptions.BadRequest",
                                "400 Bad Request: the body must be a JSON object", 400)
            if model_name not in self.models:
                raise OdooError("werkzeug.exceptions.NotFound",
                                f"404 Not Found: the model {model_name!r} does not exist", 404)
            kwargs = dict(body)
            ids = kwargs.pop("ids", None)
            args = []
            if method == "read":
                args = [ids if ids is not None else []]
            elif ids:
                raise OdooError("builtins.TypeError", f"{method}() does not take ids", 422)
            result = self._call(model_name, method, args, kwargs, user=user)
        except OdooError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
            body = _error_data(exc)
            if exc.name.startswith("werkzeug.exceptions."):  # (description, code), as Odoo sends them
                body["arguments"] = [exc.message, exc.http_status]
            return Response.json(body, _json2_status(exc), headers)
        return Response.json(result)

    # ------------------------------------------------------------------ ORM methods
    def _call(self, model_name: str, method: str, args: list, kwargs: dict, user: ApiUser | None = None):
        model = self.models.get(model_name)
        if model is None:
            raise OdooError("odoo.exceptions.UserError", f"Object {model_name} doesn't exist", 404)
        if user is not None and not user.accounting and model_name in _ACCOUNTING_MODELS:
            raise _accounting_denied(model_name)
        if model_name == "res.users" and method == "context_get":
            return {"lang": "en_US", "tz": "Europe/Brussels", "uid": user.uid if user else self.uid}
        kwargs = dict(kwargs)
        context = kwargs.pop("context", None) or {}
        if not isinstance(context, dict):
            raise OdooError("builtins.TypeError", "context must be a dict")
        handlers = {
            "search_read": (("domain", "fields", "offset", "limit", "order"), self._search_read),
            "search": (("domain", "offset", "limit", "order"), self._search),
            "search_count": (("domain", "limit"), self._search_count),
            "read": (("ids", "fields", "load"), self._read),
            "fields_get": (("allfields", "attributes"), self._fields_get),
        }
        if method not in handlers:
            if method in ("create", "write", "unlink", "copy", "action_post", "button_cancel"):
                raise OdooError("odoo.exceptions.AccessError",
                                f"You are not allowed to modify '{model_name}' records in the sandbox.", 403)
            raise OdooError("builtins.AttributeError",
                            f"The method '{method}' does not exist on the model '{model_name}'", 404)
        names, fn = handlers[method]
        if len(args) > len(names):
            raise OdooError("builtins.TypeError",
                            f"{method}() takes at most {len(names)} positional arguments ({len(args)} given)")
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise OdooError("builtins.TypeError",
                                f"{model_name}.{method}() got an unexpected keyword argument '{key}'")
            if key in bound:
                raise OdooError("builtins.TypeError", f"{method}() got multiple values for argument '{key}'")
            bound[key] = value
        if method in ("search", "search_count") and "domain" not in bound:
            # In the ORM, search_read's domain is optional but these two require one.
            raise OdooError("builtins.TypeError",
                            f"{model_name}.{method}() missing 1 required positional argument: 'domain'")
        active_test = context.get("active_test", True) is not False
        with self.data.lock:
            return fn(model, active_test=active_test, **bound)

    def _check_fields(self, model: _Model, fields) -> list[str]:
        if not fields:
            return [f for f in model.fields if f != "id"]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise OdooError("builtins.TypeError", "fields must be a list of field names")
        for f in fields:
            if f not in model.fields:
                raise OdooError("builtins.ValueError", f"Invalid field '{f}' on model '{model.name}'")
        return [f for f in fields if f != "id"]

    def _search_read(self, model: _Model, domain=None, fields=None, offset=0, limit=None, order=None,
                     active_test=True):
        names = self._check_fields(model, fields)
        records = self._select(model, domain, offset, limit, order, active_test)
        render = _renderer(model, names)
        return [render(r) for r in records]

    def _search(self, model: _Model, domain=None, offset=0, limit=None, order=None, active_test=True):
        return [r["id"] for r in self._select(model, domain, offset, limit, order, active_test)]

    def _search_count(self, model: _Model, domain=None, limit=None, active_test=True):
        records = model.records()
        key = None
        if len(records) >= self.index_threshold:
            key = (model.name, json.dumps(domain, sort_keys=True, default=str), active_test,
                   self.data.version, len(records))
            if key in self._count_cache:
                n = self._count_cache[key]
                return min(n, limit) if limit else n
        pred, candidates = self._plan(model, domain, active_test)
        n = sum(1 for r in candidates if pred(r))
        if key is not None:
            if len(self._count_cache) > 64:
                self._count_cache.clear()
            self._count_cache[key] = n
        return min(n, limit) if limit else n

    def _read(self, model: _Model, ids=None, fields=None, load=None, active_test=True):
        names = self._check_fields(model, fields)
        if isinstance(ids, int):
            ids = [ids]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise OdooError("builtins.TypeError", "ids must be a list of integers")
        records = model.records()
        out = []
        render = _renderer(model, names)
        readable = self._readable(model)
        for rid in ids:
            try:
                rec = sd._by_id(records, rid)
            except KeyError:
                continue  # Odoo's read() leaves out ids that do not exist (no MissingError)
            if readable is None or readable(rec):
                out.append(render(rec))
        return out

    def _fields_get(self, model: _Model, allfields=None, attributes=None, active_test=True):
        out = {}
        for name, spec in model.fields.items():
            if allfields and name not in allfields:
                continue
            out[name] = {k: v for k, v in spec.items() if not attributes or k in attributes}
        return out

    # ------------------------------------------------------------------ query planning
    def _select(self, model: _Model, domain, offset, limit, order, active_test) -> list[dict]:
        offset = _int_arg(offset, "offset") or 0
        limit = _int_arg(limit, "limit") or None
        keys = _parse_order(order or model.default_order, model)
        pred, candidates = self._plan(model, domain, active_test,
                                      descending=keys == [("id", True)])
        if keys in ([("id", False)], [("id", True)]):
            # Candidates already come in id order: stop once the page is full.
            out = []
            skip = offset
            for r in candidates:
                if pred(r):
                    if skip:
                        skip -= 1
                        continue
                    out.append(r)
                    if limit and len(out) >= limit:
                        break
            return out
        records = model.records()
        if (limit and keys in ([("write_date", True), ("id", True)], [("write_date", False)],
                               [("write_date", False), ("id", False)])
                and len(records) >= self.index_threshold):
            # "the newest write_date" (the next high-water mark): walk the index from its end.
            positions = self._write_date_positions(model, records, [])
            if positions is not None:
                index = self._indexes[model.name]
                order = reversed(index[2]) if keys[0][1] else index[2]
                out = []
                for i in order:
                    r = records[i]
                    if pred(r):
                        out.append(r)
                        if len(out) >= offset + limit:
                            break
                return out[offset:]
        matches = [r for r in candidates if pred(r)]
        for field_name, desc in reversed(keys):
            matches.sort(key=_sort_key(field_name, model), reverse=desc)
        end = offset + limit if limit else None
        return matches[offset:end]

    def _plan(self, model: _Model, domain, active_test: bool, descending: bool = False):
        """(predicate, candidate records in id order) for a domain."""
        if domain is None:
            domain = []
        if not isinstance(domain, list):
            raise OdooError("builtins.ValueError", f"Invalid domain: {domain!r}")
        pred = _compile(domain, model)
        if model.has_active and active_test and not _mentions(domain, "active"):
            inner = pred
            pred = lambda r: r.get("active", True) is not False and inner(r)  # noqa: E731
        readable = self._readable(model)
        if readable is not None:
            pred = _and(readable, pred)
        records = model.records()
        lo, hi = 0, len(records)
        conj = _conjunction(domain)
        if conj is not None:
            # Paging by id: bisect to the first candidate (records are sorted by id).
            for f, op, v in conj:
                if f != "id" or isinstance(v, bool) or not isinstance(v, int):
                    continue
                key = _record_id
                if op == ">":
                    lo = max(lo, bisect.bisect_right(records, v, key=key))
                elif op == ">=":
                    lo = max(lo, bisect.bisect_left(records, v, key=key))
                elif op == "<":
                    hi = min(hi, bisect.bisect_left(records, v, key=key))
                elif op == "<=":
                    hi = min(hi, bisect.bisect_right(records, v, key=key))
        if conj is not None and len(records) >= self.index_threshold and "write_date" in model.fields:
            # Incremental loads: a sorted write_date index finds the few changed records.
            terms = [(op, v) for f, op, v in conj if f == "write_date" and op in (">", ">=")]
            positions = self._write_date_positions(model, records, terms) if terms else None
            if positions is not None and len(positions) < len(records) // 4:
                self.index_hits += 1
                window = positions[bisect.bisect_left(positions, lo):bisect.bisect_left(positions, hi)]
                if descending:
                    window = window[::-1]
                return pred, (records[i] for i in window)
        rng = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        return pred, (records[i] for i in rng)

    def _write_date_positions(self, model: _Model, records: list, terms) -> list[int] | None:
        """Positions (ascending, i.e. in id order) of the records whose write_date passes `terms`."""
        stamp = (model.name, self.data.version, len(records))
        index = self._indexes.get(model.name)
        if index is None or index[0] != stamp:
            try:
                pairs = sorted((r.get("write_date") or "", i) for i, r in enumerate(records))
            except TypeError:  # a hand-made record with a non-text write_date: scan instead
                return None
            index = (stamp, [p[0] for p in pairs], [p[1] for p in pairs], {})
            self._indexes[model.name] = index
        _, stamps, positions, cache = index
        start = 0
        for op, value in terms:
            if not isinstance(value, str):
                return None
            value = _norm_datetime(value)
            pos = bisect.bisect_right(stamps, value) if op == ">" else bisect.bisect_left(stamps, value)
            start = max(start, pos)
        if start not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[start] = sorted(positions[start:])
        return cache[start]


def _record_id(record: dict):
    return record["id"]


# ---------------------------------------------------------------------- helpers

def _error_data(exc: OdooError) -> dict:
    return {"name": exc.name, "message": exc.message, "arguments": [exc.message], "context": {},
            "debug": "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/"
                     "odoo/http.py\", line 1764, in _serve_db\n    return service_model.retrying("
                     f"self._serve_ir_http, self.env)\n{exc.name}: {exc.message}\n"}


def _json2_status(exc: OdooError) -> int:
    """JSON-2's status: Odoo's UserError family and werkzeug's HTTP errors carry their own;
    a bad signature is 422; any other exception (ValueError of an unknown field...) is a 500."""
    if exc.name.startswith(("odoo.exceptions.", "werkzeug.exceptions.")) or exc.name == "builtins.TypeError":
        return exc.http_status
    return 500


def _werkzeug_page(status: int, title: str, text: str) -> bytes:
    return (f"<!doctype html>\n<html lang=en>\n<title>{status} {title}</title>\n<h1>{title}</h1>\n"
            f"<p>{text}</p>\n").encode()


def _int_arg(value, name: str) -> int | None:
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OdooError("builtins.ValueError", f"Invalid {name}: {value!r}")
    return value


def _renderer(model: _Model, names: list[str]) -> Callable[[dict], dict]:
    """A function that turns a stored record into the response dict: id + the requested fields."""
    stored = ["id"] + [f for f in names if f not in model.computed]
    computed = [(f, model.computed[f]) for f in names if f in model.computed]
    pick = operator.itemgetter(*stored)
    order = ["id"] + names

    def render(rec: dict) -> dict:
        try:
            out = dict(zip(stored, pick(rec), strict=True)) if len(stored) > 1 else {"id": rec["id"]}
        except KeyError:  # a hand-edited record without some field: Odoo would send false
            out = {f: rec.get(f, False) for f in stored}
        for f, fn in computed:
            out[f] = fn(rec)
        if computed:
            out = {f: out[f] for f in order}
        return out
    return render


_ORDER_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*)(?:\s+(asc|desc))?(?:\s+nulls\s+(?:first|last))?\s*$", re.I)


def _parse_order(order: str, model: _Model) -> list[tuple[str, bool]]:
    if not isinstance(order, str):
        raise OdooError("builtins.ValueError", f"Invalid \"order\" specified ({order!r}).")
    keys = []
    for part in order.split(","):
        m = _ORDER_RE.match(part)
        if not m or m.group(1) not in model.fields:
            raise OdooError(
                "builtins.ValueError",
                f"Invalid \"order\" specified ({order}). A valid \"order\" specification is a "
                "comma-separated list of valid field names (optionally followed by asc/desc for "
                "the direction)")
        keys.append((m.group(1), (m.group(2) or "asc").lower() == "desc"))
    return keys


def _sort_key(field_name: str, model: _Model):
    is_m2o = model.fields[field_name]["type"] == "many2one"
    get = model.getter(field_name)

    def key(r):
        v = get(r)
        if v is False or v is None:
            return (True, 0)  # NULLs last ascending, first descending, as PostgreSQL sorts them
        if is_m2o and isinstance(v, list):
            v = v[1]
        return (False, v)
    return key


def _mentions(domain: list, field_name: str) -> bool:
    return any(isinstance(t, (list, tuple)) and t and t[0] == field_name for t in domain)


def _conjunction(domain: list):
    """The leaves of a domain that is a pure AND (implicit or with '&'), else None."""
    leaves = []
    for item in domain:
        if item == "&":
            continue
        if isinstance(item, str) or not isinstance(item, (list, tuple)) or len(item) != 3:
            return None
        leaves.append(tuple(item))
    return leaves


def _norm_datetime(value: str) -> str:
    value = value.strip().replace("T", " ")
    if value.endswith("Z"):
        value = value[:-1]
    value = value.split(".")[0].split("+")[0]
    return value + " 00:00:00" if len(value) == 10 else value


def _and(a, b):
    return lambda r: a(r) and b(r)


def _or(a, b):
    return lambda r: a(r) or b(r)


def _not(a):
    return lambda r: not a(r)


def _compile(domain: list, model: _Model) -> Callable[[dict], bool]:
    """A predicate for a domain in Odoo's prefix notation ('&', '|', '!'; implicit AND)."""
    stack: list[Callable] = []
    for item in reversed(domain):
        if isinstance(item, str) and item in ("&", "|"):
            if len(stack) < 2:
                raise OdooError("builtins.ValueError",
                                f"Invalid domain: {domain!r} (operator {item!r} needs two operands)")
            first, second = stack.pop(), stack.pop()
            stack.append(_and(first, second) if item == "&" else _or(first, second))
        elif isinstance(item, str) and item == "!":
            if not stack:
                raise OdooError("builtins.ValueError", f"Invalid domain: {domain!r} ('!' needs an operand)")
            stack.append(_not(stack.pop()))
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            stack.append(_leaf(item, model))
        else:
            raise OdooError("builtins.ValueError", f"Invalid domain term {item!r}")
    if not stack:
        return lambda r: True
    preds = list(reversed(stack))
    combined = preds[0]
    for nxt in preds[1:]:
        combined = _and(combined, nxt)
    return combined


_OPERATORS = ("=", "!=", "<>", "in", "not in", ">", ">=", "<", "<=", "like", "ilike", "not like",
              "not ilike", "=like", "=ilike")


def _is_empty(value) -> bool:
    """Odoo's `false` / SQL NULL (identity: 0 and 0.0 are values, not empty)."""
    return value is False or value is None


def _leaf(term, model: _Model) -> Callable[[dict], bool]:
    field_name, op, value = term
    if isinstance(field_name, str) and field_name in model.paths:
        ftype, key = model.paths[field_name]
        model = _Model(model.name, model.records, {field_name: {"type": ftype}}, "id", False,
                       {field_name: lambda r: r.get(key, False)})
    if field_name in (1, 0) and op == "=" and value in (1, 0):  # TRUE_LEAF / FALSE_LEAF
        result = field_name == value
        return lambda r: result
    if not isinstance(field_name, str) or field_name not in model.fields:
        raise OdooError("builtins.ValueError", f"Invalid field {field_name!r} on model {model.name!r}")
    if not isinstance(op, str) or op.lower() not in _OPERATORS:
        raise OdooError("builtins.ValueError", f"Invalid domain operator {op!r} in {list(term)!r}")
    op = "!=" if op == "<>" else op.lower()
    ftype = model.fields[field_name]["type"]
    get = model.getter(field_name)
    if ftype == "datetime" and isinstance(value, str):
        value = _norm_datetime(value)
    if ftype == "date" and isinstance(value, str):
        value = value[:10]

    if op in ("in", "not in"):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        wants_empty = any(v is False or v is None for v in values)
        if ftype == "many2one":
            ids = {v for v in values if isinstance(v, int) and not isinstance(v, bool)}
            names = {v for v in values if isinstance(v, str)}

            def hit(r):
                v = get(r)
                if not v:
                    return wants_empty
                return v[0] in ids or v[1] in names
        elif ftype in ("many2many", "one2many"):
            ids = {v for v in values if isinstance(v, int)}

            def hit(r):
                v = get(r) or []
                return (not v and wants_empty) or any(i in ids for i in v)
        else:
            vals = [v for v in values if v is not False and v is not None]
            try:
                vals = set(vals)
            except TypeError:
                pass

            def hit(r):
                v = get(r)
                if v is False or v is None:
                    return wants_empty
                try:
                    return v in vals
                except TypeError:
                    return False
        return hit if op == "in" else (lambda r: not hit(r))

    if op in ("like", "ilike", "not like", "not ilike", "=like", "=ilike"):
        text = "" if _is_empty(value) else str(value)
        if op.startswith("="):
            pattern = "^" + re.escape(text).replace("%", ".*").replace("_", ".") + "$"
        else:
            pattern = re.escape(text)
        rx = re.compile(pattern, re.I if "ilike" in op else 0)

        def like(r):
            v = get(r)
            if ftype == "many2one":
                v = v[1] if v else False
            return not _is_empty(v) and rx.search(str(v)) is not None
        return (lambda r: not like(r)) if op.startswith("not") else like

    if ftype in ("many2many", "one2many"):
        if op == "=":
            return (lambda r: not get(r)) if _is_empty(value) else (lambda r: value in (get(r) or []))
        if op == "!=":
            return (lambda r: bool(get(r))) if _is_empty(value) else (lambda r: value not in (get(r) or []))
        raise OdooError("builtins.ValueError", f"Invalid domain operator {op!r} for a {ftype} field")

    if ftype == "many2one":
        if _is_empty(value):
            eq = lambda r: not get(r)  # noqa: E731
        elif isinstance(value, str):
            eq = lambda r: bool(get(r)) and get(r)[1] == value  # noqa: E731
        else:
            eq = lambda r: bool(get(r)) and get(r)[0] == value  # noqa: E731
        if op == "=":
            return eq
        if op == "!=":
            return lambda r: not eq(r)
        raw = get
        get = lambda r: raw(r)[0] if raw(r) else False  # noqa: E731 - compare ids
    elif ftype == "boolean" and op in ("=", "!="):
        want = bool(value)
        return (lambda r: bool(get(r)) == want) if op == "=" else (lambda r: bool(get(r)) != want)

    if op == "=":
        if _is_empty(value):
            return lambda r: _is_empty(get(r))
        return lambda r: get(r) == value
    if op == "!=":
        if _is_empty(value):
            return lambda r: not _is_empty(get(r))
        return lambda r: get(r) != value
    if _is_empty(value):
        return lambda r: False
    compare = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}[op]

    def cmp(r):
        v = get(r)
        if v is False or v is None:
            return False  # NULL compares false in SQL
        try:
            return compare(v, value)
        except TypeError:
            return False
    return cmp

"""The workbench's web application: routes, the login, sessions and CSRF, security headers.

Every page but the login needs a user: from the session cookie (a user of the users file), or
from the trusted proxy's header when the request comes from the proxy's own address. Every POST
carries the session's CSRF token. Database work runs in the thread pool, off the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dunning_pipeline import settings
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.workbench import auth
from dunning_pipeline.workbench.actions import CALL_OUTCOMES, ActionError, Recorder, utc_now
from dunning_pipeline.workbench.config import WorkbenchConfig
from dunning_pipeline.workbench.queries import GROUP_LABEL, HOLD_FILTERS, Filters, Reader, fmt_units
from dunning_pipeline.zendesk.client import ZendeskError
from dunning_pipeline.zendesk.send import ReminderSender

log = logging.getLogger("dunning_pipeline.workbench")
HERE = Path(__file__).parent
COOKIE = "wb_session"
MAX_FORM_BYTES = 64 * 1024
# Messages after a redirect: chosen by key, so nothing from the request is echoed back.
DONE = {"promise": "Payment promise recorded: the invoice is held from tonight's run.",
        "exclusion": "Exclusion recorded: held from tonight's run.",
        "call": "Phone call recorded.", "reminder_sent": "Reminder recorded as sent.",
        "zendesk_send": "Reminder sent through Zendesk and recorded as sent: tonight's run reads it "
                        "back into the email history.",
        "release": "Hold released: tonight's run dunns the invoice again.",
        "retract": "Action retracted."}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@dataclass
class Ctx:
    user: str | None
    session: dict
    form: dict = field(default_factory=dict)
    new_session: dict | None = None  # set to rotate the session (login, logout)


class Workbench:
    def __init__(self, config: WorkbenchConfig, *, now: Callable[[], datetime] = utc_now,
                 limiter: auth.LoginLimiter | None = None, warehouse: Warehouse | None = None):
        self.config = config
        self.now = now
        self.tz = settings.timezone()
        self.users = auth.UsersFile(config.users_file)
        self.signer = auth.SessionSigner(config.secret)
        self.limiter = limiter or auth.LoginLimiter()
        # Logging out ends every session of that user issued before (cookies are stateless).
        self._logged_out: dict[str, float] = {}
        self.warehouse = warehouse or Warehouse(config.database_url)
        self.warehouse.ensure_schema()  # the workbench's own table and the columns it writes
        self.reader = Reader(self.warehouse.engine)
        self.recorder = Recorder(self.warehouse.engine, self.reader, now)
        # Only when the installation enables it: no button, no route otherwise.
        self.sender = (ReminderSender(config.zendesk_url, config.zendesk_email, config.zendesk_api_token)
                       if config.zendesk_send else None)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.templates.filters["money"] = lambda u, cur=None: fmt_units(u, cur)
        self.templates.filters["day"] = _day
        self.templates.filters["stamp"] = _stamp
        self.templates.filters["cell"] = _cell
        self.templates.globals.update(odoo_invoice=self._odoo_invoice, group_label=GROUP_LABEL,
                                      call_outcomes=CALL_OUTCOMES, hold_filters=HOLD_FILTERS)
        if config.secret_is_random:
            log.warning("DUNNING_WORKBENCH_SECRET is not set: sessions end when the workbench restarts")

    def today(self) -> date:
        """The business day in DUNNING_TIMEZONE (dates in the past are refused against it)."""
        return self.now().astimezone(self.tz).date()

    # -- plumbing -------------------------------------------------------------------------
    def app(self) -> Starlette:
        routes = [
            Route("/", self._page(self.worklist)),
            Route("/login", self._page(self.login, public=True), methods=["GET", "POST"]),
            Route("/logout", self._page(self.logout), methods=["POST"]),
            Route("/report", self._page(self.report)),
            Route("/customers/{customer_id:int}", self._page(self.customer_page)),
            Route("/customers/{customer_id:int}/{kind:str}", self._page(self.record), methods=["POST"]),
            Route("/customers/{customer_id:int}/holds/{hold_id:int}/release",
                  self._page(self.release), methods=["POST"]),
            Route("/customers/{customer_id:int}/actions/{action_id:int}/retract",
                  self._page(self.retract), methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return Starlette(routes=routes, middleware=[])

    def _peer_is_proxy(self, request: Request) -> bool:
        return bool(request.client) and request.client.host in self.config.trusted_proxies

    def _https(self, request: Request) -> bool:
        if self.config.https or request.url.scheme == "https":
            return True
        return self._peer_is_proxy(request) and request.headers.get("x-forwarded-proto", "") == "https"

    def _user(self, request: Request, session: dict) -> str | None:
        if self.config.proxy_auth and self._peer_is_proxy(request):
            named = request.headers.get(self.config.proxy_header, "").strip()
            if named and len(named) <= 254 and named.isprintable():
                return named
        user = session.get("u")
        if not isinstance(user, str) or session["iat"] <= self._logged_out.get(user, 0.0):
            return None
        # A user removed from the file loses their session at once.
        return user if user in self.users.names() else None

    def _page(self, handler, *, public: bool = False):
        async def endpoint(request: Request) -> Response:
            session = self.signer.loads(request.cookies.get(COOKIE))
            fresh = session is None
            session = session or auth.new_session(None)
            ctx = Ctx(user=self._user(request, session), session=session)
            if request.method == "POST":
                body = await request.body()
                if len(body) > MAX_FORM_BYTES:
                    return self._error(ctx, 413, "The form is too large.")
                ctype = request.headers.get("content-type", "").split(";")[0].strip()
                if body and ctype != "application/x-www-form-urlencoded":
                    return self._error(ctx, 415, "Forms are sent as application/x-www-form-urlencoded.")
                ctx.form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                if fresh or not auth.csrf_ok(session, ctx.form.get("csrf_token")):
                    response = self._error(ctx, 403, "This form has expired or did not come from the workbench. "
                                                     "Reload the page and send it again; nothing was saved.")
                    return self._finish(request, response, ctx, fresh)
            if not public and ctx.user is None:
                if request.method == "GET":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
                else:
                    response = self._error(ctx, 403, "Log in first; nothing was saved.")
                return self._finish(request, response, ctx, fresh)
            response = await run_in_threadpool(handler, request, ctx)
            return self._finish(request, response, ctx, fresh)
        return endpoint

    def _finish(self, request: Request, response: Response, ctx: Ctx, fresh: bool) -> Response:
        session = ctx.new_session or (ctx.session if fresh else None)
        if session is not None:
            response.set_cookie(COOKIE, self.signer.dumps(session), max_age=self.signer.max_age_s, path="/",
                                httponly=True, samesite="lax", secure=self._https(request))
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        response.headers["cache-control"] = "no-store"
        return response

    def render(self, ctx: Ctx, name: str, status: int = 200, **values) -> HTMLResponse:
        session = ctx.new_session or ctx.session
        html = self.templates.get_template(name).render(
            user=ctx.user, csrf_token=session["csrf"], proxy_user=self.config.proxy_auth and ctx.user
            and session.get("u") != ctx.user, **values)
        return HTMLResponse(html, status_code=status)

    def _error(self, ctx: Ctx, status: int, message: str) -> HTMLResponse:
        return self.render(ctx, "error.html", status=status, message=message)

    def _odoo_invoice(self, invoice_id) -> str | None:
        if not self.config.odoo_url or invoice_id is None:
            return None
        return f"{self.config.odoo_url}/web#id={int(invoice_id)}&model=account.move&view_type=form"

    # -- login ----------------------------------------------------------------------------
    def login(self, request: Request, ctx: Ctx) -> Response:
        target = _local_path(request.query_params.get("next") or ctx.form.get("next"))
        if request.method == "GET":
            if ctx.user:
                return RedirectResponse(target, status_code=303)
            return self.render(ctx, "login.html", next=target, error=None, login_name="",
                               no_users=not self.users.names() and not self.config.proxy_auth)
        name = ctx.form.get("username", "").strip()[:64]
        peer = request.client.host if request.client else "?"
        keys = (f"user:{name.casefold()}", f"peer:{peer}")
        wait = self.limiter.retry_after(*keys)
        if wait:
            return self.render(ctx, "login.html", status=429, next=target, login_name=name, no_users=False,
                               error=f"Too many failed logins. Try again in {-(-wait // 60)} minute(s).")
        if not self.users.verify(name, ctx.form.get("password", "")):
            self.limiter.failed(*keys)
            log.info("failed workbench login from %s", peer)  # the name typed may be a password
            return self.render(ctx, "login.html", status=401, next=target, login_name=name, no_users=False,
                               error="Wrong user name or password.")
        self.limiter.succeeded(keys[0])
        ctx.new_session = auth.new_session(name)  # a new CSRF token with the new session
        log.info("workbench login: %s", name)
        return RedirectResponse(target, status_code=303)

    def logout(self, request: Request, ctx: Ctx) -> Response:
        if ctx.session.get("u") == ctx.user:  # not for a proxy's user: the proxy owns that login
            self._logged_out[ctx.user] = time.time()
        ctx.new_session = auth.new_session(None)
        return RedirectResponse("/login", status_code=303)

    # -- pages ----------------------------------------------------------------------------
    def worklist(self, request: Request, ctx: Ctx) -> Response:
        f = Filters.parse(request.query_params)
        self.reader.refresh_worklist()
        with self.warehouse.engine.connect() as conn:
            as_of = self.reader.as_of(conn)
            options = self.reader.options(conn, as_of)
            data = self.reader.worklist(conn, f, as_of, self.config.page_size)
        return self.render(ctx, "worklist.html", status=400 if f.errors else 200, f=f, as_of=as_of,
                           options=options, data=data, qs=lambda **o: urlencode(f.query(**o)))

    def customer_page(self, request: Request, ctx: Ctx, *, errors: dict | None = None,
                      status: int = 200) -> Response:
        customer_id = request.path_params["customer_id"]
        with self.warehouse.engine.connect() as conn:
            customer = self.reader.customer(conn, customer_id)
            if customer is None:
                return self._error(ctx, 404, f"No customer {customer_id} in the warehouse.")
            values = dict(
                customer=customer, as_of=self.reader.as_of(conn),
                invoices=self.reader.invoices(conn, customer_id, _page_number(request, "invoices_page"),
                                              self.config.page_size),
                instalments=self.reader.instalments(conn, customer_id),
                history=self.reader.history(conn, customer_id),
                holds=self.reader.holds(conn, customer_id),
                actions=self.reader.actions(conn, customer_id),
                emails=self.reader.emails(conn, customer_id, _page_number(request, "emails_page")),
                drafts=self.reader.drafts(conn, customer_id),
                open_tickets=self.reader.open_tickets(conn, customer_id) if self.sender else [],
            )
        for d in values["drafts"]:
            d["_mailto"] = _mailto(d["_to"] or customer.get("email"), d["_subject"], d["_body"])
        done = DONE.get(request.query_params.get("done", ""))
        return self.render(ctx, "customer.html", status=status, done=done, errors=errors or {},
                           form=ctx.form if errors else {}, today=self.today(),
                           zendesk_send=self.sender is not None, **values)

    def report(self, request: Request, ctx: Ctx) -> Response:
        with self.warehouse.engine.connect() as conn:
            values = dict(as_of=self.reader.as_of(conn), buckets=self.reader.bucket_totals(conn),
                          ar_aging_report=self.reader.report_table(conn, "ar_aging_report"),
                          collection_kpis=self.reader.report_table(conn, "collection_kpis", newest_first=True))
        return self.render(ctx, "report.html", **values)

    # -- actions --------------------------------------------------------------------------
    def _as_of(self) -> date | None:
        with self.warehouse.engine.connect() as conn:
            return self.reader.as_of(conn)

    def _act(self, request: Request, ctx: Ctx, kind: str, write) -> Response:
        customer_id = request.path_params["customer_id"]
        with self.warehouse.engine.connect() as conn:
            if self.reader.customer(conn, customer_id) is None:
                return self._error(ctx, 404, f"No customer {customer_id} in the warehouse; nothing was saved.")
        try:
            write(customer_id)
        except ActionError as exc:
            return self.customer_page(request, ctx, errors={"kind": kind, "field": exc.field, "message": str(exc)},
                                      status=400)
        except PermissionError as exc:
            return self._error(ctx, 403, f"{exc}; nothing was changed.")
        except ZendeskError as exc:  # the message says whether it may have gone out; nothing recorded
            log.warning("workbench %s on customer %s by %s failed: %s", kind, customer_id, ctx.user, exc)
            return self.customer_page(request, ctx, errors={"kind": kind, "field": "zendesk", "message": str(exc)},
                                      status=502)
        log.info("workbench %s on customer %s by %s", kind, customer_id, ctx.user)
        return RedirectResponse(f"/customers/{customer_id}?done={kind}", status_code=303)

    def record(self, request: Request, ctx: Ctx) -> Response:
        kind = request.path_params["kind"].replace("-", "_")
        r, user, form = self.recorder, ctx.user, ctx.form
        writers = {
            "promise": lambda c: r.promise(user, c, form, self.today(), self._as_of()),
            "exclusion": lambda c: r.exclusion(user, c, form, self.today(), self._as_of()),
            "call": lambda c: r.call(user, c, form, self._as_of()),
            "reminder_sent": lambda c: r.reminder_sent(user, c, form, self._as_of()),
        }
        if self.sender is not None:
            writers["zendesk_send"] = lambda c: r.zendesk_send(user, c, form, self._as_of(), self.sender)
        if kind not in writers:
            return self._error(ctx, 404, "No such action.")
        return self._act(request, ctx, kind, writers[kind])

    def release(self, request: Request, ctx: Ctx) -> Response:
        hold_id = request.path_params["hold_id"]
        return self._act(request, ctx, "release",
                         lambda c: self.recorder.release(ctx.user, c, hold_id, ctx.form, self._as_of()))

    def retract(self, request: Request, ctx: Ctx) -> Response:
        action_id = request.path_params["action_id"]
        return self._act(request, ctx, "retract", lambda c: self.recorder.retract(ctx.user, c, action_id))


def create_app(config: WorkbenchConfig, **kwargs) -> Starlette:
    return Workbench(config, **kwargs).app()


def _local_path(value: str | None) -> str:
    """Only a path on this site (no scheme, no //host) may be a redirect target."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _page_number(request: Request, name: str) -> int:
    """A page number from the query string; anything but a small positive number is page 1."""
    value = request.query_params.get(name, "1")
    return int(value) if value.isdigit() and 0 < len(value) < 6 and int(value) > 0 else 1


def _mailto(to, subject, body) -> str | None:
    if not to:
        return None
    query = urlencode({k: v for k, v in (("subject", subject), ("body", body)) if v}, quote_via=quote)
    return f"mailto:{quote(str(to), safe='@.+-_')}" + (f"?{query}" if query else "")


def _day(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _stamp(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)[:16]


def _cell(value) -> str:
    """A reflected column's value for display (types unknown in advance)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)

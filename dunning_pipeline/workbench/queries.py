"""The workbench's reads: SQLAlchemy Core over the warehouse, filtering, grouping and paging in
SQL (never a whole table in Python), every value a bound parameter.

Tables of the reporting part (`ar_aging_report`, `collection_kpis`, `customer_timeline`,
`reminder_drafts`) and `instalment_aging` are read only when present in the database, with the
columns they have (reflected), so their final shape can change without breaking these pages.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline import money
from dunning_pipeline.dunning import tables as dt
from dunning_pipeline.reporting import draft_tables
from dunning_pipeline.warehouse import schema
from dunning_pipeline.workbench import rollup
from dunning_pipeline.workbench.rollup import DUNNED, GROUPS, ON_HOLD, units, wl, wlc
from dunning_pipeline.workbench.tables import workbench_actions

ag = dt.invoice_aging
GROUP_LABEL = {key: label for key, label, _ in GROUPS}
HOLD_FILTERS = ("", "held", "any", "exclusion", "dispute", "payment_claimed", "promise", "in_payment",
                "net_credit", "blocked")
OPTIONAL_TABLES = ("ar_aging_report", "collection_kpis", "customer_timeline", "reminder_drafts",
                   "instalment_aging")
MAX_PAGE = 100_000
log = logging.getLogger("dunning_pipeline.workbench")


def fmt_units(u, currency: str | None = None) -> str:
    return "" if u is None else money.format_amount(int(u), currency)


@dataclass
class Filters:
    stage: str = ""
    segment: str = ""
    company: int | None = None
    currency: str = ""
    hold: str = ""
    handled: bool = False
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, params) -> Filters:
        f = cls(stage=params.get("stage", "").strip()[:64], segment=params.get("segment", "").strip()[:64],
                currency=params.get("currency", "").strip().upper()[:8], hold=params.get("hold", "").strip(),
                handled=params.get("handled") == "1")
        company = params.get("company", "").strip()
        if company:
            if company.isdigit() and len(company) < 19:
                f.company = int(company)
            else:
                f.errors.append(f"company: {company[:40]!r} is not a company id (a whole number)")
        if f.hold not in HOLD_FILTERS:
            f.errors.append(f"hold: {f.hold[:40]!r} is not one of the hold filters")
            f.hold = ""
        page = params.get("page", "1").strip()
        f.page = min(int(page), MAX_PAGE) if page.isdigit() and 0 < len(page) < 7 and int(page) > 0 else 1
        return f

    @property
    def unfiltered(self) -> bool:
        """Today's dunned customers, no filter: read in order from the per-customer rollup."""
        return (not self.hold and not self.stage and not self.segment and self.company is None
                and not self.currency)

    def query(self, **override) -> dict:
        """The filter as query-string parameters (for paging links)."""
        out = {"stage": self.stage, "segment": self.segment, "currency": self.currency, "hold": self.hold,
               "company": "" if self.company is None else str(self.company),
               "handled": "1" if self.handled else "", "page": str(self.page)}
        out.update({k: str(v) for k, v in override.items()})
        return {k: v for k, v in out.items() if v}


class Reader:
    """Queries of the pages, on one engine; reflected optional tables cached per process."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._reflected: dict[str, sa.Table | None] = {}
        self._options: dict = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._totals: tuple[str | None, list[dict]] | None = None  # (snapshot, unfiltered totals)
        self.rebuilds = 0  # rollups rebuilt by this reader (the nightly asset should leave it at 0)

    # -- optional tables ------------------------------------------------------------------
    def optional(self, conn: Connection, name: str) -> sa.Table | None:
        """The table as it is in the database, or None when it is not there (looked up again
        until it appears, so a table created later is picked up without a restart)."""
        with self._lock:
            cached = self._reflected.get(name)
        if cached is not None:
            return cached
        if not sa.inspect(conn).has_table(name):
            return None
        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
        with self._lock:
            self._reflected[name] = table
        return table

    # -- worklist -------------------------------------------------------------------------
    def as_of(self, conn: Connection) -> date | None:
        value = conn.execute(sa.select(sa.func.max(ag.c.as_of_date))).scalar()
        return _as_date(value)

    def options(self, conn: Connection, as_of: date | None) -> dict[str, list]:
        """Values offered in the filters; computed once per as-of date."""
        with self._lock:
            if self._options.get("as_of") == as_of and as_of is not None:
                return self._options["values"]
        values = {}
        for key, col in (("stage", ag.c.stage), ("segment", ag.c.segment), ("company", ag.c.company_id),
                         ("currency", ag.c.currency)):
            rows = conn.execute(sa.select(col).where(col.is_not(None)).distinct().order_by(col)).scalars()
            values[key] = list(rows)
        with self._lock:
            self._options = {"as_of": as_of, "values": values}
        return values

    def refresh_worklist(self) -> bool:
        """Make sure the worklist's rollup is of the current aging snapshot. The nightly asset
        `workbench_worklist` builds it after the aging; only when its mark names another snapshot
        (the asset not run yet, or the aging rerun without it) is it rebuilt here, once per
        snapshot, in one transaction, and logged. Returns whether it was rebuilt here."""
        with self.engine.connect() as conn:
            current, built = rollup.current_snapshot(conn), rollup.built_snapshot(conn)
        if current == built:
            if self._totals is None or self._totals[0] != current:
                with self.engine.connect() as conn:  # the rollup is immutable: its totals too
                    self._totals = (current, self._summary(conn, sa.select(*wlc.c).subquery()))
            return False
        with self._refresh_lock, self.engine.begin() as conn:
            current, built = rollup.current_snapshot(conn), rollup.built_snapshot(conn)
            if current == built:
                return False
            log.warning("worklist rollup is of snapshot %s, the aging of %s: rebuilding it in the workbench "
                        "(materialize workbench_worklist after invoice_aging to build it at night)", built, current)
            rollup.rebuild(conn)
            self.rebuilds += 1
            return True

    def _row_filter(self, f: Filters) -> list[sa.ColumnElement]:
        if f.hold == "":
            where = [wl.c.dunning_status == DUNNED]
        elif f.hold == "any":
            where = [wl.c.dunning_status.in_((DUNNED, ON_HOLD))]
        elif f.hold == "held":
            where = [wl.c.dunning_status == ON_HOLD]
        else:
            where = [wl.c.dunning_status == ON_HOLD, wl.c.hold_reason == f.hold]
        if f.stage:
            where.append(wl.c.stage == f.stage)
        if f.segment:
            where.append(wl.c.segment == f.segment)
        if f.company is not None:
            where.append(wl.c.company_id == f.company)
        if f.currency:
            where.append(wl.c.currency == f.currency)
        return where

    _per_customer = staticmethod(rollup.per_customer)

    def _grouped(self, f: Filters, as_of: date | None) -> sa.Select:
        if f.unfiltered:
            per_customer = wlc
            stmt = sa.select(*wlc.c)
        else:
            per_customer = self._per_customer(self._row_filter(f)).subquery("per_customer")
            stmt = sa.select(per_customer, *rollup.group_of(per_customer.c.action_rank))
        if not f.handled and as_of is not None:
            wa = workbench_actions
            done = (sa.select(wa.c.id).where(
                wa.c.customer_id == per_customer.c.customer_id, wa.c.as_of_date >= as_of,
                wa.c.retracted_at.is_(None), wa.c.kind.in_(("call", "reminder_sent", "promise", "exclusion")))
                .exists())
            stmt = stmt.where(~done)
        return stmt

    def worklist(self, conn: Connection, f: Filters, as_of: date | None, page_size: int) -> dict:
        if f.unfiltered:  # the page is the first rows of an index
            w = self._grouped(f, as_of).subquery("worklist")
            rows = conn.execute(
                sa.select(w).order_by(w.c.group_order, w.c.amount_units.desc(), w.c.customer_id)
                .limit(page_size).offset((f.page - 1) * page_size)
            ).mappings().all()
            summary = self._unfiltered_summary(conn, f, as_of, w)
        else:
            rows, summary = self._page_and_summary(conn, f, as_of, page_size)
        total = sum(int(s["customers"]) for s in summary)
        groups = []
        for key, label, _ in GROUPS:
            items = [dict(r) for r in rows if r["action_group"] == key]
            sums = [s for s in summary if s["action_group"] == key]
            groups.append({"key": key, "label": label, "rows": items,
                           "customers": sum(int(s["customers"]) for s in sums),
                           "totals": [fmt_units(s["amount_units"], s["company_currency"]) for s in sums]})
        return {"groups": groups, "total_customers": total, "page": f.page,
                "pages": max(1, -(-total // page_size)), "shown": len(rows)}

    @staticmethod
    def _summary(conn: Connection, w) -> list[dict]:
        stmt = (sa.select(w.c.action_group, w.c.company_currency, sa.func.count().label("customers"),
                          sa.func.sum(w.c.amount_units).label("amount_units"))
                .group_by(w.c.action_group, w.c.company_currency))
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def _unfiltered_summary(self, conn: Connection, f: Filters, as_of: date | None, w) -> list[dict]:
        """Counts and totals of today's worklist: those of the rollup (kept per snapshot) less
        the customers handled today (a few rows), instead of a pass over every customer."""
        totals = self._totals[1] if self._totals is not None else None
        if totals is None:
            return self._summary(conn, w)
        if f.handled or as_of is None:
            return totals
        wa = workbench_actions
        handled = sa.select(wa.c.customer_id).where(
            wa.c.as_of_date >= as_of, wa.c.retracted_at.is_(None),
            wa.c.kind.in_(("call", "reminder_sent", "promise", "exclusion"))).distinct().subquery()
        less = {(r["action_group"], r["company_currency"]): r for r in self._summary(
            conn, sa.select(*wlc.c).where(wlc.c.customer_id.in_(sa.select(handled.c.customer_id))).subquery())}
        out = []
        for t in totals:
            d = less.get((t["action_group"], t["company_currency"]))
            n = int(t["customers"]) - (int(d["customers"]) if d else 0)
            if n > 0:
                out.append({**t, "customers": n,
                            "amount_units": int(t["amount_units"]) - (int(d["amount_units"]) if d else 0)})
        return out

    def _page_and_summary(self, conn: Connection, f: Filters, as_of: date | None,
                          page_size: int) -> tuple[list[dict], list[dict]]:
        """A filtered worklist: the customers are summed once (a CTE used twice), and the page
        and the counts per group come back in one statement."""
        w = self._grouped(f, as_of).cte("worklist")
        names = [c.name for c in w.c]
        page = (sa.select(w).order_by(w.c.group_order, w.c.amount_units.desc(), w.c.customer_id)
                .limit(page_size).offset((f.page - 1) * page_size).subquery("page"))
        rows_part = sa.select(sa.literal("row").label("part"), *[page.c[n] for n in names],
                              sa.null().label("customers"))
        summed = {"action_group": w.c.action_group, "company_currency": w.c.company_currency,
                  "amount_units": sa.func.sum(w.c.amount_units)}
        sum_part = (sa.select(sa.literal("sum").label("part"),
                              *[summed.get(n, sa.null()).label(n) for n in names],
                              sa.func.count().label("customers"))
                    .group_by(w.c.action_group, w.c.company_currency))
        both = sa.union_all(rows_part, sum_part).subquery("both")
        out = conn.execute(sa.select(both).order_by(both.c.part, both.c.group_order, both.c.amount_units.desc(),
                                                    both.c.customer_id)).mappings().all()
        return [r for r in out if r["part"] == "row"], [r for r in out if r["part"] == "sum"]

    # -- customer -------------------------------------------------------------------------
    def customer(self, conn: Connection, customer_id: int) -> dict | None:
        oc = schema.odoo_customers
        row = conn.execute(sa.select(oc.c.id, oc.c.name, oc.c.email, oc.c.phone, oc.c.lang, oc.c.country,
                                     oc.c.vat).where(oc.c.id == customer_id)).mappings().first()
        if row is None:  # the aging may know a customer Odoo's extract no longer holds
            name = conn.execute(sa.select(ag.c.customer_name).where(ag.c.customer_id == customer_id)
                                .limit(1)).scalar()
            if name is None:
                return None
            row = {"id": customer_id, "name": name, "email": None, "phone": None, "lang": None,
                   "country": None, "vat": None}
        return dict(row)

    def invoices(self, conn: Connection, customer_id: int, page: int = 1, page_size: int = 50) -> dict:
        """The customer's open items, most overdue first, one page at a time (the biggest customers
        have thousands), with the count and open amount per currency of all of them."""
        cols = [ag.c.invoice_id, ag.c.invoice_number, ag.c.move_type, ag.c.company_id, ag.c.currency,
                ag.c.company_currency, ag.c.invoice_date, ag.c.invoice_date_due, ag.c.days_overdue,
                ag.c.aging_bucket, ag.c.stage, ag.c.due_stage, ag.c.action, ag.c.dunning_status,
                ag.c.hold_reason, ag.c.hold_since, ag.c.hold_until, ag.c.hold_note, ag.c.hold_ticket_id,
                ag.c.receivable_status, ag.c.as_of_date,
                units(ag.c.amount_residual).label("amount_units"),
                units(ag.c.amount_residual_company).label("amount_company_units")]
        first = (page - 1) * page_size
        stmt = (sa.select(*cols).where(ag.c.customer_id == customer_id)
                .order_by(ag.c.days_overdue.desc(), ag.c.invoice_id).limit(page_size + 1).offset(first))
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
        totals = [dict(r) for r in conn.execute(
            sa.select(ag.c.currency, sa.func.count().label("invoices"),
                      sa.cast(sa.func.sum(units(ag.c.amount_residual)), sa.BigInteger).label("amount_units"))
            .where(ag.c.customer_id == customer_id).group_by(ag.c.currency).order_by(ag.c.currency)).mappings()]
        return {"rows": rows[:page_size], "more": len(rows) > page_size, "page": page, "first": first + 1,
                "count": sum(t["invoices"] for t in totals), "totals": totals}

    def invoice_of_customer(self, conn: Connection, customer_id: int, invoice_id: int) -> dict | None:
        row = conn.execute(sa.select(ag.c.invoice_id, ag.c.invoice_number).where(
            ag.c.customer_id == customer_id, ag.c.invoice_id == invoice_id)).mappings().first()
        return dict(row) if row else None

    def instalments(self, conn: Connection, customer_id: int) -> tuple[list[str], list[dict]]:
        return self._optional_rows(conn, "instalment_aging", customer_id,
                                   order=("date_maturity", "invoice_id", "instalment_number"))

    def history(self, conn: Connection, customer_id: int, limit: int = 200) -> list[dict]:
        h = dt.dunning_history
        stmt = (sa.select(h.c.as_of_date, h.c.invoice_id, h.c.invoice_number, h.c.from_stage, h.c.to_stage,
                          h.c.reason, h.c.days_overdue, h.c.hold_reason, h.c.currency,
                          units(h.c.amount_residual).label("amount_units"))
                .where(h.c.customer_id == customer_id)
                .order_by(h.c.as_of_date.desc(), h.c.id.desc()).limit(limit))
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def holds(self, conn: Connection, customer_id: int) -> list[dict]:
        """Manual holds on the customer or on its invoices, newest first."""
        hd = dt.dunning_holds
        invoice_ids = sa.select(ag.c.invoice_id).where(ag.c.customer_id == customer_id)
        stmt = (sa.select(hd).where(sa.or_(hd.c.customer_id == customer_id, hd.c.invoice_id.in_(invoice_ids)))
                .order_by(hd.c.created_at.desc(), hd.c.id.desc()).limit(200))
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def hold_of_customer(self, conn: Connection, customer_id: int, hold_id: int) -> dict | None:
        hd = dt.dunning_holds
        invoice_ids = sa.select(ag.c.invoice_id).where(ag.c.customer_id == customer_id)
        row = conn.execute(sa.select(hd).where(
            hd.c.id == hold_id,
            sa.or_(hd.c.customer_id == customer_id, hd.c.invoice_id.in_(invoice_ids)))).mappings().first()
        return dict(row) if row else None

    def actions(self, conn: Connection, customer_id: int, limit: int = 100) -> list[dict]:
        wa = workbench_actions
        stmt = (sa.select(wa).where(wa.c.customer_id == customer_id)
                .order_by(wa.c.created_at.desc(), wa.c.id.desc()).limit(limit))
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def emails(self, conn: Connection, customer_id: int, page: int = 1, page_size: int = 200) -> dict:
        """The customer's email history, oldest first: the `customer_timeline` of the last night
        (messages, with the dunning events interleaved), else the comments of the tickets matched
        to the customer (before the first night has built the timeline)."""
        tl = draft_tables.customer_timeline
        if conn.execute(sa.select(tl.c.seq).where(tl.c.customer_id == customer_id).limit(1)).first():
            stmt = (sa.select(tl.c.seq, tl.c.at, tl.c.day, tl.c.kind, tl.c.event, tl.c.direction,
                              tl.c.visibility, tl.c.author_name, tl.c.ticket_id, tl.c.ticket_status,
                              tl.c.subject, tl.c.text, tl.c.invoice_number, tl.c.from_stage, tl.c.to_stage,
                              tl.c.reason, tl.c.hold_reason)
                    .where(tl.c.customer_id == customer_id).order_by(tl.c.seq)
                    .limit(page_size + 1).offset((page - 1) * page_size))
            rows = []
            for r in conn.execute(stmt).mappings():
                m = dict(r)
                if m["kind"] == "message":
                    m.update(direction="internal" if m["visibility"] == "internal" else m["direction"],
                             created_at=m["at"], body=m["text"], status=m["ticket_status"])
                else:
                    m.update(direction="dunning", created_at=m["at"] or m["day"], body=m["text"])
                rows.append(m)
            return {"source": "customer_timeline", "rows": rows[:page_size], "more": len(rows) > page_size,
                    "page": page}
        cc, c, t, u = (dt.customer_communications, schema.zendesk_comments, schema.zendesk_tickets,
                       schema.zendesk_users)
        tickets = sa.select(cc.c.ticket_id).where(cc.c.customer_id == customer_id)
        stmt = (sa.select(c.c.id, c.c.ticket_id, c.c.created_at, c.c.public, c.c.body, c.c.via_channel,
                          t.c.subject, t.c.status, u.c.name.label("author_name"), u.c.email.label("author_email"),
                          u.c.role.label("author_role"))
                .select_from(c.join(t, t.c.id == c.c.ticket_id).outerjoin(u, u.c.id == c.c.author_id))
                .where(c.c.ticket_id.in_(tickets))
                .order_by(c.c.created_at, c.c.id).limit(page_size + 1).offset((page - 1) * page_size))
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
        for r in rows:
            r["kind"] = "message"
            r["direction"] = ("internal" if r["public"] is False or r["public"] == 0
                              else "outbound" if r["author_role"] in ("agent", "admin") else "inbound")
        return {"source": "zendesk_comments", "rows": rows[:page_size], "more": len(rows) > page_size,
                "page": page}

    def open_tickets(self, conn: Connection, customer_id: int) -> list[dict]:
        """The customer's open Zendesk tickets as of the last night (a reminder may be a public
        reply on one), newest first."""
        cc = dt.customer_communications
        stmt = (sa.select(cc.c.ticket_id, sa.func.max(cc.c.subject).label("subject"),
                          sa.func.max(cc.c.status).label("status"),
                          sa.func.max(cc.c.requester_email).label("requester_email"))
                .where(cc.c.customer_id == customer_id, cc.c.is_open.is_(True))
                .group_by(cc.c.ticket_id).order_by(cc.c.ticket_id.desc()).limit(20))
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def drafts(self, conn: Connection, customer_id: int) -> list[dict]:
        """Reminder drafts of the customer (`reminder_drafts`, when present), as dicts with the
        columns found plus `_subject`, `_body`, `_to` and `_ref` picked by usual names."""
        table = self.optional(conn, "reminder_drafts")
        if table is None or "customer_id" not in table.c:
            return []
        _, rows = self._optional_rows(conn, "reminder_drafts", customer_id, limit=5,
                                      order=("created_at", "as_of_date", "id"), descending=True)
        # A draft is one per customer, company and as-of day.
        pk = [c.name for c in table.primary_key.columns] or [
            n for n in ("as_of_date", "customer_id", "company_id") if n in table.c]
        for r in rows:
            r["_subject"] = _pick(r, ("subject", "title", "email_subject"))
            r["_body"] = _pick(r, ("body", "body_text", "text", "draft", "message", "content", "email_body"))
            r["_to"] = _pick(r, ("to_email", "recipient_email", "to", "email", "customer_email", "recipient"))
            r["_ref"] = ",".join(str(r[k]) for k in pk if r.get(k) is not None) or None
        return rows

    def _optional_rows(self, conn: Connection, name: str, customer_id: int | None, *, order=(),
                       limit: int = 500, offset: int = 0, descending: bool = False) -> tuple[list[str], list[dict]]:
        table = self.optional(conn, name)
        if table is None:
            return [], []
        stmt = sa.select(table)
        if customer_id is not None:
            if "customer_id" not in table.c:
                return [c.name for c in table.columns], []
            stmt = stmt.where(table.c.customer_id == customer_id)
        keys = [table.c[o] for o in order if o in table.c]
        stmt = stmt.order_by(*[k.desc() if descending else k for k in keys]).limit(limit).offset(offset)
        return [c.name for c in table.columns], [dict(r) for r in conn.execute(stmt).mappings()]

    # -- report ---------------------------------------------------------------------------
    def bucket_totals(self, conn: Connection) -> list[dict]:
        """Open residual per currency and aging bucket, straight from the aging snapshot."""
        stmt = (sa.select(ag.c.currency, ag.c.aging_bucket, sa.func.count().label("invoices"),
                          sa.func.sum(units(ag.c.amount_residual)).label("amount_units"))
                .group_by(ag.c.currency, ag.c.aging_bucket).order_by(ag.c.currency, ag.c.aging_bucket))
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def report_table(self, conn: Connection, name: str, limit: int = 500, *, newest_first: bool = False
                     ) -> tuple[list[str], list[dict]] | None:
        """A reporting table's first rows; a daily series (`newest_first`) from its latest day back."""
        if self.optional(conn, name) is None:
            return None
        order = ("as_of_date",) if newest_first else ()
        return self._optional_rows(conn, name, None, order=order, limit=limit, descending=newest_first)


def _pick(row: dict, names: tuple[str, ...]):
    for n in names:
        if row.get(n) not in (None, ""):
            return row[n]
    return None


def _as_date(value) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])

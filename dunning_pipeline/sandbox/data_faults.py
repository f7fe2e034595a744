"""Bad records for the data-quality checks: each function spoils exactly one record of a SandboxData.

    faults = inject(sb.data)                       # one bad record of every kind
    faults = inject(sb.data, ["unknown_currency"])  # only some kinds

Each fault is a record as a misconfigured or newer Odoo / Zendesk could really send it (an
unknown payment state, a posted invoice without a due date, a credit note with the wrong sign,
a requester who is not a user, ...), in the wire shape the servers serve, so it travels through
the real extraction into the warehouse. The returned `DataFault` says which warehouse record and
field the check must name, which check, and whether it blocks (ERROR) or quarantines (WARN).
Each kind takes a different record; the spoilt record's write_date / updated_at is moved to the
sandbox's "now" so an incremental extraction picks it up.

`SPOILED` holds spoiled values the rules do not judge but the parsers must survive (text a
database cannot store, amounts beyond NUMERIC(19,4), dates that do not parse, many2ones that are
not [id, name]), partners the invoice points to that are missing, and reconciliations without
or with a missing line: each is quarantined (WARN) and the night goes on. `inject(data, SPOILED)`
spoils one record of each.

Faults that no real source can send through the extraction (a duplicate primary key, a missing
column, an unparseable stored date) are built by the tests directly on frames and tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from dunning_pipeline.sandbox import data as sd

ERROR, WARN = "ERROR", "WARN"


@dataclass(frozen=True)
class DataFault:
    kind: str
    asset: str         # the warehouse table the record lands in
    record_id: int
    field: str         # the warehouse column holding the bad value
    check: str         # the asset check (on `asset`) that must name the record
    severity: str      # ERROR: blocks the dunning assets; WARN: the record is quarantined
    value: object      # the bad value as the source sends it
    note: str
    related_ids: tuple[int, ...] = ()  # other records the check names too (the other duplicate)

    def describe(self) -> str:
        return (f"{self.kind}: {self.asset} id {self.record_id}, {self.field} = {self.value!r} "
                f"-> check {self.check} ({self.severity}): {self.note}")


class _Picker:
    """Chooses a different, ordinary record for each fault, deterministically (by id order)."""

    def __init__(self, data: sd.SandboxData):
        self.data = data
        self.used: set[tuple[str, int]] = set()

    def take(self, kind: str, records: Iterable[dict], ok: Callable[[dict], bool]) -> dict:
        for rec in records:
            if (kind, rec["id"]) not in self.used and ok(rec):
                self.used.add((kind, rec["id"]))
                return rec
        raise LookupError(f"the sandbox data has no record left to spoil for this fault ({kind})")

    # -- typical records -----------------------------------------------------------------------
    def invoice(self, ok: Callable[[dict], bool] = lambda m: True) -> dict:
        return self.take("move", self.data.moves, lambda m: _plain_invoice(m) and ok(m))

    def credit_note(self) -> dict:
        return self.take("move", self.data.moves, lambda m: m["move_type"] == "out_refund"
                         and m["state"] == "posted" and m["amount_total_signed"] < 0)

    def company_partner(self) -> dict:
        return self.take("partner", self.data.partners, lambda p: p["is_company"] and p["customer_rank"] > 0
                         and not p["parent_id"] and p["email"])

    def ticket(self) -> dict:
        users = {u["id"] for u in self.data.zendesk_users}
        return self.take("ticket", self.data.zendesk_tickets, lambda t: t["status"] in ("open", "pending")
                         and t["requester_id"] in users
                         and (t.get("via") or {}).get("channel") == "email")

    def end_user(self) -> dict:
        return self.take("user", self.data.zendesk_users, lambda u: u["role"] == "end-user" and u["email"])


def _plain_invoice(m: dict) -> bool:
    return (m["move_type"] == "out_invoice" and m["state"] == "posted" and m["payment_state"] == "not_paid"
            and bool(m["invoice_date"]) and bool(m["invoice_date_due"]) and bool(m["partner_id"])
            and m["name"] not in ("/", False) and m["amount_total"] > 0)


def _touch_move(data: sd.SandboxData, rec: dict) -> None:
    rec["write_date"] = sd.odoo_datetime(data.now)


def _touch_ticket(data: sd.SandboxData, rec: dict) -> None:
    rec["updated_at"] = sd.zendesk_datetime(data.now)
    rec["generated_timestamp"] = int(data.now.timestamp())


def _decimals(move: dict) -> int:
    """Decimal places of the move's currency (2 when unknown)."""
    row = sd.CURRENCY_BY_CODE.get(move["currency_id"][1]) if move["currency_id"] else None
    return row[3] if row else 2


# -- Odoo: account.move ------------------------------------------------------------------------
def _spoil_invoice(data, pick: _Picker, kind: str, field: str, value, check: str, severity: str, note: str,
                   column: str | None = None) -> DataFault:
    """Set one field of an ordinary posted invoice to `value` (the warehouse `column` defaults to `field`)."""
    m = pick.invoice()
    m[field] = value
    _touch_move(data, m)
    return DataFault(kind, "odoo_invoices", m["id"], column or field, check, severity, value, note)


def unknown_payment_state(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "unknown_payment_state", "payment_state", "frozen", "known_payment_states",
                          ERROR, "a payment state this pipeline does not know (a newer Odoo?)")


def unknown_invoice_state(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "unknown_invoice_state", "state", "locked", "known_states", ERROR,
                          "an invoice state this pipeline does not know")


def duplicate_invoice_number(data, pick: _Picker) -> DataFault:
    original = pick.invoice()
    company = original["company_id"][0]
    m = pick.invoice(lambda x: x["company_id"][0] == company and x["id"] != original["id"])
    m["name"] = original["name"]
    _touch_move(data, m)
    return DataFault("duplicate_invoice_number", "odoo_invoices", m["id"], "name", "unique_invoice_numbers",
                     ERROR, original["name"], f"the same number as invoice {original['id']} of the same company",
                     (original["id"],))


def posted_without_number(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "posted_without_number", "name", "/", "posted_fields_present", WARN,
                          'a posted invoice still numbered "/"')


def posted_without_due_date(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "posted_without_due_date", "invoice_date_due", False,
                          "posted_fields_present", WARN, "a posted invoice without a due date")


def posted_without_currency(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "posted_without_currency", "currency_id", False, "posted_fields_present",
                          WARN, "a posted invoice without a currency", column="currency")


def posted_without_partner(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "posted_without_partner", "partner_id", False, "posted_fields_present",
                          WARN, "a posted invoice without a partner")


def residual_above_total(data, pick: _Picker) -> DataFault:
    m = pick.invoice()
    places = _decimals(m)
    m["amount_residual"] = round(m["amount_total"] + 100 * 10 ** -places, places)
    _touch_move(data, m)
    return DataFault("residual_above_total", "odoo_invoices", m["id"], "amount_residual", "amounts_consistent",
                     WARN, m["amount_residual"], "more left to pay than the invoice's total")


def negative_residual(data, pick: _Picker) -> DataFault:
    return _spoil_invoice(data, pick, "negative_residual", "amount_residual", -1.0, "amounts_consistent", WARN,
                          "a negative amount left to pay")


def negative_total(data, pick: _Picker) -> DataFault:
    m = pick.invoice()
    m["amount_total"] = -m["amount_total"]
    _touch_move(data, m)
    return DataFault("negative_total", "odoo_invoices", m["id"], "amount_total", "amounts_consistent", WARN,
                     m["amount_total"], "a negative invoice total")


def credit_note_sign(data, pick: _Picker) -> DataFault:
    m = pick.credit_note()
    m["amount_total_signed"] = -m["amount_total_signed"]
    m["amount_residual_signed"] = -m["amount_residual_signed"]
    _touch_move(data, m)
    return DataFault("credit_note_sign", "odoo_invoices", m["id"], "amount_total_signed", "amounts_consistent",
                     WARN, m["amount_total_signed"], "a credit note whose company-currency total is positive")


def unknown_currency(data, pick: _Picker) -> DataFault:
    m = pick.invoice()
    m["currency_id"] = [999, "XYZ"]
    _touch_move(data, m)
    return DataFault("unknown_currency", "odoo_invoices", m["id"], "currency", "currency_codes", WARN, "XYZ",
                     "a currency code that is not ISO 4217")


def unknown_partner(data, pick: _Picker) -> DataFault:
    m = pick.invoice()
    ghost = max(p["id"] for p in data.partners) + 1000
    m["partner_id"] = [ghost, "Deleted Partner"]
    _touch_move(data, m)
    return DataFault("unknown_partner", "odoo_invoices", m["id"], "partner_id", "partner_references", WARN,
                     ghost, "an invoice partner that is not among the customers")


def due_before_invoice(data, pick: _Picker) -> DataFault:
    m = pick.invoice()
    due = date.fromisoformat(m["invoice_date"]) - timedelta(days=14)
    m["invoice_date_due"] = due.isoformat()
    _touch_move(data, m)
    return DataFault("due_before_invoice", "odoo_invoices", m["id"], "invoice_date_due", "dates_plausible",
                     WARN, due.isoformat(), "due two weeks before it was issued")


def date_decades_away(data, pick: _Picker) -> DataFault:
    m = pick.invoice()
    typo = "0" + m["invoice_date"][1:]  # 2026-02-11 typed as 0026-02-11
    m["invoice_date"] = typo
    _touch_move(data, m)
    return DataFault("date_decades_away", "odoo_invoices", m["id"], "invoice_date", "dates_plausible", WARN,
                     typo, "an invoice date two thousand years ago (a typo)")


# -- Odoo: res.partner -------------------------------------------------------------------------
def malformed_customer_email(data, pick: _Picker) -> DataFault:
    p = pick.company_partner()
    bad = p["email"].replace("@", "(at)")
    p["email"] = bad
    p["write_date"] = sd.odoo_datetime(data.now)
    return DataFault("malformed_customer_email", "odoo_customers", p["id"], "email", "emails_well_formed", WARN,
                     bad, "an email address without @")


def customer_without_name(data, pick: _Picker) -> DataFault:
    p = pick.company_partner()
    p["name"] = False
    p["write_date"] = sd.odoo_datetime(data.now)
    return DataFault("customer_without_name", "odoo_customers", p["id"], "name", "customer_fields_present",
                     WARN, False, "a company customer without a name")


# -- Zendesk -----------------------------------------------------------------------------------
def unknown_ticket_status(data, pick: _Picker) -> DataFault:
    t = pick.ticket()
    t["status"] = "escalated"
    _touch_ticket(data, t)
    return DataFault("unknown_ticket_status", "zendesk_tickets", t["id"], "status", "known_statuses", ERROR,
                     "escalated", "a ticket status this pipeline does not know")


def unknown_requester(data, pick: _Picker) -> DataFault:
    t = pick.ticket()
    ghost = max(u["id"] for u in data.zendesk_users) + 7919
    t["requester_id"] = ghost
    _touch_ticket(data, t)
    return DataFault("unknown_requester", "zendesk_tickets", t["id"], "requester_id", "requester_references",
                     WARN, ghost, "a requester who is not among the Zendesk users")


def malformed_ticket_sender(data, pick: _Picker) -> DataFault:
    t = pick.ticket()
    sender = dict(t["via"]["source"]["from"])
    bad = "accounts payable at customer"
    sender["address"] = bad
    t["via"] = {**t["via"], "source": {**t["via"]["source"], "from": sender}}
    _touch_ticket(data, t)
    return DataFault("malformed_ticket_sender", "zendesk_tickets", t["id"], "from_address", "emails_well_formed",
                     WARN, bad, "an email ticket whose sender is not an address")


def malformed_user_email(data, pick: _Picker) -> DataFault:
    u = pick.end_user()
    bad = u["email"].split("@")[0] + "@"
    u["email"] = bad
    u["updated_at"] = sd.zendesk_datetime(data.now)
    return DataFault("malformed_user_email", "zendesk_users", u["id"], "email", "emails_well_formed", WARN, bad,
                     "an email address without a domain")


def unknown_user_role(data, pick: _Picker) -> DataFault:
    u = pick.end_user()
    u["role"] = "light-agent"
    u["updated_at"] = sd.zendesk_datetime(data.now)
    return DataFault("unknown_user_role", "zendesk_users", u["id"], "role", "known_roles", ERROR, "light-agent",
                     "a user role this pipeline does not know")


def odd_via_channel(data, pick: _Picker) -> DataFault:
    t = pick.ticket()
    odd = {"id": 4, "name": "mail"}
    t["via"] = {**t["via"], "channel": odd}
    _touch_ticket(data, t)
    return DataFault("odd_via_channel", "zendesk_tickets", t["id"], "via.channel", "fields_parse", WARN,
                     f"ticket {t['id']}: field 'via.channel' is {odd!r}, expected a channel name or a via id",
                     "a via.channel that is neither a name nor a via id (value: the parse_error it leaves)")


def odd_user_flag(data, pick: _Picker) -> DataFault:
    u = pick.end_user()
    u["suspended"] = "no"
    u["updated_at"] = sd.zendesk_datetime(data.now)
    return DataFault("odd_user_flag", "zendesk_users", u["id"], "suspended", "fields_parse", WARN,
                     f"user {u['id']}: field 'suspended' is 'no', expected true or false",
                     "a flag sent as text (value: the parse_error it leaves)")


KINDS: dict[str, Callable[[sd.SandboxData, _Picker], DataFault]] = {
    f.__name__: f for f in (
        unknown_payment_state, unknown_invoice_state, duplicate_invoice_number, posted_without_number,
        posted_without_due_date, posted_without_currency, posted_without_partner, residual_above_total,
        negative_residual, negative_total, credit_note_sign, unknown_currency, unknown_partner,
        due_before_invoice, date_decades_away, malformed_customer_email, customer_without_name,
        unknown_ticket_status, unknown_requester, malformed_ticket_sender, malformed_user_email,
        unknown_user_role, odd_via_channel, odd_user_flag,
    )
}


# -- spoiled values the parsers must survive (see the module docstring) ------------------------
LONE_SURROGATE = "\ud800"   # sent as the JSON escape "\ud800": no UTF-8 can encode it
INVALID_UTF8 = "\udcff"     # the sandbox sends the raw byte 0xFF: not UTF-8 (arrives as U+FFFD)
NUL = "\x00"                # JSON "\u0000": PostgreSQL text cannot hold it


def _parse_fault(kind: str, asset: str, record_id: int, field: str, value, note: str) -> DataFault:
    return DataFault(kind, asset, record_id, field, "fields_parse", WARN, value, note)


def _freeze_lines(data, move: dict) -> list[dict]:
    """Fix the move's receivable lines as they are now: Odoo keeps them whatever a spoiled field says."""
    lines = sd.receivable_lines(move, {c["id"]: c["currency_id"] for c in data.companies})
    move[sd.FROZEN_LINES_KEY] = lines
    return lines


def _spoil_move(data, pick: _Picker, kind: str, field: str, value, note: str) -> DataFault:
    m = pick.invoice()
    _freeze_lines(data, m)
    m[field] = value(m) if callable(value) else value
    _touch_move(data, m)
    return _parse_fault(kind, "odoo_invoices", m["id"], field, m[field], note)


def invoice_partner_name_lone_surrogate(data, pick):
    return _spoil_move(data, pick, "invoice_partner_name_lone_surrogate", "partner_id",
                       lambda m: [m["partner_id"][0], m["partner_id"][1] + LONE_SURROGATE],
                       "half of a UTF-16 surrogate pair in the partner's display name")


def invoice_ref_invalid_utf8(data, pick):
    return _spoil_move(data, pick, "invoice_ref_invalid_utf8", "ref", f"Bestellung M{INVALID_UTF8}ller",
                       "a byte that is not UTF-8 in the customer reference")


def invoice_origin_nul(data, pick):
    return _spoil_move(data, pick, "invoice_origin_nul", "invoice_origin", f"S0{NUL}1234", "a NUL in the origin")


def amount_beyond_numeric(data, pick):
    return _spoil_move(data, pick, "amount_beyond_numeric", "amount_total", 1e15,
                       "an amount of 10^15: 10^19 units of 1/10,000 do not fit int64 (NUMERIC(19,4))")


def amount_infinite(data, pick):
    return _spoil_move(data, pick, "amount_infinite", "amount_residual", float("inf"), "Infinity as a residual")


def amount_not_a_number(data, pick):
    return _spoil_move(data, pick, "amount_not_a_number", "amount_total_signed", float("nan"), "NaN as a total")


def amount_text(data, pick):
    return _spoil_move(data, pick, "amount_text", "amount_residual_signed", "abc", "text where an amount belongs")


def garbage_due_date(data, pick):
    return _spoil_move(data, pick, "garbage_due_date", "invoice_date_due", "31/03/2026", "a due date in another format")


def garbage_invoice_date(data, pick):
    return _spoil_move(data, pick, "garbage_invoice_date", "invoice_date", "2026-13-45", "month 13")


def garbage_write_date(data, pick):
    # Sorts before every real write_date, so it never becomes the extraction's high-water mark.
    m = pick.invoice()
    _freeze_lines(data, m)
    m["write_date"] = "01.03.2026 10:00:00"
    return _parse_fault("garbage_write_date", "odoo_invoices", m["id"], "write_date", m["write_date"],
                        "a write_date in a German format")


def malformed_company(data, pick):
    return _spoil_move(data, pick, "malformed_company", "company_id", lambda m: m["company_id"][:1],
                       "a many2one without its display name")


def null_commercial_partner(data, pick):
    m = pick.invoice()
    m["commercial_partner_id"] = False
    _touch_move(data, m)
    return DataFault("null_commercial_partner", "odoo_invoices", m["id"], "commercial_partner_id",
                     "posted_fields_present", WARN, False, "a posted invoice without a commercial partner")


def invoice_without_any_partner(data, pick):
    m = pick.invoice()
    m["partner_id"] = m["commercial_partner_id"] = False
    _touch_move(data, m)
    return DataFault("invoice_without_any_partner", "odoo_invoices", m["id"], "partner_id",
                     "posted_fields_present", WARN, False, "a posted invoice with neither partner nor commercial partner")


def dangling_commercial_partner(data, pick):
    m = pick.invoice()
    ghost = max(p["id"] for p in data.partners) + 2000
    m["commercial_partner_id"] = [ghost, "Merged Partner"]
    _touch_move(data, m)
    return DataFault("dangling_commercial_partner", "odoo_invoices", m["id"], "commercial_partner_id",
                     "partner_references", WARN, ghost, "a commercial partner that is not among the customers")


def _spoil_partner(data, pick, kind: str, field: str, value, note: str) -> DataFault:
    p = pick.company_partner()
    p[field] = value(p) if callable(value) else value
    p["write_date"] = sd.odoo_datetime(data.now)
    return _parse_fault(kind, "odoo_customers", p["id"], field, p[field], note)


def customer_name_lone_surrogate(data, pick):
    return _spoil_partner(data, pick, "customer_name_lone_surrogate", "name",
                          lambda p: p["name"] + " \ud83d", "the first half of an emoji's surrogate pair")


def customer_email_invalid_utf8(data, pick):
    return _spoil_partner(data, pick, "customer_email_invalid_utf8", "email",
                          lambda p: "jos" + "\udce9" + p["email"], "a Latin-1 é (0xE9) in an address")


def customer_bad_tags(data, pick):
    return _spoil_partner(data, pick, "customer_bad_tags", "category_id", "VIP", "tag names where tag ids belong")


def customer_garbage_write_date(data, pick):
    p = pick.company_partner()
    p["write_date"] = "0000-00-00 00:00:00"
    return _parse_fault("customer_garbage_write_date", "odoo_customers", p["id"], "write_date", p["write_date"],
                        "MySQL's zero date")


def _spoil_line(data, pick, kind: str, field: str, value, note: str) -> DataFault:
    m = pick.invoice()
    line = _freeze_lines(data, m)[0]
    line[field] = value
    _touch_move(data, m)
    return _parse_fault(kind, "odoo_receivable_lines", line["id"], field, value, note)


def line_garbage_maturity(data, pick):
    return _spoil_line(data, pick, "line_garbage_maturity", "date_maturity", "n/a", "an instalment due 'n/a'")


def line_amount_beyond_numeric(data, pick):
    return _spoil_line(data, pick, "line_amount_beyond_numeric", "amount_residual", -3e16, "a residual of -3*10^16")


def line_amount_not_a_number(data, pick):
    return _spoil_line(data, pick, "line_amount_not_a_number", "amount_residual_currency", float("nan"),
                       "NaN as a residual")


def _spoil_reconciliation(data, pick, kind: str, field: str, value, note: str, *, column: str | None = None,
                          check: str = "fields_parse") -> DataFault:
    """Set one field of a reconciliation of an invoice line with a payment's line (an ordinary one).
    The night is a first one (full extraction), so its write_date stays as it is."""
    r = pick.take("reconciliation", data.reconciliations,
                  lambda r: r["credit_move_id"][0] >= sd.PAYMENT_LINE_BASE)
    r[field] = value(r) if callable(value) else value
    return DataFault(kind, "odoo_reconciliations", r["id"], column or field, check, WARN, r[field], note)


def reconciliation_garbage_max_date(data, pick):
    return _spoil_reconciliation(data, pick, "reconciliation_garbage_max_date", "max_date", "2026-02-31",
                                 "a payment dated 31 February")


def reconciliation_amount_beyond_numeric(data, pick):
    return _spoil_reconciliation(data, pick, "reconciliation_amount_beyond_numeric", "amount", 2e15,
                                 "a settlement of 2*10^15: beyond NUMERIC(19,4)")


def reconciliation_amount_not_a_number(data, pick):
    return _spoil_reconciliation(data, pick, "reconciliation_amount_not_a_number", "debit_amount_currency",
                                 float("nan"), "NaN as the amount in the invoice's currency")


def reconciliation_currency_lone_surrogate(data, pick):
    return _spoil_reconciliation(data, pick, "reconciliation_currency_lone_surrogate", "debit_currency_id",
                                 lambda r: [r["debit_currency_id"][0], r["debit_currency_id"][1] + LONE_SURROGATE],
                                 "half of a surrogate pair after the currency's display name")


def reconciliation_malformed_line(data, pick):
    return _spoil_reconciliation(data, pick, "reconciliation_malformed_line", "debit_move_id",
                                 lambda r: r["debit_move_id"][:1], "a line many2one without its display name")


def reconciliation_without_debit_line(data, pick):
    return _spoil_reconciliation(data, pick, "reconciliation_without_debit_line", "debit_move_id", False,
                                 "a reconciliation without its debit line", column="debit_line_id",
                                 check="reconciliation_fields_present")


def reconciliation_dangling_line(data, pick):
    ghost = max(p["debit_move_id"][0] for p in data.reconciliations if p["debit_move_id"]) + 7
    return _spoil_reconciliation(data, pick, "reconciliation_dangling_line", "debit_move_id",
                                 lambda r: [ghost, r["debit_move_id"][1]],
                                 "a debit line that is not among the receivable lines (and a payment's line)",
                                 column="debit_line_id", check="line_references")


def _spoil_ticket(data, pick, kind: str, field: str, value, note: str) -> DataFault:
    t = pick.ticket()
    t[field] = value(t) if callable(value) else value
    _touch_ticket(data, t)
    return _parse_fault(kind, "zendesk_tickets", t["id"], field, t[field], note)


def ticket_subject_lone_surrogate(data, pick):
    return _spoil_ticket(data, pick, "ticket_subject_lone_surrogate", "subject",
                         lambda t: t["subject"] + " \udbff", "a lone high surrogate in the subject")


def ticket_description_invalid_utf8(data, pick):
    return _spoil_ticket(data, pick, "ticket_description_invalid_utf8", "description",
                         lambda t: "Zahlung f" + "\udcfc" + "r " + t["description"], "a Latin-1 ü (0xFC)")


def ticket_garbage_created_at(data, pick):
    return _spoil_ticket(data, pick, "ticket_garbage_created_at", "created_at", "yesterday", "a created_at in words")


def _spoil_user(data, pick, kind: str, field: str, value, note: str) -> DataFault:
    u = pick.end_user()
    u[field] = value(u) if callable(value) else value
    u["updated_at"] = sd.zendesk_datetime(data.now)
    return _parse_fault(kind, "zendesk_users", u["id"], field, u[field], note)


def user_name_nul(data, pick):
    return _spoil_user(data, pick, "user_name_nul", "name", lambda u: u["name"] + NUL, "a trailing NUL")


def user_name_lone_surrogate(data, pick):
    return _spoil_user(data, pick, "user_name_lone_surrogate", "name", lambda u: LONE_SURROGATE + u["name"],
                       "a lone surrogate before the name")


def _spoil_comment(data, pick, kind: str, field: str, value, note: str) -> DataFault:
    t = pick.take("comment", data.zendesk_tickets, lambda t: t["status"] in ("open", "pending")
                  and len(data.zendesk_comments.get(t["id"], ())) >= 1)
    c = data.zendesk_comments[t["id"]][0]
    c[field] = value(c) if callable(value) else value
    _touch_ticket(data, t)
    # The sandbox serves a body also as plain_body, the field the extraction reads first.
    return _parse_fault(kind, "zendesk_comments", c["id"], "plain_body" if field == "body" else field,
                        c[field], note)


def comment_body_lone_surrogate(data, pick):
    return _spoil_comment(data, pick, "comment_body_lone_surrogate", "body", lambda c: c["body"] + "\udfff",
                          "a lone low surrogate at the end of a mail")


def comment_body_invalid_utf8(data, pick):
    return _spoil_comment(data, pick, "comment_body_invalid_utf8", "body",
                          lambda c: "Gr" + "\udcfc" + "\udcdf" + "e, " + c["body"], "Latin-1 bytes in a mail")


def comment_garbage_created_at(data, pick):
    return _spoil_comment(data, pick, "comment_garbage_created_at", "created_at", "2026-02-30T10:00:00Z",
                          "30 February")


SPOILED: dict[str, Callable[[sd.SandboxData, _Picker], DataFault]] = {
    f.__name__: f for f in (
        invoice_partner_name_lone_surrogate, invoice_ref_invalid_utf8, invoice_origin_nul, amount_beyond_numeric,
        amount_infinite, amount_not_a_number, amount_text, garbage_due_date, garbage_invoice_date,
        garbage_write_date, malformed_company, null_commercial_partner, invoice_without_any_partner,
        dangling_commercial_partner,
        customer_name_lone_surrogate, customer_email_invalid_utf8, customer_bad_tags, customer_garbage_write_date,
        line_garbage_maturity, line_amount_beyond_numeric, line_amount_not_a_number,
        reconciliation_garbage_max_date, reconciliation_amount_beyond_numeric, reconciliation_amount_not_a_number,
        reconciliation_currency_lone_surrogate, reconciliation_malformed_line, reconciliation_without_debit_line,
        reconciliation_dangling_line,
        ticket_subject_lone_surrogate, ticket_description_invalid_utf8, ticket_garbage_created_at,
        user_name_nul, user_name_lone_surrogate,
        comment_body_lone_surrogate, comment_body_invalid_utf8, comment_garbage_created_at,
    )
}


def inject(data: sd.SandboxData, kinds: Iterable[str] | None = None) -> list[DataFault]:
    """Spoil one record per kind (default: every kind of `KINDS`; those of `SPOILED` by name), each a
    different record; returns what was done."""
    known = {**KINDS, **SPOILED}
    names = list(KINDS) if kinds is None else list(kinds)
    unknown = [k for k in names if k not in known]
    if unknown:
        raise ValueError(f"unknown data fault(s) {unknown}; known: {', '.join(known)}")
    pick = _Picker(data)
    with data.lock:
        faults = [known[k](data, pick) for k in names]
        data.changed()
    return faults

"""What an accountant records: validated, then written with author and time in one transaction.

A promise or an exclusion writes a `dunning_holds` row (the engine's one source of holds) and a
`workbench_actions` row that points at it; releasing a hold early stamps the hold's
`released_at` (once) and logs a `release` action. Invalid input raises `ActionError` naming the
field, and nothing is written.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dunning_pipeline.dunning import tables as dt
from dunning_pipeline.workbench.queries import Reader
from dunning_pipeline.workbench.tables import workbench_actions as wa

CALL_OUTCOMES = {
    "reached": "Reached the customer",
    "promised": "Reached: promised to pay",
    "disputed": "Reached: disputes the invoice",
    "no_answer": "No answer",
    "voicemail": "Left a voicemail",
    "wrong_number": "Wrong number",
}
NOTE_MAX = 2000
BODY_MAX = 20_000  # a reminder's text sent through Zendesk
MAX_AHEAD = timedelta(days=366)


class ActionError(ValueError):
    """Input that cannot be recorded; `field` names the form field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_day(value: str | None, field: str, today: date, *, required: bool) -> date | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ActionError(field, f"{field}: enter a date (YYYY-MM-DD)")
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ActionError(field, f"{field}: {value[:20]!r} is not a date (YYYY-MM-DD)") from None
    if day < today:
        raise ActionError(field, f"{field}: {day.isoformat()} is in the past (today is {today.isoformat()})")
    if day > today + MAX_AHEAD:
        raise ActionError(field, f"{field}: {day.isoformat()} is more than a year ahead")
    return day


def parse_effective_day(value: str | None, today: date, until: date | None) -> date | None:
    """The optional day a promise counts from (made on an earlier call): not in the future, not
    more than a year back, not after the promised day. Empty: the day it is entered."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ActionError("effective_date", f"effective_date: {value[:20]!r} is not a date (YYYY-MM-DD)") from None
    if day > today:
        raise ActionError("effective_date", f"effective_date: {day.isoformat()} is in the future"
                                            f" (today is {today.isoformat()})")
    if day < today - MAX_AHEAD:
        raise ActionError("effective_date", f"effective_date: {day.isoformat()} is more than a year back")
    if until is not None and day > until:
        raise ActionError("effective_date", f"effective_date: {day.isoformat()} is after the promised day"
                                            f" {until.isoformat()}")
    return day


def _note(value: str | None, *, required: bool = False) -> str | None:
    note = (value or "").strip()
    if len(note) > NOTE_MAX:
        raise ActionError("note", f"note: at most {NOTE_MAX} characters (got {len(note)})")
    if required and not note:
        raise ActionError("note", "note: say why (it is shown with the hold)")
    return note or None


def _invoice(reader: Reader, conn: Connection, customer_id: int, value: str | None, *,
             required: bool) -> int | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ActionError("invoice_id", "invoice: choose one of the customer's invoices")
        return None
    if not value.isdigit() or len(value) > 18:
        raise ActionError("invoice_id", f"invoice: {value[:20]!r} is not an invoice id")
    if reader.invoice_of_customer(conn, customer_id, int(value)) is None:
        raise ActionError("invoice_id", f"invoice: {value} is not an open invoice of this customer")
    return int(value)


class Recorder:
    """Writes the actions; `now` is the clock (aware UTC), stored naive UTC as the tables are."""

    def __init__(self, engine: sa.Engine, reader: Reader, now=utc_now):
        self.engine, self.reader, self.now = engine, reader, now

    def _now(self) -> datetime:
        return self.now().astimezone(UTC).replace(tzinfo=None)

    def _log(self, conn: Connection, **row) -> int:
        return int(conn.execute(wa.insert().values(created_at=self._now(), **row).returning(wa.c.id)).scalar_one())

    def _hold(self, conn: Connection, **row) -> int:
        hd = dt.dunning_holds
        return int(conn.execute(hd.insert().values(created_at=self._now(), **row).returning(hd.c.id)).scalar_one())

    def promise(self, author: str, customer_id: int, form: dict, today: date, as_of: date | None) -> int:
        with self.engine.begin() as conn:
            invoice_id = _invoice(self.reader, conn, customer_id, form.get("invoice_id"), required=False)
            until = parse_day(form.get("until"), "until", today, required=True)
            effective = parse_effective_day(form.get("effective_date"), today, until)
            note = _note(form.get("note"))
            hold_id = self._hold(conn, customer_id=None if invoice_id else customer_id, invoice_id=invoice_id,
                                 kind="promise", until=until, note=note, created_by=author,
                                 effective_date=effective)
            return self._log(conn, kind="promise", customer_id=customer_id, invoice_id=invoice_id,
                             hold_id=hold_id, until=until, note=note, author=author, as_of_date=as_of)

    def exclusion(self, author: str, customer_id: int, form: dict, today: date, as_of: date | None) -> int:
        scope = form.get("scope", "invoice")
        if scope not in ("invoice", "customer"):
            raise ActionError("scope", "scope: choose the invoice or the whole customer")
        with self.engine.begin() as conn:
            invoice_id = _invoice(self.reader, conn, customer_id, form.get("invoice_id"),
                                  required=scope == "invoice") if scope == "invoice" else None
            until = parse_day(form.get("until"), "until", today, required=False)
            note = _note(form.get("note"), required=True)
            hold_id = self._hold(conn, customer_id=None if invoice_id else customer_id, invoice_id=invoice_id,
                                 kind="exclusion", until=until, note=note, created_by=author)
            return self._log(conn, kind="exclusion", customer_id=customer_id, invoice_id=invoice_id,
                             hold_id=hold_id, until=until, note=note, author=author, as_of_date=as_of)

    def call(self, author: str, customer_id: int, form: dict, as_of: date | None) -> int:
        outcome = form.get("outcome", "")
        if outcome not in CALL_OUTCOMES:
            raise ActionError("outcome", "outcome: choose how the call went")
        with self.engine.begin() as conn:
            invoice_id = _invoice(self.reader, conn, customer_id, form.get("invoice_id"), required=False)
            return self._log(conn, kind="call", customer_id=customer_id, invoice_id=invoice_id, outcome=outcome,
                             note=_note(form.get("note")), author=author, as_of_date=as_of)

    def reminder_sent(self, author: str, customer_id: int, form: dict, as_of: date | None) -> int:
        draft_ref = (form.get("draft_ref") or "").strip()[:200] or None
        with self.engine.begin() as conn:
            if draft_ref is not None:
                refs = {d["_ref"] for d in self.reader.drafts(conn, customer_id)}
                if draft_ref not in refs:
                    raise ActionError("draft_ref", "draft: not a reminder draft of this customer")
            invoice_id = _invoice(self.reader, conn, customer_id, form.get("invoice_id"), required=False)
            return self._log(conn, kind="reminder_sent", customer_id=customer_id, invoice_id=invoice_id,
                             draft_ref=draft_ref, note=_note(form.get("note")), author=author, as_of_date=as_of)

    def zendesk_send(self, author: str, customer_id: int, form: dict, as_of: date | None, sender) -> int:
        """Send a draft, as edited, through Zendesk (`sender`: a zendesk.send.ReminderSender),
        then record it as a reminder sent. Everything is checked before anything is sent; a
        Zendesk error propagates and nothing is written."""
        draft_ref = (form.get("draft_ref") or "").strip()[:200]
        body = (form.get("body") or "").replace("\r\n", "\n").strip()
        if not body:
            raise ActionError("body", "text: the reminder is empty")
        if len(body) > BODY_MAX:
            raise ActionError("body", f"text: at most {BODY_MAX} characters (got {len(body)})")
        target = (form.get("target") or "").strip()
        with self.engine.connect() as conn:
            draft = next((d for d in self.reader.drafts(conn, customer_id) if d["_ref"] == draft_ref), None)
            if draft is None:
                raise ActionError("draft_ref", "draft: not a reminder draft of this customer")
            subject = (form.get("subject") or "").strip()[:250] or draft["_subject"] or "Open invoices"
            if target == "new":
                customer = self.reader.customer(conn, customer_id) or {}
                to = draft["_to"] or customer.get("email")
                if not to:
                    raise ActionError("target", "recipient: the customer has no billing email in Odoo")
                name = customer.get("name")
            elif target.startswith("ticket:") and target[7:].isdigit() and len(target) < 30:
                ticket_id = int(target[7:])
                if ticket_id not in {t["ticket_id"] for t in self.reader.open_tickets(conn, customer_id)}:
                    raise ActionError("target", f"ticket #{ticket_id}: not an open ticket of this customer")
            else:
                raise ActionError("target", "send as: choose a new ticket or a reply on an open ticket")
        # Sent outside any transaction: no lock is held while Zendesk answers.
        if target == "new":
            sent = sender.new_ticket(requester_email=to, requester_name=name, subject=subject, body=body)
            note = f"Sent through Zendesk: new ticket #{sent.ticket_id} to {to}"
        else:
            sent = sender.reply(ticket_id, body)
            note = f"Sent through Zendesk: public reply on ticket #{sent.ticket_id}"
        with self.engine.begin() as conn:
            return self._log(conn, kind="reminder_sent", customer_id=customer_id, draft_ref=draft_ref,
                             ticket_id=sent.ticket_id, note=note, author=author, as_of_date=as_of)

    def release(self, author: str, customer_id: int, hold_id: int, form: dict, as_of: date | None) -> int:
        hd = dt.dunning_holds
        with self.engine.begin() as conn:
            hold = self.reader.hold_of_customer(conn, customer_id, hold_id)
            if hold is None:
                raise ActionError("hold_id", f"hold {hold_id}: not a hold of this customer")
            if hold["released_at"] is not None:
                raise ActionError("hold_id", f"hold {hold_id}: already released")
            self._release(conn, hold_id, author)
            return self._log(conn, kind="release", customer_id=customer_id, invoice_id=hold["invoice_id"],
                             hold_id=hold_id, note=_note(form.get("note")), author=author, as_of_date=as_of)

    def _release(self, conn: Connection, hold_id: int, author: str) -> None:
        hd = dt.dunning_holds
        conn.execute(hd.update().where(hd.c.id == hold_id, hd.c.released_at.is_(None))
                     .values(released_at=self._now(), released_by=author))

    def retract(self, author: str, customer_id: int, action_id: int) -> None:
        """Withdraw one's own action (a promise or exclusion also releases its hold)."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(wa).where(wa.c.id == action_id, wa.c.customer_id == customer_id)
                               ).mappings().first()
            if row is None:
                raise ActionError("action_id", f"action {action_id}: not an action on this customer")
            if row["author"] != author:
                raise PermissionError(f"action {action_id} was recorded by someone else; only its author "
                                      f"may retract it")
            if row["retracted_at"] is not None or row["kind"] == "release":
                raise ActionError("action_id", f"action {action_id}: cannot be retracted")
            conn.execute(wa.update().where(wa.c.id == action_id).values(retracted_at=self._now()))
            if row["hold_id"] is not None:
                self._release(conn, int(row["hold_id"]), author)

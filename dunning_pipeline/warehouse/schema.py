"""Warehouse tables shared by every source: the raw extracts and the extraction state.

Conventions the store relies on (see `store.py`):
- `Money` columns hold amounts exactly (NUMERIC(19,4)); in pandas they are int64 counts of
  1/10,000 of the currency unit (`dunning_pipeline.money`).
- `Date` columns are pandas datetime64 at midnight; `DateTime` columns are naive UTC datetime64.
- List-valued fields (tags, many2many names) are stored as JSON text.
- Raw extract tables hold the current state of each source record, upserted by primary key.

Tables of other concerns live beside their code (`dunning/tables.py`, `quality/tables.py`,
`slack/tables.py`) on this same `metadata`; `store.TABLE_MODULES` lists them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData()


class Money(TypeDecorator):
    """An exact amount with four decimals; int64 units in pandas."""

    impl = sa.Numeric(19, 4)
    cache_ok = True


odoo_invoices = sa.Table(
    "odoo_invoices",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="account.move id"),
    sa.Column("name", sa.Text, comment="invoice number; '/' until posted"),
    sa.Column("move_type", sa.Text, nullable=False, comment="out_invoice (invoice) or out_refund (credit note)"),
    sa.Column("state", sa.Text, nullable=False, comment="draft, posted or cancel"),
    sa.Column("payment_state", sa.Text,
              comment="not_paid, partial, in_payment, paid, reversed, blocked (Odoo 18+), invoicing_legacy"),
    sa.Column("partner_id", sa.BigInteger,
              comment="res.partner id of the invoice partner (may be a contact of the customer)"),
    sa.Column("partner_name", sa.Text, comment="name of the invoice partner"),
    sa.Column("commercial_partner_id", sa.BigInteger,
              comment="res.partner id of the commercial partner (the customer dunned)"),
    sa.Column("company_id", sa.BigInteger, comment="res.company id of our company that issued the move"),
    sa.Column("company_name", sa.Text, comment="name of that company"),
    sa.Column("currency", sa.Text, comment="ISO code of the invoice currency"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("invoice_date", sa.Date, comment="invoice date"),
    sa.Column("invoice_date_due", sa.Date,
              comment="due date (of the last instalment when the payment term has several)"),
    sa.Column("amount_total", Money, comment="total, invoice currency, positive"),
    sa.Column("amount_residual", Money, comment="still to be paid, invoice currency, positive"),
    sa.Column("amount_total_signed", Money, comment="company currency, negative for credit notes"),
    sa.Column("amount_residual_signed", Money, comment="company currency, negative for credit notes"),
    sa.Column("invoice_origin", sa.Text, comment="source document (e.g. the sale order)"),
    sa.Column("ref", sa.Text, comment="customer reference"),
    sa.Column("payment_term", sa.Text, comment="name of the payment term"),
    sa.Column("write_date", sa.DateTime, comment="UTC"),
    sa.Column("create_date", sa.DateTime, comment="UTC"),
    sa.Column("extracted_at", sa.DateTime, comment="UTC"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
)
sa.Index("ix_odoo_invoices_write_date", odoo_invoices.c.write_date)

# One row per instalment of a customer move: its receivable line (display_type payment_term).
odoo_receivable_lines = sa.Table(
    "odoo_receivable_lines",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="account.move.line id"),
    sa.Column("move_id", sa.BigInteger, nullable=False, comment="account.move id (odoo_invoices.id)"),
    sa.Column("company_id", sa.BigInteger, comment="res.company id"),
    sa.Column("partner_id", sa.BigInteger, comment="the line's partner (Odoo: the commercial partner)"),
    sa.Column("date_maturity", sa.Date, comment="due date of this instalment"),
    sa.Column("amount_residual", Money, comment="company currency, signed (negative: credit)"),
    sa.Column("amount_residual_currency", Money, comment="invoice currency, signed"),
    sa.Column("balance", Money, comment="company currency, signed"),
    sa.Column("amount_currency", Money, comment="invoice currency, signed"),
    sa.Column("reconciled", sa.Boolean, comment="true: fully paid (reconciled)"),
    sa.Column("write_date", sa.DateTime, comment="UTC"),
    sa.Column("extracted_at", sa.DateTime, comment="UTC"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
)
sa.Index("ix_odoo_receivable_lines_move_id", odoo_receivable_lines.c.move_id)

# One row per account.partial.reconcile touching a customer move's receivable line: what a
# payment or credit note settled of it, and on which day (the past balances are built from these).
odoo_reconciliations = sa.Table(
    "odoo_reconciliations",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="account.partial.reconcile id"),
    # Nullable: a reconciliation without one of its lines is stored and quarantined (its checks).
    sa.Column("debit_line_id", sa.BigInteger, comment="account.move.line id of the debit side"),
    sa.Column("credit_line_id", sa.BigInteger, comment="account.move.line id of the credit side"),
    sa.Column("company_id", sa.BigInteger, comment="res.company id"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("amount", Money, comment="company currency, settled on both lines"),
    sa.Column("debit_currency", sa.Text, comment="ISO code of the debit line's currency"),
    sa.Column("debit_amount_currency", Money, comment="in the debit line's currency"),
    sa.Column("credit_currency", sa.Text, comment="ISO code of the credit line's currency"),
    sa.Column("credit_amount_currency", Money, comment="in the credit line's currency"),
    sa.Column("max_date", sa.Date, comment="the later of the two lines' dates: when it counts as paid"),
    sa.Column("create_date", sa.DateTime, comment="UTC"),
    sa.Column("write_date", sa.DateTime, comment="UTC"),
    sa.Column("extracted_at", sa.DateTime, comment="UTC"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
)
sa.Index("ix_odoo_reconciliations_debit_line_id", odoo_reconciliations.c.debit_line_id)
sa.Index("ix_odoo_reconciliations_credit_line_id", odoo_reconciliations.c.credit_line_id)

odoo_customers = sa.Table(
    "odoo_customers",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="res.partner id"),
    sa.Column("name", sa.Text, comment="partner name"),
    sa.Column("email", sa.Text, comment="email address(es) as entered in Odoo"),
    sa.Column("phone", sa.Text, comment="phone number"),
    sa.Column("vat", sa.Text, comment="tax id"),
    sa.Column("lang", sa.Text, comment="language code (e.g. de_DE) of the partner's documents"),
    sa.Column("country", sa.Text, comment="ISO country code"),
    sa.Column("is_company", sa.Boolean, comment="true: a company, false: a person or contact"),
    sa.Column("parent_id", sa.BigInteger, comment="res.partner id of the company a contact belongs to"),
    sa.Column("commercial_partner_id", sa.BigInteger,
              comment="res.partner id of the commercial partner (itself for a company)"),
    sa.Column("customer_rank", sa.Integer, comment="Odoo's customer rank (above 0: has been invoiced)"),
    sa.Column("tags", sa.Text, comment="JSON list of partner tag (category) names"),
    sa.Column("company_id", sa.BigInteger, comment="res.company id the partner is restricted to; null: shared"),
    sa.Column("active", sa.Boolean, comment="false: archived"),
    sa.Column("write_date", sa.DateTime, comment="UTC"),
    sa.Column("extracted_at", sa.DateTime, comment="UTC"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
)

zendesk_tickets = sa.Table(
    "zendesk_tickets",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Zendesk ticket id"),
    sa.Column("status", sa.Text, nullable=False, comment="new, open, pending, hold, solved, closed, or deleted"),
    sa.Column("subject", sa.Text, comment="ticket subject"),
    sa.Column("description", sa.Text, comment="first comment of the ticket, plain text"),
    sa.Column("requester_id", sa.BigInteger, comment="zendesk_users.id of the requester"),
    sa.Column("organization_id", sa.BigInteger, comment="Zendesk organization id of the requester"),
    sa.Column("tags", sa.Text,
              comment="JSON list of tags (dispute tags put invoices on hold; closed_by_merge on a merged ticket)"),
    sa.Column("via_channel", sa.Text,
              comment="how the ticket came in (email, web, api, ...; a via id is mapped to its name)"),
    sa.Column("from_address", sa.Text,
              comment="via.source.from.address: the sender of an email ticket (the customer of a forwarded mail)"),
    sa.Column("created_at", sa.DateTime, comment="UTC"),
    sa.Column("updated_at", sa.DateTime, comment="last change in Zendesk (UTC); the newest copy wins"),
    sa.Column("extracted_at", sa.DateTime, comment="when this pipeline wrote the row (UTC)"),
    sa.Column("email_cc_ids", sa.Text, comment="JSON list of user ids in CC"),
    sa.Column("collaborator_ids", sa.Text, comment="JSON list of the collaborators' user ids"),
    sa.Column("follower_ids", sa.Text, comment="JSON list of the followers' user ids"),
    sa.Column("via_source_from_name", sa.Text, comment="via.source.from.name: the sender's name"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
    sa.Column("comments_updated_at", sa.DateTime,
              comment="UTC; the updated_at whose comments are stored (older: comments to fetch)"),
)

zendesk_users = sa.Table(
    "zendesk_users",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Zendesk user id"),
    sa.Column("email", sa.Text, comment="null for contacts without one (phone contacts)"),
    sa.Column("name", sa.Text, comment="user name"),
    sa.Column("organization_id", sa.BigInteger, comment="Zendesk organization id"),
    sa.Column("role", sa.Text, comment="end-user (a customer contact), agent or admin"),
    sa.Column("external_id", sa.Text, comment="id in another system, as set in Zendesk"),
    sa.Column("updated_at", sa.DateTime, comment="last change in Zendesk (UTC); the newest copy wins"),
    sa.Column("extracted_at", sa.DateTime, comment="UTC"),
    sa.Column("active", sa.Boolean, comment="false: a deleted user"),
    sa.Column("suspended", sa.Boolean, comment="true: a suspended user (their mails land in the suspended queue)"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
)

zendesk_comments = sa.Table(
    "zendesk_comments",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Zendesk comment id"),
    sa.Column("ticket_id", sa.BigInteger, nullable=False, comment="zendesk_tickets.id"),
    sa.Column("author_id", sa.BigInteger, comment="zendesk_users.id of the author"),
    sa.Column("public", sa.Boolean, comment="false: an internal note, not sent to the customer"),
    sa.Column("body", sa.Text, comment="plain text of the comment"),
    sa.Column("via_channel", sa.Text, comment="how the comment came in (email, web, voice, api, ...)"),
    sa.Column("created_at", sa.DateTime, comment="UTC"),
    sa.Column("extracted_at", sa.DateTime, comment="UTC"),
    sa.Column("parse_error", sa.Text, comment="why a field of the record did not parse (quarantined)"),
)
sa.Index("ix_zendesk_comments_ticket_id", zendesk_comments.c.ticket_id)

extract_state = sa.Table(
    "extract_state",
    metadata,
    sa.Column("key", sa.Text, primary_key=True, comment="e.g. odoo.account.move.write_date"),
    sa.Column("value", sa.Text, nullable=False, comment="high-water mark or cursor"),
    sa.Column("updated_at", sa.DateTime, comment="UTC"),
)

"""Warehouse tables of the customer timeline, the reminder drafts and the late-payment charges.

Snapshots replaced by each run for its as-of day. Drafts are never sent from here: `status` is
always `draft`; the workbench (or a person) decides what goes out.
"""

import sqlalchemy as sa

from dunning_pipeline.warehouse.schema import Money, metadata

customer_timeline = sa.Table(
    "customer_timeline",
    metadata,
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="commercial partner"),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False, comment="order within the customer, from 1"),
    sa.Column("day", sa.Date, nullable=False, comment="business day (DUNNING_TIMEZONE) of the event"),
    sa.Column("at", sa.DateTime, comment="UTC; null for dunning events (recorded per day)"),
    sa.Column("kind", sa.Text, nullable=False, comment="message or dunning"),
    sa.Column("event", sa.Text, nullable=False,
              comment="inbound, outbound, internal_note; stage_entered, hold, promise, release, closure"),
    sa.Column("direction", sa.Text, comment="messages: inbound (the customer's side) or outbound"),
    sa.Column("visibility", sa.Text, comment="messages: public or internal"),
    sa.Column("channel", sa.Text, comment="Zendesk via channel of the comment (email, web, voice, ...)"),
    sa.Column("author_id", sa.BigInteger),
    sa.Column("author_name", sa.Text),
    sa.Column("author_role", sa.Text),
    sa.Column("ticket_id", sa.BigInteger),
    sa.Column("ticket_status", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("text", sa.Text, comment="the message's plain text, or a summary of the dunning event"),
    sa.Column("comment_id", sa.BigInteger),
    sa.Column("invoice_numbers", sa.Text, comment="JSON list of the customer's invoices the message names"),
    sa.Column("invoice_id", sa.BigInteger, comment="dunning events: the invoice"),
    sa.Column("invoice_number", sa.Text),
    sa.Column("from_stage", sa.Text),
    sa.Column("to_stage", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("hold_reason", sa.Text),
    sa.Column("hold_until", sa.Date),
    sa.Column("amount_residual", Money, comment="dunning events: invoice currency, at that time"),
    sa.Column("currency", sa.Text),
    sa.Column("as_of_date", sa.Date, nullable=False),
)

customer_timeline_views = sa.Table(
    "customer_timeline_views",
    metadata,
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("customer_name", sa.Text),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("messages", sa.Integer, nullable=False),
    sa.Column("last_message_at", sa.DateTime, comment="UTC"),
    sa.Column("html", sa.Text, nullable=False, comment="autoescaped HTML fragment for the workbench"),
    sa.Column("as_of_date", sa.Date, nullable=False),
)

late_payment_charges = sa.Table(
    "late_payment_charges",
    metadata,
    sa.Column("invoice_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("invoice_number", sa.Text),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("company_id", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("days_overdue", sa.Integer, nullable=False),
    sa.Column("interest_basis", sa.Text, comment="invoice, or instalments (each with its own due date)"),
    sa.Column("interest_rate_percent", sa.Text, comment="per year, exact decimal text"),
    sa.Column("interest_statutory", sa.Boolean, comment="reference rate plus points (EU late-payment rules)"),
    sa.Column("interest_amount", Money, nullable=False, comment="invoice currency, to the as-of day"),
    sa.Column("fee_count", sa.Integer, nullable=False),
    sa.Column("fee_amount", Money, nullable=False, comment="invoice currency"),
    sa.Column("charges_total", Money, nullable=False),
    sa.Column("as_of_date", sa.Date, nullable=False),
)

reminder_drafts = sa.Table(
    "reminder_drafts",
    metadata,
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("company_id", sa.BigInteger, comment="our Odoo company that writes"),
    sa.Column("customer_name", sa.Text),
    sa.Column("customer_email", sa.Text),
    sa.Column("company_name", sa.Text),
    sa.Column("lang", sa.Text, comment="Odoo partner lang"),
    sa.Column("locale", sa.Text, comment="Babel locale of amounts and dates"),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False, comment="email or letter"),
    sa.Column("tone", sa.Text),
    sa.Column("manual_only", sa.Boolean, comment="the policy leaves sending to a person"),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, comment="the text to use: the suggestion if accepted, else the template"),
    sa.Column("template_body", sa.Text, nullable=False),
    sa.Column("template_name", sa.Text),
    sa.Column("source", sa.Text, nullable=False, comment="template or llm: which text `body` is"),
    sa.Column("source_note", sa.Text, comment="why: not configured, accepted, rejected (and why), failed"),
    sa.Column("llm_model", sa.Text),
    sa.Column("llm_prompt", sa.Text, comment="JSON messages sent, for audit"),
    sa.Column("llm_answer", sa.Text, comment="the raw answer, for audit"),
    sa.Column("invoice_numbers", sa.Text, comment="JSON list of the invoices demanded"),
    sa.Column("amounts", sa.Text, comment="JSON list of the amounts as written in the template"),
    sa.Column("under_review", sa.Text, comment="JSON list of disputed invoices named, not demanded"),
    sa.Column("demand_totals", sa.Text),
    sa.Column("open_credit", sa.Text),
    sa.Column("interest_total", sa.Text),
    sa.Column("fee_total", sa.Text),
    sa.Column("last_contact_kind", sa.Text, comment="email_out, email_in or phone; null: none referred to"),
    sa.Column("last_contact_on", sa.Date),
    sa.Column("last_contact_ticket_id", sa.BigInteger),
    sa.Column("status", sa.Text, nullable=False, comment="always draft: never sent by the pipeline"),
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("run_id", sa.Text),
)
sa.Index("ix_reminder_drafts_customer_id", reminder_drafts.c.customer_id)

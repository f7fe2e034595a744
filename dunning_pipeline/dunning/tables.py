"""Warehouse tables of the dunning engine, on the shared metadata.

`dunning_history` is the append-only audit log: rows are only ever inserted (a trigger on
PostgreSQL and SQLite refuses UPDATE and DELETE). `invoice_aging` is the latest snapshot.
"""

import sqlalchemy as sa

from dunning_pipeline.warehouse.schema import Money, metadata

dunning_history = sa.Table(
    "dunning_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("invoice_id", sa.BigInteger, nullable=False),
    sa.Column("invoice_number", sa.Text),
    sa.Column("move_type", sa.Text),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("customer_name", sa.Text),
    sa.Column("company_id", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("company_currency", sa.Text),
    sa.Column("from_stage", sa.Text, comment="null when the invoice enters dunning"),
    sa.Column("to_stage", sa.Text, nullable=False),
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False,
              comment="days_overdue, paid, credited, cancelled, hold, released, policy_change"),
    sa.Column("stages_skipped", sa.Integer, comment="stages jumped over after missed nights"),
    sa.Column("days_overdue", sa.Integer),
    sa.Column("invoice_date_due", sa.Date),
    sa.Column("amount_residual", Money, comment="invoice currency, at that time"),
    sa.Column("amount_residual_company", Money, comment="company currency, at that time"),
    sa.Column("hold_reason", sa.Text),
    sa.Column("ticket_id", sa.BigInteger, comment="Zendesk ticket behind a hold or the last contact"),
    sa.Column("recorded_at", sa.DateTime, comment="UTC"),
    sa.UniqueConstraint("invoice_id", "as_of_date", name="uq_dunning_history_invoice_day"),
)
sa.Index("ix_dunning_history_as_of_date", dunning_history.c.as_of_date)

"""Warehouse tables of the collections workbench, on the shared metadata, and the indexes its
pages need on the engine's tables.

`workbench_actions` is the accountants' log: one row per thing done (a payment promise, an
exclusion, a phone call, a reminder sent, a hold released early), with author and time. Rows
are never deleted; an author may retract their own row, which stamps `retracted_at`. A promise
or an exclusion also writes a `dunning_holds` row (`hold_id`): that table stays the one source
of holds for the engine, and releasing early stamps `dunning_holds.released_at`.
"""

import sqlalchemy as sa

from dunning_pipeline.dunning import tables as dunning_tables
from dunning_pipeline.warehouse import store
from dunning_pipeline.warehouse.schema import metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

ACTION_KINDS = ("promise", "exclusion", "call", "reminder_sent", "release")

workbench_actions = sa.Table(
    "workbench_actions",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True, comment="action id"),
    sa.Column("kind", sa.Text, nullable=False, comment=", ".join(ACTION_KINDS)),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("invoice_id", sa.BigInteger, comment="null: the whole customer"),
    sa.Column("hold_id", sa.BigInteger, comment="dunning_holds.id written or released"),
    sa.Column("until", sa.Date, comment="promised payment day, or end of an exclusion"),
    sa.Column("outcome", sa.Text, comment="phone call: reached, no_answer, ..."),
    sa.Column("draft_ref", sa.Text, comment="reminder_drafts row the reminder was sent from"),
    sa.Column("ticket_id", sa.BigInteger, comment="Zendesk ticket a reminder was sent through"),
    sa.Column("note", sa.Text, comment="the author's note"),
    sa.Column("author", sa.Text, nullable=False, comment="the signed-in accountant"),
    sa.Column("created_at", sa.DateTime, nullable=False, comment="UTC"),
    sa.Column("as_of_date", sa.Date, comment="as-of date of the data the author saw"),
    sa.Column("retracted_at", sa.DateTime, comment="UTC; set once, by the author"),
    sa.CheckConstraint("kind IN ('promise', 'exclusion', 'call', 'reminder_sent', 'release')",
                       name="ck_workbench_actions_kind"),
)
sa.Index("ix_workbench_actions_customer_id", workbench_actions.c.customer_id, workbench_actions.c.created_at)

# The worklist's rollup of the aging snapshot: one row per customer and company currency and
# per value of each filter (status, hold reason, stage, segment, company, currency), so the
# worklist groups a few rows per customer instead of every invoice. Rebuilt from each new
# aging snapshot by the nightly asset workbench_worklist (rollup.rebuild); never edited.
workbench_worklist = sa.Table(
    "workbench_worklist",
    metadata,
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("company_currency", sa.Text, comment="currency of the amounts"),
    sa.Column("dunning_status", sa.Text, nullable=False, comment="dunned or on_hold"),
    sa.Column("hold_reason", sa.Text, comment="why on hold (invoice_aging.hold_reason)"),
    sa.Column("stage", sa.Text, comment="dunning stage in effect"),
    sa.Column("segment", sa.Text, comment="customer segment"),
    sa.Column("company_id", sa.BigInteger, comment="Odoo company"),
    sa.Column("currency", sa.Text, comment="invoice currency"),
    sa.Column("invoices", sa.Integer, nullable=False, comment="open invoices summed"),
    sa.Column("amount_units", sa.BigInteger, nullable=False, comment="company currency, 1/10,000 units"),
    sa.Column("days_overdue", sa.Integer, comment="the most overdue invoice's"),
    sa.Column("action_rank", sa.Integer, comment="the most advanced action's rank (rollup.ACTION_RANK)"),
    sa.Column("customer_name", sa.Text, comment="commercial partner name"),
    sa.Column("customer_stage", sa.Text, comment="the customer's highest stage"),
)
sa.Index("ix_workbench_worklist_status_customer", workbench_worklist.c.dunning_status,
         workbench_worklist.c.customer_id)
for _filter in ("hold_reason", "stage", "segment", "company_id", "currency"):  # combined as bitmaps
    sa.Index(f"ix_workbench_worklist_{_filter}", workbench_worklist.c[_filter])
# The unfiltered worklist (what is dunned today), one row per customer and company currency,
# in the worklist's order: its first page is the index's first rows.
workbench_worklist_customers = sa.Table(
    "workbench_worklist_customers",
    metadata,
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("company_currency", sa.Text, comment="currency of the amounts"),
    sa.Column("customer_name", sa.Text, comment="commercial partner name"),
    sa.Column("segment", sa.Text, comment="customer segment"),
    sa.Column("customer_stage", sa.Text, comment="the customer's highest stage"),
    sa.Column("invoices", sa.Integer, nullable=False, comment="open invoices summed"),
    sa.Column("held", sa.Integer, nullable=False, comment="of them on hold"),
    sa.Column("amount_units", sa.BigInteger, nullable=False, comment="company currency, 1/10,000 units"),
    sa.Column("days_overdue", sa.Integer, comment="the most overdue invoice's"),
    sa.Column("action_rank", sa.Integer, comment="the most advanced action's rank (rollup.ACTION_RANK)"),
    sa.Column("action_group", sa.Text, nullable=False, comment="call, reminder, final_notice, agency or none"),
    sa.Column("group_order", sa.Integer, nullable=False, comment="the group's display order"),
)
sa.Index("ix_workbench_worklist_customers_id", workbench_worklist_customers.c.customer_id)
sa.Index("ix_workbench_worklist_customers_order", workbench_worklist_customers.c.group_order,
         workbench_worklist_customers.c.amount_units.desc(), workbench_worklist_customers.c.customer_id)

# The worklist groups the aging snapshot by customer within a status; the customer page reads
# history and holds by customer. Declared here so they are created on existing warehouses too.
_ag = dunning_tables.invoice_aging
_h = dunning_tables.dunning_history
_holds = dunning_tables.dunning_holds
INDEXES = (
    sa.Index("ix_invoice_aging_status_customer", _ag.c.dunning_status, _ag.c.customer_id),
    sa.Index("ix_invoice_aging_as_of_date", _ag.c.as_of_date),  # the as-of date on every page
    sa.Index("ix_dunning_history_customer_id", _h.c.customer_id, _h.c.as_of_date),
    sa.Index("ix_dunning_holds_customer_id", _holds.c.customer_id),
    sa.Index("ix_dunning_holds_invoice_id", _holds.c.invoice_id),
)


@store.on_schema
def _workbench_indexes(warehouse, conn) -> None:
    """create_all makes indexes only with new tables; these are added to existing ones too."""
    for index in INDEXES:
        index.create(conn, checkfirst=True)

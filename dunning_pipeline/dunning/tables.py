"""Warehouse tables of the dunning engine, on the shared metadata.

`dunning_history` is the append-only audit log: rows are only ever inserted (a trigger on
PostgreSQL and SQLite refuses UPDATE, DELETE and, on PostgreSQL, TRUNCATE). `dunning_state`
is the log's last row per invoice, kept beside it in the same transaction so a night does not
have to scan the whole log; `history.rebuild_state` derives it from the log again.
`receivables`, `customer_communications`, `invoice_aging` and `instalment_aging` (one row per
open instalment) are snapshots replaced by each run.
`dunning_holds` is filled by accountants (payment promises and manual exclusions).

Amounts in the snapshots are signed from the receivable's side: credit notes are negative.
"""

import sqlalchemy as sa

from dunning_pipeline.warehouse import store
from dunning_pipeline.warehouse.schema import Money, metadata

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

dunning_history = sa.Table(
    "dunning_history",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True, comment="row id, in the order rows were recorded"),
    sa.Column("invoice_id", sa.BigInteger, nullable=False, comment="Odoo account.move id"),
    sa.Column("invoice_number", sa.Text, comment="invoice number"),
    sa.Column("move_type", sa.Text, comment="out_invoice or out_refund (credit note)"),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("customer_name", sa.Text, comment="name of the commercial partner"),
    sa.Column("company_id", sa.BigInteger, comment="Odoo company that issued the invoice"),
    sa.Column("currency", sa.Text, comment="ISO code of the invoice currency"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("from_stage", sa.Text, comment="null when the invoice enters dunning"),
    sa.Column("to_stage", sa.Text, nullable=False, comment="stage after this row, or closed"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day of the run that recorded the row"),
    sa.Column("run_id", sa.Text, nullable=False, comment="Dagster run that recorded the row"),
    sa.Column("reason", sa.Text, nullable=False,
              comment="days_overdue, hold, released, reopened, policy_change, due_date_changed, "
                      "paid, credited, cancelled, removed"),
    sa.Column("stages_skipped", sa.Integer, comment="stages jumped over after missed nights"),
    sa.Column("days_overdue", sa.Integer, comment="days past the due date on that day"),
    sa.Column("invoice_date_due", sa.Date, comment="the due date the stage followed: the oldest open instalment's"),
    sa.Column("amount_residual", Money, comment="invoice currency, at that time"),
    sa.Column("amount_residual_company", Money, comment="company currency, at that time"),
    sa.Column("hold_reason", sa.Text,
              comment="exclusion, dispute, payment_claimed, promise, in_payment, net_credit, blocked"),
    sa.Column("ticket_id", sa.BigInteger, comment="Zendesk ticket behind a hold or the last contact"),
    sa.Column("recorded_at", sa.DateTime, comment="UTC"),
    # Added by the engine (additive): the hold and the policy behind the row.
    sa.Column("on_hold", sa.Boolean, comment="the invoice is on hold after this row"),
    sa.Column("hold_since", sa.Date, comment="start of the hold; the stage is frozen as of that day"),
    sa.Column("hold_until", sa.Date, comment="end of a payment promise or a dated exclusion"),
    sa.Column("policy", sa.Text, comment="dunning policy (ladder) of the invoice"),
    sa.Column("segment", sa.Text, comment="customer segment that chose the policy"),
    sa.Column("action", sa.Text, comment="action of to_stage: email, call, letter, suspend, agency"),
    sa.Column("manual_only", sa.Boolean, comment="the policy leaves the action to a person"),
    sa.UniqueConstraint("invoice_id", "as_of_date", name="uq_dunning_history_invoice_day"),
)
sa.Index("ix_dunning_history_as_of_date", dunning_history.c.as_of_date)

dunning_state = sa.Table(
    "dunning_state",
    metadata,
    sa.Column("invoice_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Odoo account.move id"),
    sa.Column("invoice_number", sa.Text, comment="invoice number"),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("customer_name", sa.Text, comment="name of the commercial partner"),
    sa.Column("company_id", sa.BigInteger, comment="Odoo company"),
    sa.Column("currency", sa.Text, comment="ISO code of the invoice currency"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("move_type", sa.Text, comment="out_invoice or out_refund"),
    sa.Column("stage", sa.Text, nullable=False, comment="to_stage of the invoice's last history row"),
    sa.Column("on_hold", sa.Boolean, nullable=False, comment="the invoice is on hold after that row"),
    sa.Column("hold_reason", sa.Text, comment="why it is on hold"),
    sa.Column("hold_since", sa.Date, comment="start of the hold"),
    sa.Column("policy", sa.Text, comment="dunning policy of the invoice"),
    sa.Column("segment", sa.Text, comment="customer segment that chose the policy"),
    sa.Column("invoice_date_due", sa.Date, comment="the due date the stage followed"),
    sa.Column("amount_residual", Money, comment="invoice currency, at that time"),
    sa.Column("amount_residual_company", Money, comment="company currency, at that time"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="as-of date of that row"),
    sa.Column("history_id", sa.BigInteger, comment="dunning_history.id of that row"),
)
sa.Index("ix_dunning_state_stage", dunning_state.c.stage)

receivables = sa.Table(
    "receivables",
    metadata,
    sa.Column("invoice_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Odoo account.move id"),
    sa.Column("invoice_number", sa.Text, comment="invoice number"),
    sa.Column("move_type", sa.Text, nullable=False, comment="out_invoice or out_refund (credit note)"),
    sa.Column("state", sa.Text, comment="Odoo state (posted)"),
    sa.Column("payment_state", sa.Text, comment="Odoo payment state: not_paid, partial, blocked or in_payment"),
    sa.Column("receivable_status", sa.Text, nullable=False,
              comment="open (not_paid/partial/blocked: aged; blocked is held) or in_payment (shown, not dunned)"),
    sa.Column("partner_id", sa.BigInteger, comment="invoice partner (may be a contact)"),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner: dunning is per customer"),
    sa.Column("customer_name", sa.Text, comment="name of the commercial partner"),
    sa.Column("customer_email", sa.Text, comment="email address(es) of the commercial partner"),
    sa.Column("customer_phone", sa.Text, comment="phone of the commercial partner"),
    sa.Column("customer_lang", sa.Text, comment="Odoo language code of the commercial partner"),
    sa.Column("customer_country", sa.Text, comment="ISO country code of the commercial partner"),
    sa.Column("customer_vat", sa.Text, comment="tax id of the commercial partner"),
    sa.Column("customer_tags", sa.Text, comment="JSON list of Odoo partner tags"),
    sa.Column("segment", sa.Text, nullable=False,
              comment="customer segment from the partner tags (policy file's segments)"),
    sa.Column("policy", sa.Text, nullable=False, comment="dunning policy (ladder) the segment chose"),
    sa.Column("company_id", sa.BigInteger, comment="Odoo company that issued the invoice"),
    sa.Column("company_name", sa.Text, comment="name of that company"),
    sa.Column("currency", sa.Text, comment="ISO code of the invoice currency"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("invoice_date", sa.Date, comment="invoice date"),
    sa.Column("invoice_date_due", sa.Date, comment="due date (last instalment's when there are several)"),
    sa.Column("amount_total", Money, comment="invoice currency, signed (credit notes negative)"),
    sa.Column("amount_residual", Money, comment="invoice currency, signed"),
    sa.Column("amount_total_company", Money, comment="company currency, signed"),
    sa.Column("amount_residual_company", Money, comment="company currency, signed"),
    sa.Column("write_date", sa.DateTime, comment="UTC"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day this snapshot was built for"),
)
sa.Index("ix_receivables_customer_id", receivables.c.customer_id)

customer_communications = sa.Table(
    "customer_communications",
    metadata,
    sa.Column("ticket_id", sa.BigInteger, nullable=False, comment="Zendesk ticket id"),
    sa.Column("invoice_id", sa.BigInteger, comment="null: the ticket names none of the customer's invoices"),
    sa.Column("invoice_number", sa.Text, comment="the invoice number as matched"),
    sa.Column("customer_id", sa.BigInteger, comment="commercial partner; null: not matched"),
    sa.Column("match_method", sa.Text, nullable=False,
              comment="requester_email, sender_email, cc, collaborator, organization, domain, merged_from "
                      "or unmatched"),
    sa.Column("status", sa.Text, comment="Zendesk ticket status"),
    sa.Column("is_open", sa.Boolean, nullable=False, comment="ticket not solved, closed or deleted"),
    sa.Column("is_dispute", sa.Boolean, nullable=False, comment="the customer disputes the invoice(s)"),
    sa.Column("dispute_scope", sa.Text, comment="the hold is for the invoice or the whole customer (names none)"),
    sa.Column("subject", sa.Text, comment="ticket subject"),
    sa.Column("requester_id", sa.BigInteger, comment="Zendesk user id of the requester"),
    sa.Column("requester_email", sa.Text, comment="email of the requester"),
    sa.Column("tags", sa.Text, comment="JSON list"),
    sa.Column("mentioned_at", sa.DateTime, comment="UTC, first mention of the invoice number"),
    sa.Column("promise_until", sa.Date, comment="payment promise read from the ticket (optional)"),
    sa.Column("ticket_created_at", sa.DateTime, comment="UTC"),
    sa.Column("ticket_updated_at", sa.DateTime, comment="UTC"),
    sa.Column("last_inbound_at", sa.DateTime, comment="UTC, last message from the customer on this ticket"),
    sa.Column("last_outbound_at", sa.DateTime, comment="UTC, last public reply to the customer"),
    sa.Column("customer_last_inbound_at", sa.DateTime, comment="UTC, over all the customer's tickets"),
    sa.Column("customer_last_outbound_at", sa.DateTime, comment="UTC, over all the customer's tickets"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day this snapshot was built for"),
    sa.Column("hold_kind", sa.Text, comment="dispute, payment_claimed or null: what the customer's words hold"),
    sa.Column("hold_until", sa.Date, comment="last day a payment claim holds"),
)
sa.Index("ix_customer_communications_customer_id", customer_communications.c.customer_id)

invoice_aging = sa.Table(
    "invoice_aging",
    metadata,
    sa.Column("invoice_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Odoo account.move id"),
    sa.Column("invoice_number", sa.Text, comment="invoice number"),
    sa.Column("move_type", sa.Text, nullable=False, comment="out_invoice or out_refund (credit note)"),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("customer_name", sa.Text, comment="name of the commercial partner"),
    sa.Column("segment", sa.Text, comment="customer segment that chose the policy"),
    sa.Column("policy", sa.Text, comment="dunning policy (ladder) of the invoice"),
    sa.Column("company_id", sa.BigInteger, comment="Odoo company that issued the invoice"),
    sa.Column("currency", sa.Text, comment="ISO code of the invoice currency"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("receivable_status", sa.Text, comment="open or in_payment (see receivables)"),
    sa.Column("amount_residual", Money, nullable=False, comment="invoice currency, signed"),
    sa.Column("amount_residual_company", Money, nullable=False, comment="company currency, signed"),
    sa.Column("net_residual_company", Money,
              comment="invoices: residual left after the customer's open credit notes (oldest due first)"),
    sa.Column("invoice_date", sa.Date, comment="invoice date"),
    sa.Column("invoice_date_due", sa.Date, comment="due date of the invoice (last instalment's)"),
    sa.Column("days_overdue", sa.Integer, nullable=False, comment="as-of date minus due_date"),
    sa.Column("aging_bucket", sa.Text, nullable=False, comment="of the oldest open instalment"),
    sa.Column("due_date", sa.Date, comment="date_maturity of the oldest open instalment (one instalment: "
                                           "invoice_date_due)"),
    sa.Column("instalment_number", sa.Integer, comment="1-based position of that instalment"),
    sa.Column("instalments_total", sa.Integer, comment="instalments of the payment term"),
    sa.Column("instalments_open", sa.Integer, comment="instalments with a residual"),
    sa.Column("due_stage", sa.Text, comment="stage by the calendar alone"),
    sa.Column("stage", sa.Text, comment="stage in effect (frozen while on hold); null: not in dunning"),
    sa.Column("stage_rank", sa.Integer, comment="position of the stage in its ladder, from 1"),
    sa.Column("action", sa.Text, comment="action of the stage: email, call, letter, suspend, agency"),
    sa.Column("tone", sa.Text, comment="tone of the stage's reminder (friendly, firm, final, ...)"),
    sa.Column("manual_only", sa.Boolean, comment="the policy leaves the action to a person"),
    sa.Column("dunning_status", sa.Text, nullable=False,
              comment="dunned, on_hold, not_in_dunning, credit_note"),
    sa.Column("hold_reason", sa.Text,
              comment="exclusion, dispute, payment_claimed, promise, in_payment, net_credit, blocked"),
    sa.Column("hold_since", sa.Date, comment="start of the hold; the stage is frozen as of that day"),
    sa.Column("hold_until", sa.Date, comment="end of a payment promise, claim or dated exclusion"),
    sa.Column("hold_ticket_id", sa.BigInteger, comment="Zendesk ticket behind a dispute or payment claim"),
    sa.Column("hold_note", sa.Text, comment="the accountant's note of a manual hold, or the ticket's words"),
    sa.Column("customer_overdue_company", Money, comment="customer's overdue invoices, company currency"),
    sa.Column("customer_credit_company", Money, comment="customer's open credit notes (negative)"),
    sa.Column("customer_net_overdue_company", Money, comment="overdue + credit; not positive: not dunned"),
    sa.Column("customer_stage", sa.Text, comment="highest stage in effect of the customer's dunned invoices"),
    sa.Column("customer_last_inbound_at", sa.DateTime, comment="UTC"),
    sa.Column("customer_last_outbound_at", sa.DateTime, comment="UTC"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day this snapshot was built for"),
    sa.Column("run_id", sa.Text, comment="Dagster run that built it"),
)
sa.Index("ix_invoice_aging_customer_id", invoice_aging.c.customer_id)

instalment_aging = sa.Table(
    "instalment_aging",
    metadata,
    sa.Column("invoice_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="Odoo account.move id"),
    sa.Column("instalment_number", sa.Integer, primary_key=True, autoincrement=False,
              comment="1-based position by due date among the invoice's instalments"),
    sa.Column("line_id", sa.BigInteger, comment="account.move.line id; null: the invoice has no lines "
                                                "(one instalment on invoice_date_due)"),
    sa.Column("invoice_number", sa.Text, comment="invoice number"),
    sa.Column("company_id", sa.BigInteger, comment="Odoo company"),
    sa.Column("customer_id", sa.BigInteger, nullable=False, comment="commercial partner"),
    sa.Column("currency", sa.Text, comment="ISO code of the invoice currency"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("instalments_total", sa.Integer, comment="instalments of the payment term"),
    sa.Column("date_maturity", sa.Date, nullable=False, comment="due date of this instalment"),
    sa.Column("days_overdue", sa.Integer, nullable=False, comment="as-of date minus date_maturity"),
    sa.Column("aging_bucket", sa.Text, nullable=False, comment="of this instalment's own due date"),
    sa.Column("amount_residual", Money, nullable=False, comment="invoice currency, signed"),
    sa.Column("amount_residual_company", Money, nullable=False, comment="company currency, signed"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day this snapshot was built for"),
    sa.Column("run_id", sa.Text, comment="Dagster run that built it"),
)
sa.Index("ix_instalment_aging_customer_id", instalment_aging.c.customer_id)

dunning_holds = sa.Table(
    "dunning_holds",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True, comment="hold id"),
    sa.Column("customer_id", sa.BigInteger, comment="Odoo partner id (a contact counts for its company)"),
    sa.Column("invoice_id", sa.BigInteger, comment="Odoo account.move id"),
    sa.Column("kind", sa.Text, nullable=False, comment="promise (until a date) or exclusion"),
    sa.Column("until", sa.Date, comment="last day of the hold; required for a promise"),
    sa.Column("note", sa.Text, comment="why, in the accountant's words"),
    sa.Column("created_by", sa.Text, nullable=False, comment="who entered the hold"),
    sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.func.current_timestamp(),
              comment="UTC; when it was entered: a night before this day does not know the hold"),
    # A promise made on a call last Tuesday, entered today: it counts from Tuesday.
    sa.Column("effective_date", sa.Date, comment="the day the hold counts from; null: the day it was created"),
    # Set once when an accountant ends the hold early (the workbench); the row is otherwise kept.
    sa.Column("released_at", sa.DateTime, comment="UTC; the hold no longer applies from this day"),
    sa.Column("released_by", sa.Text, comment="who ended the hold early"),
    sa.CheckConstraint("customer_id IS NOT NULL OR invoice_id IS NOT NULL", name="ck_dunning_holds_target"),
    sa.CheckConstraint("kind IN ('promise', 'exclusion')", name="ck_dunning_holds_kind"),
    sa.CheckConstraint("kind <> 'promise' OR until IS NOT NULL", name="ck_dunning_holds_promise_until"),
)

_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION dunning_history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'dunning_history is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS dunning_history_no_change ON dunning_history;
CREATE TRIGGER dunning_history_no_change BEFORE UPDATE OR DELETE ON dunning_history
    FOR EACH ROW EXECUTE FUNCTION dunning_history_append_only();
DROP TRIGGER IF EXISTS dunning_history_no_truncate ON dunning_history;
CREATE TRIGGER dunning_history_no_truncate BEFORE TRUNCATE ON dunning_history
    FOR EACH STATEMENT EXECUTE FUNCTION dunning_history_append_only();
"""

_SQLITE_APPEND_ONLY = (
    """CREATE TRIGGER IF NOT EXISTS dunning_history_no_update BEFORE UPDATE ON dunning_history
       BEGIN SELECT RAISE(ABORT, 'dunning_history is append-only: UPDATE is not allowed'); END""",
    """CREATE TRIGGER IF NOT EXISTS dunning_history_no_delete BEFORE DELETE ON dunning_history
       BEGIN SELECT RAISE(ABORT, 'dunning_history is append-only: DELETE is not allowed'); END""",
)


@store.on_schema
def _history_append_only(warehouse, conn) -> None:
    """The database refuses to change or remove a history row, whoever asks."""
    if warehouse.dialect == "postgresql":
        # Through the driver's cursor without parameters: '%' in the function body is literal.
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.execute(_PG_APPEND_ONLY)
    elif warehouse.dialect == "sqlite":
        for statement in _SQLITE_APPEND_ONLY:
            conn.exec_driver_sql(statement)

"""Warehouse tables of the AR aging report and the collection KPIs, on the shared metadata.

`ar_aging_report` (one row per customer and company, company currency) and
`ar_aging_report_buckets` (the buckets, long: in company currency and, per invoice currency, in
invoice currency) are snapshots replaced by each run. `collection_kpis` is a daily series kept
across nights: a run replaces the rows of its own as-of day only.
"""

import sqlalchemy as sa

from dunning_pipeline.warehouse.schema import Money, metadata

ar_aging_report = sa.Table(
    "ar_aging_report",
    metadata,
    sa.Column("company_id", sa.BigInteger, primary_key=True, autoincrement=False,
              comment="-1: receivables without a company"),
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="commercial partner"),
    sa.Column("customer_name", sa.Text, comment="name of the commercial partner"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency (all *_company amounts)"),
    sa.Column("currencies", sa.Text, comment="invoice currencies, comma-separated"),
    sa.Column("open_items", sa.Integer, nullable=False, comment="open invoices and credit notes"),
    sa.Column("total_company", Money, nullable=False, comment="open balance, credit notes netted"),
    sa.Column("current_company", Money, nullable=False, comment="not yet due"),
    sa.Column("overdue_company", Money, nullable=False, comment="overdue invoices (positive residuals)"),
    sa.Column("open_credit_company", Money, nullable=False, comment="open credit notes (negative)"),
    sa.Column("oldest_due_date", sa.Date, comment="oldest due date of an open invoice (instalment)"),
    sa.Column("max_days_overdue", sa.Integer, comment="days past the oldest due date"),
    sa.Column("highest_stage", sa.Text, comment="highest stage in effect of the customer's invoices"),
    sa.Column("dunning_status", sa.Text, comment="dunned, on_hold, partly_on_hold, not_in_dunning"),
    sa.Column("invoices_on_hold", sa.Integer, nullable=False, comment="open invoices on hold"),
    sa.Column("on_hold_company", Money, nullable=False, comment="residual of the invoices on hold"),
    sa.Column("hold_reasons", sa.Text, comment="why, comma-separated (dispute, promise, exclusion, ...)"),
    sa.Column("promised_date", sa.Date, comment="latest payment promise still running"),
    sa.Column("last_inbound_at", sa.DateTime, comment="UTC, last message from the customer"),
    sa.Column("last_outbound_at", sa.DateTime, comment="UTC, last public reply to the customer"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day this snapshot was built for"),
    sa.Column("run_id", sa.Text, comment="Dagster run that built it"),
)

ar_aging_report_buckets = sa.Table(
    "ar_aging_report_buckets",
    metadata,
    sa.Column("company_id", sa.BigInteger, primary_key=True, autoincrement=False,
              comment="Odoo company; -1: receivables without a company"),
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="commercial partner"),
    sa.Column("basis", sa.Text, primary_key=True, comment="company (company currency) or invoice (invoice currency)"),
    sa.Column("currency", sa.Text, primary_key=True, comment="ISO code of the amount's currency"),
    sa.Column("aging_bucket", sa.Text, primary_key=True, comment="bucket label of the policy (current, 1-30, ...)"),
    sa.Column("bucket_order", sa.Integer, nullable=False, comment="position of the bucket, from the youngest"),
    sa.Column("amount", Money, nullable=False, comment="residual in the bucket, in currency"),
    sa.Column("items", sa.Integer, nullable=False, comment="invoices or instalments in the bucket"),
    sa.Column("as_of_date", sa.Date, nullable=False, comment="business day this snapshot was built for"),
)

collection_kpis = sa.Table(
    "collection_kpis",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True, comment="business day the KPI is for"),
    sa.Column("company_id", sa.BigInteger, primary_key=True, autoincrement=False,
              comment="Odoo company; -1: receivables without a company"),
    sa.Column("kpi", sa.Text, primary_key=True, comment="see dunning_pipeline.reporting.kpis"),
    sa.Column("dimension", sa.Text, primary_key=True, comment="stage or aging bucket; '' for none"),
    sa.Column("company_currency", sa.Text, comment="ISO code of the company currency"),
    sa.Column("value", sa.Float, comment="days, percent or share; null: not computable (see note)"),
    sa.Column("amount", Money, comment="company currency, for amount KPIs"),
    sa.Column("numerator", sa.Float, comment="numerator of the KPI's formula"),
    sa.Column("denominator", sa.Float, comment="denominator of the KPI's formula"),
    sa.Column("source", sa.Text, nullable=False, comment="nightly, or reconstructed from dated source data"),
    sa.Column("note", sa.Text, comment="why a value is missing or how it was reconstructed"),
    sa.Column("run_id", sa.Text, comment="Dagster run that wrote the row"),
)
sa.Index("ix_collection_kpis_kpi", collection_kpis.c.kpi, collection_kpis.c.as_of_date)

"""Warehouse tables of the data-quality checks, on the shared metadata.

`data_quality_quarantine` holds the records currently held back from dunning: each check run
replaces the rows of its asset, so a record fixed in the source returns the next night.
"""

import sqlalchemy as sa

from dunning_pipeline.warehouse.schema import metadata

data_quality_quarantine = sa.Table(
    "data_quality_quarantine",
    metadata,
    sa.Column("asset", sa.Text, primary_key=True, comment="e.g. odoo_invoices"),
    sa.Column("record_id", sa.BigInteger, primary_key=True, comment="id of the held-back record in its table"),
    sa.Column("check_name", sa.Text, primary_key=True, comment="the asset check (rule) that failed"),
    sa.Column("field", sa.Text, comment="the field to fix in the source"),
    sa.Column("value", sa.Text, comment="the offending value, as text"),
    sa.Column("reason", sa.Text, nullable=False, comment="what is wrong, in words"),
    sa.Column("run_id", sa.Text, nullable=False, comment="Dagster run of the check"),
    sa.Column("quarantined_at", sa.DateTime, comment="UTC"),
    sa.Column("as_of_date", sa.Date, comment="the as-of date of the run that quarantined the record"),
)

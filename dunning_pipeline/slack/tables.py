"""Warehouse tables of the slack concern, on the shared metadata: the alert delivery ledger.

One `alert_deliveries` row per alert and period (what it covers, whether all of it reached
Slack) and one `alert_delivery_parts` row per message of that alert (the rendered payload, its
`ts` once posted). The ledger is what makes the weekly alert exactly-once: a part is posted only
while its row says it is not, and its `ts` is committed the moment Slack accepts it.
"""

import sqlalchemy as sa

from dunning_pipeline.warehouse.schema import metadata

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("alert", sa.Text, primary_key=True, comment="e.g. weekly_dunning"),
    sa.Column("period_end", sa.Date, primary_key=True, comment="as-of date of the run; inclusive"),
    sa.Column("period_start", sa.Date, comment="first as_of_date covered; null: from the beginning"),
    sa.Column("after_period_end", sa.Date,
              comment="period_end of the previous delivered alert: history after it is covered"),
    sa.Column("after_history_id", sa.BigInteger,
              comment="watermark of the previous alert: older-dated rows above it are covered too"),
    sa.Column("history_id_max", sa.BigInteger,
              comment="highest dunning_history.id dated up to period_end when this alert was rendered"),
    sa.Column("history_rows", sa.Integer, nullable=False, comment="dunning_history rows the alert covers"),
    sa.Column("invoices", sa.Integer, nullable=False, comment="invoices it names"),
    sa.Column("customers", sa.Integer, nullable=False, comment="customers it names"),
    sa.Column("channel", sa.Text, nullable=False, comment="the configured channel (name or id)"),
    sa.Column("parts", sa.Integer, nullable=False, comment="number of messages of this alert"),
    sa.Column("status", sa.Text, nullable=False, comment="pending, delivered or superseded"),
    sa.Column("created_run_id", sa.Text, nullable=False, comment="Dagster run that rendered the alert"),
    sa.Column("created_at", sa.DateTime, nullable=False, comment="UTC"),
    sa.Column("delivered_run_id", sa.Text, comment="Dagster run that posted its last part"),
    sa.Column("delivered_at", sa.DateTime, comment="UTC"),
)

alert_delivery_parts = sa.Table(
    "alert_delivery_parts",
    metadata,
    sa.Column("alert", sa.Text, primary_key=True, comment="alert_deliveries.alert"),
    sa.Column("period_end", sa.Date, primary_key=True, comment="alert_deliveries.period_end"),
    sa.Column("part", sa.Integer, primary_key=True, comment="1 is the top message; others reply in its thread"),
    sa.Column("text", sa.Text, nullable=False, comment="plain-text fallback"),
    sa.Column("blocks", sa.JSON, nullable=False, comment="Block Kit blocks as sent"),
    sa.Column("status", sa.Text, nullable=False, comment="pending, posting or posted"),
    sa.Column("claimed_by_run_id", sa.Text, comment="the run posting it (status posting) or that posted it"),
    sa.Column("claimed_at", sa.DateTime,
              comment="UTC; a claim older than the lease may be taken over (its run died or is elsewhere)"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0", comment="posts tried"),
    sa.Column("last_error", sa.Text, comment="Slack's error code of the last failed attempt"),
    sa.Column("channel_id", sa.Text, comment="channel id Slack answered with"),
    sa.Column("ts", sa.Text, comment="Slack message ts: the proof of delivery"),
    sa.Column("thread_ts", sa.Text, comment="ts of part 1 for the replies"),
    sa.Column("posted_at", sa.DateTime, comment="UTC"),
    sa.ForeignKeyConstraint(
        ["alert", "period_end"], ["alert_deliveries.alert", "alert_deliveries.period_end"],
        name="fk_alert_delivery_parts_delivery",
    ),
)

# The files attached to a posted part (the aging chart in part 1's thread): exactly once, like
# the parts; a row is claimed (`posting`) before the upload and `posted` with Slack's file id.
alert_delivery_files = sa.Table(
    "alert_delivery_files",
    metadata,
    sa.Column("alert", sa.Text, primary_key=True, comment="alert_deliveries.alert"),
    sa.Column("period_end", sa.Date, primary_key=True, comment="alert_deliveries.period_end"),
    sa.Column("part", sa.Integer, primary_key=True, comment="the part whose thread holds the file"),
    sa.Column("name", sa.Text, primary_key=True, comment="e.g. aging_chart"),
    sa.Column("status", sa.Text, nullable=False, comment="pending, posting or posted"),
    sa.Column("claimed_by_run_id", sa.Text, comment="the run uploading it (posting) or that uploaded it"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0", comment="uploads tried"),
    sa.Column("last_error", sa.Text, comment="Slack's error code of the last failed attempt"),
    sa.Column("file_id", sa.Text, comment="Slack file id: the proof of delivery"),
    sa.Column("title", sa.Text, comment="title shown in Slack"),
    sa.Column("size", sa.Integer, comment="bytes"),
    sa.Column("uploaded_at", sa.DateTime, comment="UTC"),
    sa.ForeignKeyConstraint(
        ["alert", "period_end", "part"],
        ["alert_delivery_parts.alert", "alert_delivery_parts.period_end", "alert_delivery_parts.part"],
        name="fk_alert_delivery_files_part",
    ),
)

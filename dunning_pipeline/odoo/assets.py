"""The Odoo extraction assets: customer invoices and customers, incremental by write_date.

Thin wiring (no `from __future__ import annotations`: Dagster reads the context annotation).
The work is in `extract.py` (paging, high-water mark, one transaction per asset),
`client.py` (HTTP) and `parse.py` (records -> typed frames).
"""


from datetime import UTC, datetime

import dagster as dg

from dunning_pipeline import lazy, money, runtime
from dunning_pipeline.odoo import parse
from dunning_pipeline.odoo.resource import OdooResource
from dunning_pipeline.warehouse import schema
from dunning_pipeline.warehouse.resource import WarehouseResource

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py).
pd = lazy.module("pandas")

GROUP = "odoo"
KINDS = {"odoo", "python"}
OWNERS = ["team:finance-data"]

# `extract` (and the HTTP client under it) is imported in the asset bodies: loading the code
# location does not need it.


# Concurrent Odoo calls across all runs are bounded by this pool (dagster.yaml `concurrency`).
POOL = "odoo"


INVOICE_SCHEMA = runtime.column_schema(schema.odoo_invoices)
CUSTOMER_SCHEMA = runtime.column_schema(schema.odoo_customers)


@dg.asset(
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    pool=POOL,
    metadata={"dagster/column_schema": INVOICE_SCHEMA, "odoo_model": parse.INVOICE_MODEL},
)
@runtime.serialized_step
def odoo_invoices(
    context: dg.AssetExecutionContext, odoo: OdooResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Customer invoices and credit notes from Odoo (`account.move`, move_type out_invoice or
    out_refund, in every state so cancellations are seen), one row per move, upserted by id.

    Incremental by `write_date` with a high-water mark stored in the same transaction as the
    rows; each night the moves held as open are re-read (state, payment state, residuals) so a
    payment committed after the mark passed its write_date is still fetched; amounts exact (NUMERIC(19,4)), in the invoice currency and, for the `*_signed`
    columns, in the company currency (negative for credit notes).
    """
    from dunning_pipeline.odoo import extract

    return _materialize(context, odoo, warehouse, extract.extract_invoices, INVOICE_SCHEMA)


@dg.asset(
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    pool=POOL,
    metadata={"dagster/column_schema": CUSTOMER_SCHEMA, "odoo_model": parse.PARTNER_MODEL},
)
@runtime.serialized_step
def odoo_customers(
    context: dg.AssetExecutionContext, odoo: OdooResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Partners from Odoo (`res.partner`, archived ones included), with their commercial
    partner (dunning is per commercial partner) and their tag names (customer segments),
    upserted by id, incremental by `write_date`.
    """
    from dunning_pipeline.odoo import extract

    return _materialize(context, odoo, warehouse, extract.extract_customers, CUSTOMER_SCHEMA)


LINE_SCHEMA = runtime.column_schema(schema.odoo_receivable_lines)


@dg.asset(
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    pool=POOL,
    deps=[odoo_invoices],
    metadata={"dagster/column_schema": LINE_SCHEMA, "odoo_model": parse.LINE_MODEL},
)
@runtime.serialized_step
def odoo_receivable_lines(
    context: dg.AssetExecutionContext, odoo: OdooResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The instalments of the customer moves: their receivable lines (`account.move.line` on the
    receivable account, display_type payment_term, posted), each with its own due date
    (`date_maturity`) and residual in company and invoice currency. `invoice_date_due` is only
    the last instalment's date; the aging follows these lines, as Odoo's Aged Receivable does.

    Read in bulk, paged by id, for every move `odoo_invoices` upserted since the last run (their
    stored lines are replaced), all of them on the first run.
    """
    from dunning_pipeline.odoo import extract

    wh = warehouse.get_warehouse()
    with odoo.get_client(on_retry=lambda msg: context.log.warning(f"Odoo: {msg}")) as client:
        client.check_connection()
        result = extract.extract_receivable_lines(
            client, wh, page_size=odoo.page_size,
            extracted_at=datetime.now(UTC).replace(tzinfo=None), log=context.log.info,
            known_on=runtime.run_as_of(context), run_id=context.run_id)
    return dg.MaterializeResult(metadata={
        "mode": result.mode,
        "moves_refreshed": result.moves,
        "fetched": result.fetched,
        "requests": result.pages,
        "rows_in_table": result.total_rows,
        "dagster/row_count": result.total_rows,
        "moves_extracted_up_to": result.synced_to or "none",
        "dagster/column_schema": LINE_SCHEMA,
    })


RECONCILIATION_SCHEMA = runtime.column_schema(schema.odoo_reconciliations)


@dg.asset(
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    pool=POOL,
    deps=[odoo_receivable_lines],
    metadata={"dagster/column_schema": RECONCILIATION_SCHEMA, "odoo_model": parse.RECONCILIATION_MODEL},
)
@runtime.serialized_step
def odoo_reconciliations(
    context: dg.AssetExecutionContext, odoo: OdooResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """What each payment and credit note settled of the customer moves' receivable lines, and
    when: `account.partial.reconcile` (amount in company currency, in each line's currency, and
    `max_date`, the day it counts from). The collection KPIs rebuild past days' balances from these.

    For every move `odoo_invoices` upserted since the last run, its lines' reconciliations are
    replaced by Odoo's (an undone reconciliation is deleted in Odoo: so it is here); all of them,
    paged by id, on the first run.
    """
    from dunning_pipeline.odoo import extract

    wh = warehouse.get_warehouse()
    with odoo.get_client(on_retry=lambda msg: context.log.warning(f"Odoo: {msg}")) as client:
        client.check_connection()
        result = extract.extract_reconciliations(
            client, wh, page_size=odoo.page_size,
            extracted_at=datetime.now(UTC).replace(tzinfo=None), log=context.log.info)
    return dg.MaterializeResult(metadata={
        "mode": result.mode,
        "moves_refreshed": result.moves,
        "fetched": result.fetched,
        "requests": result.pages,
        "rows_in_table": result.total_rows,
        "dagster/row_count": result.total_rows,
        "moves_extracted_up_to": result.synced_to or "none",
        "dagster/column_schema": RECONCILIATION_SCHEMA,
    })


def _materialize(context, odoo: OdooResource, warehouse: WarehouseResource, run_extract,
                 column_schema: dg.TableSchema) -> dg.MaterializeResult:
    wh = warehouse.get_warehouse()
    with odoo.get_client(on_retry=lambda msg: context.log.warning(f"Odoo: {msg}"),
                         on_warning=lambda msg: context.log.warning(f"Odoo: {msg}")) as client:
        version = client.check_connection()
        context.log.info(f"Odoo {version.label} at {client.url}, database {client.database}, via {client.protocol}")
        result = run_extract(
            client, wh,
            page_size=odoo.page_size,
            overlap_seconds=odoo.overlap_seconds,
            # When the rows were taken from Odoo: operational, not the business as-of date.
            extracted_at=datetime.now(UTC).replace(tzinfo=None),
            log=context.log.info,
            # The versions it records are known from the run's as-of day (warehouse/as_known.py).
            known_on=runtime.run_as_of(context), run_id=context.run_id,
        )
    metadata = {
        "odoo_version": version.label,
        "protocol": client.protocol,
        "mode": result.mode,
        "fetched": result.fetched,
        "changed": result.changed,
        "pages": result.pages,
        "rows_in_table": result.total_rows,
        "dagster/row_count": result.total_rows,
        "high_water_mark": result.high_water_mark or "none (no records)",
        "fetched_since": result.fetched_since or "everything (full extraction)",
        "dagster/column_schema": column_schema,
        "preview": runtime.markdown_preview(preview_frame(result.changed_preview)),
    }
    if result.open_verified is not None:
        metadata["open_moves_verified"] = result.open_verified
        metadata["late_changes_found"] = result.late_changes
    if result.unreadable_companies:
        metadata["unreadable_companies"] = ", ".join(result.unreadable_companies)
    for text in result.warnings:
        context.log.warning(f"Odoo: {text}")
    warnings = client.warnings + result.warnings
    if warnings:
        metadata["warnings"] = "\n".join(warnings)
    if result.notes:
        metadata["notes"] = "; ".join(result.notes)
    return dg.MaterializeResult(metadata=metadata)


def preview_frame(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Money columns as amounts with their currency ("1,234.50 EUR"), not 1/10,000 units."""
    out = frame.copy()
    for col in parse.MONEY_COLUMNS:
        if col not in out.columns:
            continue
        currency_col = "company_currency" if col.endswith("_signed") else "currency"
        out[col] = money.format_column(out[col], out[currency_col])
    return out

"""The collections workbench's worklist rollup as a nightly asset: built after the aging, so the
first worklist request of the day reads it instead of waiting for the rebuild (about 16 s at a
million invoices). The rebuild itself lives in `workbench.rollup`, shared with the workbench's
fallback."""

import dagster as dg

from dunning_pipeline import runtime
from dunning_pipeline.partitions import as_of_days
from dunning_pipeline.warehouse.resource import WarehouseResource

GROUP = "reporting"
OWNERS = ["team:finance-data"]
KINDS = {"sql"}
TABLES = ("workbench_worklist", "workbench_worklist_customers")


@dg.asset(group_name=GROUP, kinds=KINDS, owners=OWNERS, deps=["invoice_aging"], partitions_def=as_of_days)
@runtime.serialized_step
def workbench_worklist(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The workbench worklist's rollup of the day's aging snapshot: `workbench_worklist` (the
    dunned and held invoices summed per customer, company currency and filter value) and
    `workbench_worklist_customers` (today's dunned customers in the worklist's order), with the
    snapshot mark the workbench compares before reading them. Refused when the aging holds
    another day than the run's."""
    from dunning_pipeline.workbench import rollup  # the workbench's module: imported when the step runs

    as_of = runtime.run_as_of(context)
    wh = warehouse.get_warehouse()
    with wh.begin() as conn:
        mark = rollup.rebuild(conn)
        if mark is not None and not mark.startswith(as_of.isoformat()):  # raising rolls the rebuild back
            raise dg.Failure(f"invoice_aging holds the snapshot {mark}, this run's as-of is {as_of}: "
                             "materialize invoice_aging in this run first")
        for table in TABLES:
            runtime.record_build(context, wh, conn, table, as_of, inputs=("invoice_aging",))
        counts = {table: wh.count(table, conn=conn) for table in TABLES}
    context.log.info(f"built the worklist rollup of snapshot {mark}: "
                     + ", ".join(f"{n} rows in {t}" for t, n in counts.items()))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": counts["workbench_worklist"],
        "dagster/column_schema": runtime.column_schema("workbench_worklist"),
        "as_of_date": as_of.isoformat(),
        "snapshot": mark or "",
        "customers_rows": counts["workbench_worklist_customers"],
        "customers_column_schema": dg.MetadataValue.table_schema(runtime.column_schema("workbench_worklist_customers")),
    })


ASSETS = [workbench_worklist]

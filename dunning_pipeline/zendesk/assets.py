"""Zendesk assets: tickets and users (one export run, side-loaded together), and comments."""

from datetime import UTC, datetime

import dagster as dg

from dunning_pipeline import lazy, runtime
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.zendesk.resource import ZendeskResource

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py); `load`
# and `parse` (and the HTTP client under them) are imported in the asset bodies.
pd = lazy.module("pandas")

GROUP = "zendesk"
KINDS = {"zendesk", "python"}
OWNERS = ["team:finance-data"]

def _metadata(wh, table: str, fetched: "pd.DataFrame", written: int,
              preview_columns: list[str], extra: dict) -> dict:
    total = wh.count(table)
    return {
        "fetched_this_run": dg.MetadataValue.int(len(fetched)),
        "written_this_run": dg.MetadataValue.int(written),
        "total_rows": dg.MetadataValue.int(total),
        "dagster/row_count": dg.MetadataValue.int(total),
        "dagster/column_schema": runtime.column_schema(table),
        "preview": runtime.markdown_preview(fetched[preview_columns]),
        **extra,
    }


# Concurrent Zendesk calls across all runs are bounded by this pool (dagster.yaml `concurrency`).
POOL = "zendesk"


@dg.multi_asset(
    name="zendesk_tickets_and_users",
    pool=POOL,
    specs=[
        dg.AssetSpec(
            "zendesk_tickets",
            group_name=GROUP,
            kinds=KINDS,
            owners=OWNERS,
            description=(
                "Zendesk tickets, current state per ticket, from the incremental cursor export"
                " (resumed nightly from the stored cursor; newest `updated_at` wins; deleted"
                " tickets kept with status `deleted`)."
            ),
        ),
        dg.AssetSpec(
            "zendesk_users",
            group_name=GROUP,
            kinds=KINDS,
            owners=OWNERS,
            description=(
                "Zendesk users (customer contacts and agents): side-loaded with the tickets and"
                " kept current by the users incremental export."
            ),
        ),
    ],
    can_subset=False,
)
@runtime.serialized_step
def zendesk_tickets_and_users(
    context: dg.AssetExecutionContext, zendesk: ZendeskResource, warehouse: WarehouseResource
):
    """Export changed tickets (users side-loaded) and changed users from Zendesk; write both and
    their cursors in one warehouse transaction."""
    from dunning_pipeline.zendesk import load, parse

    wh = warehouse.get_warehouse()
    with zendesk.get_client(logger=context.log) as client:
        outcome = load.extract_tickets_and_users(
            client, wh, extracted_at=datetime.now(UTC), start_time=zendesk.start_time,
            log=context.log.info, warn=context.log.warning,
            # The versions it records are known from the run's as-of day (warehouse/as_known.py).
            known_on=runtime.run_as_of(context), run_id=context.run_id,
        )
    tickets, users = outcome.tickets, outcome.users
    newest = tickets["updated_at"].max() if not tickets.empty else None
    yield dg.MaterializeResult(
        asset_key="zendesk_tickets",
        metadata=_metadata(
            wh, "zendesk_tickets", tickets, outcome.tickets_written,
            ["id", "status", "subject", "requester_id", "updated_at"],
            {
                "pages": dg.MetadataValue.int(outcome.ticket_pages),
                "deleted_this_run": dg.MetadataValue.int(int((tickets["status"] == parse.DELETED).sum())),
                "cursor": dg.MetadataValue.text(outcome.tickets_cursor or ""),
                "next_start_time": dg.MetadataValue.int(outcome.tickets_start_time or 0),
                "resumed_from_cursor": dg.MetadataValue.bool(outcome.resumed),
                "cursor_restarted": dg.MetadataValue.bool(outcome.cursor_restarted),
                "records_with_parse_errors": dg.MetadataValue.int(int(tickets["parse_error"].notna().sum())),
                "records_left_out": dg.MetadataValue.text("\n".join(outcome.unstorable)),
                "newest_updated_at": dg.MetadataValue.text(
                    pd.Timestamp(newest).isoformat() if newest is not None else ""
                ),
            },
        ),
    )
    yield dg.MaterializeResult(
        asset_key="zendesk_users",
        metadata=_metadata(
            wh, "zendesk_users", users, outcome.users_written,
            ["id", "name", "email", "role", "organization_id"],
            {
                "pages": dg.MetadataValue.int(outcome.user_pages),
                "cursor": dg.MetadataValue.text(outcome.users_cursor or ""),
            },
        ),
    )


@dg.asset(
    name="zendesk_comments",
    pool=POOL,
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    deps=["zendesk_tickets", "zendesk_users"],
)
@runtime.serialized_step
def zendesk_comments(
    context: dg.AssetExecutionContext, zendesk: ZendeskResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Comments (the email history) added since the last run, public replies and internal
    notes, from Zendesk's ticket event export: one stream for the whole account resumed from its
    stored time mark, written page by page. Deleted tickets and agents' own tickets (no outside
    sender, CC or collaborator) are left out. A ticket with a redacted comment is fetched again
    on its own. When the export breaks off, what was fetched is kept (`stream_error`) and the
    next run resumes from the mark."""
    from dunning_pipeline.zendesk import load

    wh = warehouse.get_warehouse()
    with zendesk.get_client(logger=context.log) as client:
        outcome = load.extract_comment_events(client, wh, extracted_at=datetime.now(UTC),
                                              start_time=zendesk.start_time, log=context.log.info,
                                              warn=context.log.warning, known_on=runtime.run_as_of(context),
                                              run_id=context.run_id)
    return dg.MaterializeResult(
        metadata=_metadata(
            wh, "zendesk_comments", outcome.preview, outcome.written,
            ["id", "ticket_id", "author_id", "public", "created_at"],
            {
                "fetched_this_run": dg.MetadataValue.int(outcome.fetched),
                "pages": dg.MetadataValue.int(outcome.pages),
                "events": dg.MetadataValue.int(outcome.events),
                "start_time": dg.MetadataValue.int(outcome.start_time),
                "next_start_time": dg.MetadataValue.int(outcome.next_start_time),
                "resumed_from_mark": dg.MetadataValue.bool(outcome.resumed),
                "stream_error": dg.MetadataValue.text(outcome.stream_error or ""),
                "refetched_tickets": dg.MetadataValue.text(", ".join(map(str, outcome.refetched_tickets))),
                # Their comments are fetched again next run.
                "failed_tickets": dg.MetadataValue.json(
                    [{"ticket_id": t, "error": e} for t, e in outcome.refetch_failed.items()]),
                "records_with_parse_errors": dg.MetadataValue.int(outcome.parse_errors),
                "records_left_out": dg.MetadataValue.text("\n".join(outcome.unstorable)),
            },
        ),
    )

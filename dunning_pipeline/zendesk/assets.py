"""Zendesk assets: tickets and users (one export run, side-loaded together), and comments."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from dunning_pipeline import runtime
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.zendesk import load, parse
from dunning_pipeline.zendesk.resource import ZendeskResource

GROUP = "zendesk"
KINDS = {"zendesk", "python"}
OWNERS = ["team:finance-data"]

def _metadata(wh, table: str, fetched: pd.DataFrame, written: int,
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


@dg.multi_asset(
    name="zendesk_tickets_and_users",
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
def zendesk_tickets_and_users(
    context: dg.AssetExecutionContext, zendesk: ZendeskResource, warehouse: WarehouseResource
):
    """Export changed tickets (users side-loaded) and changed users from Zendesk; write both and
    their cursors in one warehouse transaction."""
    wh = warehouse.get_warehouse()
    with zendesk.get_client(logger=context.log) as client:
        outcome = load.extract_tickets_and_users(
            client, wh, extracted_at=datetime.now(UTC), start_time=zendesk.start_time,
            log=context.log.info, warn=context.log.warning,
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
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    deps=["zendesk_tickets", "zendesk_users"],
)
def zendesk_comments(
    context: dg.AssetExecutionContext, zendesk: ZendeskResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Comments (the email history) of the customer tickets changed since their comments were
    fetched: public replies and internal notes. Deleted tickets and agents' own tickets (no
    outside sender, CC or collaborator) are skipped. A ticket whose comments cannot be fetched
    is named in `failed_tickets` and retried next run; the others are written."""
    wh = warehouse.get_warehouse()
    with zendesk.get_client(logger=context.log) as client:
        outcome = load.extract_comments(client, wh, extracted_at=datetime.now(UTC), log=context.log.info,
                                        warn=context.log.warning,
                                        concurrency=zendesk.comments_concurrency)
    comments = outcome.comments
    return dg.MaterializeResult(
        metadata=_metadata(
            wh, "zendesk_comments", comments, outcome.written,
            ["id", "ticket_id", "author_id", "public", "created_at"],
            {
                "tickets_fetched": dg.MetadataValue.int(outcome.tickets),
                "pages": dg.MetadataValue.int(outcome.pages),
                "tickets_gone": dg.MetadataValue.int(len(outcome.skipped_tickets)),
                # Their comments stay due: the next run fetches them again.
                "failed_tickets": dg.MetadataValue.json(
                    [{"ticket_id": t, "error": e} for t, e in outcome.failed_tickets.items()]),
                "failed_ticket_ids": dg.MetadataValue.text(", ".join(map(str, outcome.failed_tickets))),
                "retried_tickets": dg.MetadataValue.text(", ".join(map(str, outcome.retried_tickets))),
                "deferred_tickets": dg.MetadataValue.int(len(outcome.deferred_tickets)),
                "records_with_parse_errors": dg.MetadataValue.int(int(comments["parse_error"].notna().sum())),
            },
        ),
    )

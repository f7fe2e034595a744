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

TICKET_DESCRIPTIONS = {
    "id": "Zendesk ticket id",
    "status": "new, open, pending, hold, solved, closed, or deleted",
    "requester_id": "zendesk_users.id of the requester",
    "tags": "JSON list of tags (dispute tags put invoices on hold; closed_by_merge on a merged ticket)",
    "via_channel": "how the ticket came in (email, web, api, ...; a via id is mapped to its name)",
    "from_address": "via.source.from.address: the sender of an email ticket (the customer of a forwarded mail)",
    "via_source_from_name": "via.source.from.name: the sender's name",
    "email_cc_ids": "JSON list of the user ids in CC",
    "collaborator_ids": "JSON list of the collaborators' user ids",
    "follower_ids": "JSON list of the followers' user ids",
    "parse_error": "why a field did not parse (the record is quarantined); null when fine",
    "updated_at": "last change in Zendesk (UTC); the newest copy wins",
    "extracted_at": "when this pipeline wrote the row (UTC)",
}
USER_DESCRIPTIONS = {
    "role": "end-user (a customer contact), agent or admin",
    "email": "null for contacts without one (phone contacts)",
    "active": "false: a deleted user",
    "suspended": "true: a suspended user (their mails land in the suspended queue)",
    "updated_at": "last change in Zendesk (UTC); the newest copy wins",
}
COMMENT_DESCRIPTIONS = {
    "ticket_id": "zendesk_tickets.id",
    "public": "false: an internal note, not sent to the customer",
    "body": "plain text of the comment",
}


def _metadata(wh, table: str, fetched: pd.DataFrame, written: int, descriptions: dict,
              preview_columns: list[str], extra: dict) -> dict:
    total = wh.count(table)
    return {
        "fetched_this_run": dg.MetadataValue.int(len(fetched)),
        "written_this_run": dg.MetadataValue.int(written),
        "total_rows": dg.MetadataValue.int(total),
        "dagster/row_count": dg.MetadataValue.int(total),
        "dagster/column_schema": runtime.column_schema(fetched, descriptions),
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
            # The versions it records are known from the run's as-of day (warehouse/as_known.py).
            known_on=runtime.run_as_of(context), run_id=context.run_id,
        )
    tickets, users = outcome.tickets, outcome.users
    newest = tickets["updated_at"].max() if not tickets.empty else None
    yield dg.MaterializeResult(
        asset_key="zendesk_tickets",
        metadata=_metadata(
            wh, "zendesk_tickets", tickets, outcome.tickets_written, TICKET_DESCRIPTIONS,
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
            wh, "zendesk_users", users, outcome.users_written, USER_DESCRIPTIONS,
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
                                        concurrency=zendesk.comments_concurrency,
                                        known_on=runtime.run_as_of(context), run_id=context.run_id)
    comments = outcome.comments
    return dg.MaterializeResult(
        metadata=_metadata(
            wh, "zendesk_comments", comments, outcome.written, COMMENT_DESCRIPTIONS,
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

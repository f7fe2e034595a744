"""The dunning engine as Dagster assets: a thin layer that reads the warehouse, calls the pure
pandas core (`receivables`, `communications`, `aging`, `history`) and writes the results back
in one transaction per asset, with the metadata finance people look at.

Lineage: odoo_* / zendesk_* -> receivables, customer_communications -> invoice_aging
-> dunning_history. `dunning_holds` is a table accountants fill by hand (an external asset).
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg
import sqlalchemy as sa

from dunning_pipeline import lazy, money, runtime, settings
from dunning_pipeline.check_severity import SeverityRule
from dunning_pipeline.partitions import as_of_days
from dunning_pipeline.warehouse.as_known import read_as_known
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse

if TYPE_CHECKING:
    from dunning_pipeline.dunning.policy import DunningPolicy

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py); the pure
# core (policy, receivables, communications, aging, history) is imported in the asset bodies.
pd = lazy.module("pandas")

GROUP = "dunning"
OWNERS = ["team:finance-data"]
KINDS = {"pandas", "sql"}

dunning_holds_spec = dg.AssetSpec(
    "dunning_holds",
    group_name=GROUP,
    owners=OWNERS,
    kinds={"sql"},
    description=(
        "Payment promises and manual exclusions that accountants enter in the warehouse table "
        "`dunning_holds` (customer or invoice, kind promise/exclusion, until, note, created_by). "
        "Honoured by invoice_aging from their effective date (default: the day they are created), "
        "by the nights that end after they were entered."
    ),
    metadata={"dagster/column_schema": runtime.column_schema("dunning_holds")},
)

_INVOICE_COLUMNS = [
    "id", "name", "move_type", "state", "payment_state", "partner_id", "partner_name", "commercial_partner_id",
    "company_id", "company_name", "currency", "company_currency", "invoice_date", "invoice_date_due",
    "amount_total", "amount_residual", "amount_total_signed", "amount_residual_signed", "write_date",
]

def _policy(context: dg.AssetExecutionContext) -> "DunningPolicy":
    from dunning_pipeline.dunning.policy import load_policy

    policy = load_policy()
    context.log.info(f"dunning policy: {policy.source}")
    return policy

def _quarantine(wh: Warehouse, as_of) -> "pd.DataFrame":
    """The quarantine as known at the end of the day (a replay sees that night's)."""
    return read_as_known(wh, "data_quality_quarantine", as_of,
                         columns=["asset", "record_id", "check_name", "field", "reason"])

def _totals_by_currency(frame: "pd.DataFrame", amount: str = "amount_residual") -> "pd.Series":
    return frame.groupby("currency")[amount].sum().astype("int64") if len(frame) else pd.Series(dtype="int64")

def _counts_md(frame: "pd.DataFrame", by: list[str], amount: str | None = None, currency: str | None = None) -> str:
    if frame.empty:
        return "_none_"
    if amount is None:
        table = frame.groupby(by, dropna=False).size().rename("count").reset_index()
    else:
        table = (frame.groupby([*by, currency], dropna=False)
                 .agg(count=(amount, "size"), amount=(amount, "sum")).reset_index())
        table["amount"] = [money.format_amount(int(a), c)  # one row per group, not per invoice
                           for a, c in zip(table["amount"], table[currency], strict=True)]
        table = table.drop(columns=[currency])
    return table.fillna("").to_markdown(index=False)

# -- receivables -------------------------------------------------------------------------------
@dg.asset(
    group_name=GROUP, kinds=KINDS, owners=OWNERS, deps=["odoo_invoices", "odoo_customers"], partitions_def=as_of_days,
)
@runtime.serialized_step
def receivables(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Open customer invoices and credit notes per commercial partner, as of the run's day.

    Posted out_invoice/out_refund, payment state not_paid, partial or blocked (still owed; held
    in the aging) with a residual above the policy's tolerance; in_payment kept and marked (not
    dunned). Amounts in invoice and company
    currency, signed (credit notes negative); customer attributes; segment and policy from the
    customer's Odoo tags. Records quarantined by the data-quality checks are left out and listed.
    """
    from dunning_pipeline.dunning.receivables import IN_PAYMENT, OPEN_PAYMENT_STATES, build_receivables

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    t = wh.table("odoo_invoices")
    # The extracts as known at the end of the day: a replay reads what that night read.
    invoices = read_as_known(wh, "odoo_invoices", as_of, columns=_INVOICE_COLUMNS, where=sa.and_(
        t.c.state == "posted", t.c.payment_state.in_([*OPEN_PAYMENT_STATES, IN_PAYMENT])))
    customers = read_as_known(wh, "odoo_customers", as_of)
    context.log.info(f"read {len(invoices)} open posted moves and {len(customers)} partners")
    recv, excluded = build_receivables(invoices, customers, policy, as_of, _quarantine(wh, as_of))
    if len(excluded):
        context.log.warning(f"{len(excluded)} open moves left out of dunning: "
                            + ", ".join(f"{r} ({n})" for r, n in excluded["reason"].value_counts().items()))
    totals = _totals_by_currency(recv[recv["receivable_status"] == "open"])
    # The metadata first, the write last: an asset never commits its table and then fails.
    metadata = {
        "dagster/row_count": len(recv),
        "dagster/column_schema": runtime.column_schema("receivables"),
        "as_of_date": as_of.isoformat(),
        "policy_file": policy.source,
        "customers": int(recv["customer_id"].nunique()),
        "by_status": dg.MetadataValue.md(_counts_md(recv, ["move_type", "receivable_status"],
                                                    "amount_residual", "currency")),
        "open_residual_by_currency": dg.MetadataValue.md(
            "\n".join(["| Currency | Open residual |", "|---|---:|"]
                      + [f"| {c} | {money.format_amount(int(v), c, with_code=False)} |" for c, v in totals.items()])
            if len(totals) else "_none_"),
        "by_segment": dg.MetadataValue.md(_counts_md(recv, ["segment", "policy"])),
        "excluded_count": len(excluded),
        "excluded": dg.MetadataValue.md(excluded.head(50).astype(object).fillna("").to_markdown(index=False)
                                        if len(excluded) else "_none_"),
        "preview": runtime.markdown_preview(runtime.money_display(
            recv[["invoice_id", "invoice_number", "move_type", "receivable_status", "customer_id", "customer_name",
                  "segment", "currency", "amount_residual", "invoice_date_due"]],
            {"amount_residual": "currency"})),
    }
    with wh.begin() as conn:
        wh.replace("receivables", recv, conn=conn)
        runtime.record_build(context, wh, conn, "receivables", as_of)
    context.log.info(f"wrote {len(recv)} receivables; {len(excluded)} left out")
    return dg.MaterializeResult(metadata=metadata)

# -- customer_communications -------------------------------------------------------------------
def _present(wh, table: str, wanted: list[str]) -> list[str]:
    """The wanted columns that the table has (newer extracts add some)."""
    have = set(wh.table(table).c.keys())
    return [c for c in wanted if c in have]


@dg.asset(
    group_name=GROUP, kinds=KINDS, owners=OWNERS,
    deps=["zendesk_tickets", "zendesk_users", "zendesk_comments", "odoo_customers", "odoo_invoices"],
    partitions_def=as_of_days,
)
@runtime.serialized_step
def customer_communications(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Zendesk tickets matched to customers and to the invoices they name.

    Customer by requester email, original sender (also of forwarded mail), CCs, collaborators,
    Zendesk organization, email domain or the tickets merged into it; invoices by their number in
    the forms customers write it, matched to that customer's own invoices. Last inbound and
    outbound contact per ticket and per customer; the holds the customer's own words make
    (`hold_kind`: dispute on an open ticket, payment_claimed for a few days). Tickets, comments
    and users quarantined by the data-quality checks are left out of the matching and listed.
    """
    from dunning_pipeline.dunning.communications import build_communications, leave_out_quarantined

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    tickets = read_as_known(wh, "zendesk_tickets", as_of)
    users = read_as_known(wh, "zendesk_users", as_of, columns=_present(wh, "zendesk_users", [
        "id", "email", "organization_id", "role", "active", "suspended"]))
    comments = read_as_known(wh, "zendesk_comments", as_of,
                             columns=["id", "ticket_id", "author_id", "public", "body", "created_at"])
    customers = read_as_known(wh, "odoo_customers", as_of, columns=["id", "email", "commercial_partner_id"])
    t = wh.table("odoo_invoices")
    invoices = read_as_known(wh, "odoo_invoices", as_of, columns=_present(wh, "odoo_invoices", [
        "id", "name", "state", "partner_id", "commercial_partner_id", "company_id"]), where=t.c.state == "posted")
    context.log.info(f"read {len(tickets)} tickets, {len(comments)} comments, {len(users)} users")
    tickets, users, comments, excluded = leave_out_quarantined(tickets, users, comments, _quarantine(wh, as_of))
    if len(excluded):
        context.log.warning(f"{len(excluded)} quarantined Zendesk records left out of the matching: "
                            + ", ".join(f"{a} ({n})" for a, n in excluded["asset"].value_counts().items()))
    comms = build_communications(tickets, users, comments, customers, invoices, policy, as_of, settings.timezone())
    disputes = comms[comms["is_dispute"]]
    claims = comms[comms["hold_kind"] == "payment_claimed"]
    by_ticket = comms.drop_duplicates("ticket_id")
    metadata = {  # before the write: an asset never commits its table and then fails
        "dagster/row_count": len(comms),
        "dagster/column_schema": runtime.column_schema("customer_communications"),
        "as_of_date": as_of.isoformat(),
        "tickets": len(by_ticket),
        "tickets_by_match": dg.MetadataValue.md(_counts_md(by_ticket, ["match_method"])),
        "unmatched_tickets": int((by_ticket["match_method"] == "unmatched").sum()),
        "invoice_mentions": int(comms["invoice_id"].notna().sum()),
        "open_disputes": len(disputes),
        "disputes": runtime.markdown_preview(
            disputes[["ticket_id", "customer_id", "invoice_number", "dispute_scope", "status", "subject"]]
            .astype(object).fillna(""), rows=20),
        "excluded_count": len(excluded),
        "excluded": dg.MetadataValue.md(excluded.head(50).astype(object).fillna("").to_markdown(index=False)
                                        if len(excluded) else "_none_"),
        "payment_claims": len(claims),
        "claims": runtime.markdown_preview(
            claims[["ticket_id", "customer_id", "invoice_number", "dispute_scope", "mentioned_at", "hold_until",
                    "subject"]].astype(object).fillna(""), rows=20),
        "preview": runtime.markdown_preview(
            comms[["ticket_id", "customer_id", "match_method", "invoice_number", "status", "is_dispute",
                   "last_inbound_at", "last_outbound_at"]]),
    }
    with wh.begin() as conn:
        wh.replace("customer_communications", comms, conn=conn)
        runtime.record_build(context, wh, conn, "customer_communications", as_of)
    context.log.info(f"wrote {len(comms)} rows; {len(disputes)} open disputes, {len(claims)} payment claims")
    return dg.MaterializeResult(metadata=metadata)

# -- invoice_aging -----------------------------------------------------------------------------
@dg.asset(
    group_name=GROUP, kinds=KINDS, owners=OWNERS,
    deps=[receivables, customer_communications, dunning_holds_spec, "odoo_receivable_lines"],
    partitions_def=as_of_days,
)
@runtime.serialized_step
def invoice_aging(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The aging table as of the run's day: one row per open invoice and credit note, and
    `instalment_aging`: one row per open instalment (receivable line), in its own bucket.

    An invoice's days overdue, bucket and stage follow its oldest open instalment (`due_date`,
    `instalment_number` of `instalments_total`); an invoice without lines is one instalment due
    on `invoice_date_due`. Days overdue, aging bucket, the stage its policy gives by the calendar and the stage in
    effect (frozen while on hold), the hold and why (exclusion, dispute, payment_claimed, promise, in_payment,
    net_credit, blocked), the residual after the customer's open credit notes, and per customer the net
    overdue balance and the highest stage. The bucket totals per currency reconcile with the
    open residual of `receivables` to the cent (checked, blocking the history if not).
    """
    from dunning_pipeline.dunning import aging as aging_mod
    from dunning_pipeline.dunning import history as history_mod

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    recv = runtime.read_of_day(wh, "receivables", as_of)
    comms = runtime.read_of_day(wh, "customer_communications", as_of)
    manual = wh.read("dunning_holds")
    customers = read_as_known(wh, "odoo_customers", as_of, columns=["id", "commercial_partner_id"])
    prev = history_mod.load_state(wh, as_of, active_only=True)
    lines = _receivable_lines(wh, recv, as_of)
    result = aging_mod.build_aging(recv, policy, as_of, settings.timezone(), communications=comms,
                                   manual_holds=manual, customers=customers, prev_state=prev,
                                   run_id=context.run_id, lines=lines)
    aging, instalments = result.aging, result.instalments

    # The buckets add up from the instalments: each in the bucket of its own due date.
    totals = aging_mod.bucket_totals(instalments, policy.all_bucket_labels())
    open_totals = _totals_by_currency(recv[recv["invoice_id"].isin(aging["invoice_id"])])
    held = aging[aging["dunning_status"] == aging_mod.ON_HOLD]
    metadata = {  # before the write: an asset never commits its tables and then fails
        "dagster/row_count": len(aging),
        "dagster/column_schema": runtime.column_schema("invoice_aging"),
        "as_of_date": as_of.isoformat(),
        "bucket_totals": dg.MetadataValue.md(aging_mod.bucket_totals_markdown(totals, open_totals)),
        "reconciles": bool(len(totals) == 0 or (totals.set_index("currency")["total"]
                                                == open_totals.reindex(totals["currency"]).fillna(0).to_numpy()).all()),
        "by_stage": dg.MetadataValue.md(
            _counts_md(aging[aging["stage"].notna()], ["stage"], "amount_residual", "currency")),
        "by_status": dg.MetadataValue.md(_counts_md(aging, ["dunning_status"])),
        "holds": dg.MetadataValue.md(_counts_md(held, ["hold_reason"], "amount_residual", "currency")),
        "on_hold": len(held),
        "instalments_open": len(instalments),
        "invoices_with_several_instalments": int((aging["instalments_total"] > 1).sum()),
        "invoices_without_lines": int(aging["invoice_id"].isin(
            instalments.loc[instalments["line_id"].isna(), "invoice_id"]).sum()),
        "customers_dunned": int(aging.loc[aging["dunning_status"] == aging_mod.DUNNED, "customer_id"].nunique()),
        "not_aged": dg.MetadataValue.md(result.excluded.astype(object).fillna("").to_markdown(index=False)
                                        if len(result.excluded) else "_none_"),
        "preview": runtime.markdown_preview(runtime.money_display(
            aging.sort_values("days_overdue", ascending=False)[
                ["invoice_number", "customer_name", "currency", "amount_residual", "due_date", "instalment_number",
                 "instalments_total", "days_overdue", "aging_bucket", "stage", "hold_reason"]],
            {"amount_residual": "currency"})),
    }
    with wh.begin() as conn:
        wh.replace("invoice_aging", aging, conn=conn)
        wh.replace("instalment_aging", instalments, conn=conn)
        for table in ("invoice_aging", "instalment_aging"):
            runtime.record_build(context, wh, conn, table, as_of, inputs=("receivables", "customer_communications"))
    context.log.info(f"wrote {len(aging)} aging rows and {len(instalments)} open instalments as of {as_of}")
    return dg.MaterializeResult(metadata=metadata)

AGING_RECONCILES = SeverityRule(error_when="a currency's buckets, an invoice's instalments or the set of aged "
                                           "invoices differ from the receivables by as much as a cent")


@dg.asset_check(asset=invoice_aging, blocking=AGING_RECONCILES.can_error, metadata=AGING_RECONCILES.metadata(),
                description=AGING_RECONCILES.describe(
    "The aging buckets (of the open instalments) add up, per currency and to the cent, to the "
    "open residual of the receivables; each invoice's instalments add up to its residual; and "
    "every receivable is aged or listed as not aged. Blocking: no history is recorded from an "
    "aging table that does not reconcile."))
def invoice_aging_reconciles(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get_warehouse()
    aging = wh.read("invoice_aging", columns=["invoice_id", "amount_residual"])
    instalments = wh.read("instalment_aging", columns=["invoice_id", "currency", "aging_bucket", "amount_residual"])
    instalments = instalments[instalments["invoice_id"].isin(aging["invoice_id"])]
    recv = wh.read("receivables", columns=["invoice_id", "currency", "amount_residual", "invoice_date_due",
                                           "invoice_date"])
    dated = recv[recv["invoice_date_due"].notna() | recv["invoice_date"].notna()]
    buckets = instalments.groupby(["currency", "aging_bucket"])["amount_residual"].sum().groupby(level=0).sum()
    expected = _totals_by_currency(dated)
    currencies = sorted(set(buckets.index) | set(expected.index))
    rows = [(c, int(buckets.get(c, 0)), int(expected.get(c, 0))) for c in currencies]
    diff = [r for r in rows if r[1] != r[2]]
    per_invoice = instalments.groupby("invoice_id")["amount_residual"].sum()
    split_wrong = aging.set_index("invoice_id")["amount_residual"] != per_invoice.reindex(aging["invoice_id"]).fillna(0)
    missing = (set(dated["invoice_id"]) ^ set(aging["invoice_id"])) | set(split_wrong[split_wrong].index)
    table = "\n".join(["| Currency | Buckets | Receivables | Difference |", "|---|---:|---:|---:|"] + [
        f"| {c} | {money.format_amount(b, c, with_code=False)} | {money.format_amount(e, c, with_code=False)} "
        f"| {money.format_amount(b - e, c, with_code=False)} |" for c, b, e in rows])
    return dg.AssetCheckResult(
        passed=not diff and not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"totals": dg.MetadataValue.md(table or "_no open receivables_"),
                  "invoices_not_matching": len(missing),
                  "sample_invoice_ids": dg.MetadataValue.text(", ".join(map(str, sorted(missing)[:20])))},
    )

def _receivable_lines(wh: Warehouse, recv: "pd.DataFrame", as_of) -> "pd.DataFrame":
    """The receivable lines of the day's receivables (as known that day), less those a
    data-quality check holds back (their invoice is then aged on its other lines, or on its own
    due date)."""
    from dunning_pipeline.dunning import instalments as instalments_mod
    from dunning_pipeline.dunning.receivables import quarantined_ids

    lines = read_as_known(wh, "odoo_receivable_lines", as_of, columns=instalments_mod.LINE_COLUMNS)
    lines = lines[lines["move_id"].isin(recv["invoice_id"])]
    return lines[~lines["id"].isin(quarantined_ids(_quarantine(wh, as_of), "odoo_receivable_lines"))]

# -- dunning_history ---------------------------------------------------------------------------
@dg.asset(
    group_name=GROUP, kinds=KINDS, owners=OWNERS, deps=[invoice_aging, "odoo_invoices"], partitions_def=as_of_days,
)
@runtime.serialized_step
def dunning_history(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The append-only audit log of dunning: one row per stage change of an invoice.

    Entering dunning, moving up (a jump over missed nights is one row with `stages_skipped`),
    hold and release, policy changes, and `closed` (paid, credited, cancelled) when an invoice
    leaves the open set; with the as-of day, run id, reason and residual at that time. Re-running
    a day adds nothing; a day before the latest recorded one records nothing (history is
    forward-only) and says so. The database refuses updates and deletes.
    """
    from dunning_pipeline.dunning import history as history_mod
    from dunning_pipeline.dunning.receivables import quarantined_ids

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    aging = runtime.read_of_day(wh, "invoice_aging", as_of)
    raw = read_as_known(wh, "odoo_invoices", as_of, columns=[
        "id", "move_type", "state", "payment_state", "company_id", "currency", "amount_residual",
        "amount_residual_signed"])
    excluded = quarantined_ids(_quarantine(wh, as_of), "odoo_invoices")
    recorded_at = datetime.now(UTC).replace(tzinfo=None)  # when it was written; the logic uses as_of only
    result = history_mod.record(wh, aging, raw, policy, as_of, context.run_id, recorded_at, excluded,
                                on_recorded=lambda conn: runtime.record_build(
                                    context, wh, conn, "dunning_history", as_of, inputs=("invoice_aging",)))
    rows = result.rows
    if result.skipped:
        context.log.warning(
            f"as-of {as_of} is before the latest recorded day {result.latest_recorded}: the history is "
            f"forward-only, nothing recorded (the aging table of {as_of} was still computed)")
    else:
        context.log.info(f"appended {len(rows)} history rows for {as_of}")
    total = wh.count("dunning_history")
    by_stage = (_counts_md(rows, ["from_stage", "to_stage", "reason"], "amount_residual", "currency")
                if len(rows) else ("_nothing recorded: as-of day before the latest recorded one_"
                                   if result.skipped else "_no stage changes_"))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": total,
        "dagster/column_schema": runtime.column_schema("dunning_history"),
        "as_of_date": as_of.isoformat(),
        "rows_appended": len(rows),
        "skipped_before_latest": result.skipped,
        # A backfilled or replayed day behind the history: its aging is recomputed, the chain is not.
        **({"history_not_rewritten": f"{as_of} is before the last recorded day {result.latest_recorded}"}
           if result.skipped else {}),
        "latest_recorded_before_run": result.latest_recorded.isoformat() if result.latest_recorded else "",
        "transitions_by_stage": dg.MetadataValue.md(by_stage),
        "entered": int((rows["from_stage"].isna()).sum()) if len(rows) else 0,
        "closed": int((rows["to_stage"] == "closed").sum()) if len(rows) else 0,
        "jumps": int((rows["stages_skipped"] > 0).sum()) if len(rows) else 0,
        "preview": runtime.markdown_preview(runtime.money_display(
            rows[["invoice_number", "customer_name", "from_stage", "to_stage", "reason", "stages_skipped",
                  "currency", "amount_residual"]], {"amount_residual": "currency"}) if len(rows) else rows),
    })

ASSETS = [receivables, customer_communications, invoice_aging, dunning_history]
ASSET_SPECS = [dunning_holds_spec]
ASSET_CHECKS = [invoice_aging_reconciles]

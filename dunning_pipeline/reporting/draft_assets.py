"""The customer timeline, the late-payment charges and the reminder drafts as Dagster assets.

A thin layer: read the warehouse, call the pure cores (`timeline`, `interest`, `drafts`,
`suggester`), write one snapshot per as-of day in one transaction, and show row counts and
markdown previews in the UI. Lineage: dunning_history, customer_communications and the Zendesk
tables -> customer_timeline; invoice_aging -> late_payment_charges; both -> reminder_drafts.
"""

import json
from typing import TYPE_CHECKING

import dagster as dg
import sqlalchemy as sa

from dunning_pipeline import lazy, money, runtime, settings
from dunning_pipeline.partitions import as_of_days
from dunning_pipeline.reporting.llm_resource import LlmSuggesterResource
from dunning_pipeline.warehouse import builds
from dunning_pipeline.warehouse.as_known import read_as_known
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse

if TYPE_CHECKING:
    from dunning_pipeline.dunning.policy import DunningPolicy

# Imported on first use, not when the code location loads (dunning_pipeline/lazy.py); the
# policy and the timeline, interest, drafts and suggester cores (Jinja2, Babel, requests) are
# imported in the functions that use them.
pd = lazy.module("pandas")

GROUP = "reporting"
OWNERS = ["team:finance-data"]
KINDS = {"pandas", "sql"}
INSTALMENT_TABLE = "instalment_aging"


def _policy(context: dg.AssetExecutionContext) -> "DunningPolicy":
    from dunning_pipeline.dunning.policy import load_policy

    policy = load_policy()
    context.log.info(f"dunning policy: {policy.source}")
    return policy


def _instalments(wh: Warehouse, *, overdue_only: bool = False) -> "pd.DataFrame":
    """The open instalments (written by invoice_aging beside it); or only the overdue ones."""
    if not overdue_only:
        return wh.read(INSTALMENT_TABLE)
    t = wh.table(INSTALMENT_TABLE)
    return wh.read(INSTALMENT_TABLE, columns=["invoice_id", "amount_residual", "days_overdue"],
                   where=sa.and_(t.c.days_overdue > 0, t.c.amount_residual > 0))


def _counts_md(counts: "pd.Series", label: str) -> str:
    if counts.empty:
        return "_none_"
    return "\n".join([f"| {label} | Rows |", "|---|---:|"] + [f"| {k} | {int(v)} |" for k, v in counts.items()])


# -- customer_timeline -------------------------------------------------------------------------
@dg.asset(
    group_name=GROUP, kinds=KINDS, owners=OWNERS,
    deps=["dunning_history", "customer_communications", "zendesk_comments", "zendesk_tickets", "zendesk_users",
          "odoo_invoices", "odoo_customers"],
    partitions_def=as_of_days,
)
@runtime.serialized_step
def customer_timeline(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Each customer's email history in one place: every Zendesk message (inbound or outbound,
    public or internal note, author, date, ticket, subject, text, the invoices it names)
    interleaved with the dunning events of the history (stage entered, hold, promise, release,
    closure), up to the as-of day. One row per event in `customer_timeline`; per customer an
    autoescaped HTML fragment (Jinja2) for the workbench in `customer_timeline_views`."""
    from dunning_pipeline.dunning import invoice_numbers
    from dunning_pipeline.dunning.receivables import commercial_partner_map
    from dunning_pipeline.reporting import timeline as timeline_mod

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    # Only the matched tickets' comments, and of the matching only who owns which ticket: the
    # timeline uses nothing else of them (at 1M moves, the bodies of every comment are the bulk).
    cc = wh.table("customer_communications").c
    matched = cc.customer_id.isnot(None)
    comms = runtime.read_of_day(wh, "customer_communications", as_of, columns=["ticket_id", "customer_id"],
                                where=matched)
    zc = wh.table("zendesk_comments").c
    comments = read_as_known(wh, "zendesk_comments", as_of, columns=list(timeline_mod.COMMENT_COLUMNS),
                             where=zc.ticket_id.in_(sa.select(cc.ticket_id).where(matched)))
    history = wh.read("dunning_history", where=wh.table("dunning_history").c.as_of_date <= as_of)
    customers = read_as_known(wh, "odoo_customers", as_of, columns=["id", "name", "commercial_partner_id"])
    t = wh.table("odoo_invoices")
    raw = read_as_known(wh, "odoo_invoices", as_of, columns=["id", "name", "partner_id", "commercial_partner_id", "company_id"],
                  where=sa.and_(t.c.state == "posted", t.c.name.isnot(None)))
    cp_of = commercial_partner_map(customers)
    invoices = pd.DataFrame({
        "invoice_id": raw["id"], "invoice_number": raw["name"], "company_id": raw["company_id"],
        "customer_id": raw["commercial_partner_id"].astype("Int64").fillna(
            raw["partner_id"].astype("Int64").map(cp_of).astype("Int64"))}).dropna(subset=["customer_id"])
    timeline = timeline_mod.build_timeline(
        comments,
        read_as_known(wh, "zendesk_tickets", as_of, columns=["id", "status", "subject", "requester_id"]),
        read_as_known(wh, "zendesk_users", as_of, columns=["id", "name", "role"]), comms, history, invoices,
        invoice_numbers.text_pattern(policy.holds.invoice_number_pattern, policy.holds.invoice_words),
        as_of, settings.timezone())
    del comments, history, raw, invoices  # in the timeline now; at 1M moves, hundreds of MB of message text
    names = customers.set_index(customers["id"].astype("int64"))["name"]
    prints = timeline_mod.fingerprints(timeline, names, timeline_mod.view_template_key(as_of, policy.templates_dir))
    held = _held_fingerprints(wh)
    changed = prints.index if held is None else prints.index[prints.ne(held.reindex(prints.index)).to_numpy()]
    gone = [] if held is None else held.index.difference(prints.index)
    mine = timeline[timeline["customer_id"].isin(changed)]
    views = timeline_mod.render_views(mine, names, as_of, policy.templates_dir)
    views["fingerprint"] = views["customer_id"].map(prints)
    with wh.begin() as conn:
        if held is None:
            wh.replace("customer_timeline", timeline, conn=conn)
            wh.replace("customer_timeline_views", views, conn=conn)
        else:
            _carry_over(wh, conn, as_of, [*changed.tolist(), *gone.tolist()], mine, views)
        for table in ("customer_timeline", "customer_timeline_views"):
            runtime.record_build(context, wh, conn, table, as_of, inputs=("customer_communications", "dunning_history"))
    context.log.info(f"{len(timeline)} timeline events of {len(prints)} customers: " + (
        "all written" if held is None else
        f"{len(changed)} customers changed since the last build (written), {len(gone)} gone, "
        f"{len(prints) - len(changed)} carried over"))
    views = wh.read("customer_timeline_views", columns=["customer_id", "customer_name", "events", "messages",
                                                              "last_message_at"])
    busiest = views.sort_values(["events", "customer_id"], ascending=[False, True]).head(10)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(timeline),
        "dagster/column_schema": runtime.column_schema("customer_timeline"),
        "as_of_date": as_of.isoformat(),
        "customers": len(views),
        "customers_written": len(changed),
        "messages": int((timeline["kind"] == timeline_mod.MESSAGE).sum()),
        "dunning_events": int((timeline["kind"] == timeline_mod.DUNNING).sum()),
        "by_event": dg.MetadataValue.md(_counts_md(timeline["event"].value_counts().sort_index(), "Event")),
        "busiest_customers": runtime.markdown_preview(busiest[["customer_id", "customer_name", "events", "messages",
                                                               "last_message_at"]]),
        "preview": runtime.markdown_preview(
            timeline[["customer_id", "seq", "day", "event", "author_name", "ticket_id", "invoice_numbers",
                      "invoice_number", "to_stage"]].assign(subject=timeline["subject"].str.slice(0, 40))),
    })


def _held_fingerprints(wh: Warehouse) -> "pd.Series | None":
    """customer_id -> fingerprint of the timeline the warehouse holds, or None when it cannot be
    carried over: never built (or before builds were recorded), its two tables not of one
    build, or a customer without a fingerprint (a view written before they were kept)."""
    with wh.begin() as conn:
        now = builds.current(wh, conn=conn)
        events, views = now.get("customer_timeline"), now.get("customer_timeline_views")
        if events is None or views is None or events.run_id != views.run_id:
            return None
        held = wh.read("customer_timeline_views", columns=["customer_id", "fingerprint"], conn=conn)
    if held["fingerprint"].isna().any():
        return None
    return pd.Series(held["fingerprint"].to_numpy(dtype=object), index=held["customer_id"].astype("int64").to_numpy())


_ID_CHUNK = 5_000


def _carry_over(wh: Warehouse, conn, as_of, rewritten: list[int], events: "pd.DataFrame", views: "pd.DataFrame") -> None:
    """In the build's transaction: the customers in `rewritten` (changed or gone) replaced by
    their new rows, every other customer's rows and view kept and moved to the as-of day."""
    for table in ("customer_timeline", "customer_timeline_views"):
        t = wh.table(table)
        for i in range(0, len(rewritten), _ID_CHUNK):
            wh.delete(table, t.c.customer_id.in_(rewritten[i:i + _ID_CHUNK]), conn=conn)
        conn.execute(t.update().where(t.c.as_of_date != as_of).values(as_of_date=as_of))
    wh.append("customer_timeline", events, conn=conn)
    wh.append("customer_timeline_views", views, conn=conn)


# -- late_payment_charges ----------------------------------------------------------------------
@dg.asset(group_name=GROUP, kinds=KINDS, owners=OWNERS, deps=["invoice_aging"], partitions_def=as_of_days)
@runtime.serialized_step
def late_payment_charges(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Late-payment interest and fees per overdue invoice as of the day, as the policy's
    `late_payment` section sets them per policy or segment (off by default: then empty).
    Interest = residual x days overdue x rate / 365, exact, rounded per currency; per overdue
    instalment when the instalment table exists. For the report and the drafts; never written
    to Odoo."""
    from dunning_pipeline.reporting import interest as interest_mod

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    # Only what can be charged is read: overdue open invoices, and none at all when the policy
    # charges nothing (the default), though the day of invoice_aging is still checked.
    t = wh.table("invoice_aging")
    chargeable = (sa.and_(t.c.move_type == "out_invoice", t.c.days_overdue > 0, t.c.amount_residual > 0)
                  if policy.charges_late_payment else sa.false())
    aging = runtime.read_of_day(wh, "invoice_aging", as_of, columns=list(interest_mod.AGING_COLUMNS),
                                where=chargeable)
    instalments = _instalments(wh, overdue_only=True) if len(aging) else None
    charges = interest_mod.late_payment_charges(aging, policy, instalments).assign(as_of_date=pd.Timestamp(as_of))
    with wh.begin() as conn:
        wh.replace("late_payment_charges", charges, conn=conn)
        runtime.record_build(context, wh, conn, "late_payment_charges", as_of,
                             inputs=("invoice_aging", INSTALMENT_TABLE))
    context.log.info(f"wrote {len(charges)} late-payment charge rows" if len(charges)
                     else "late-payment interest and fees are off in the policy: nothing charged")
    totals = charges.groupby("currency")[["interest_amount", "fee_amount"]].sum() if len(charges) else None
    table = ("_late-payment interest and fees are off in the policy_" if totals is None else "\n".join(
        ["| Currency | Interest | Fees |", "|---|---:|---:|"]
        + [f"| {c} | {money.format_amount(int(r.interest_amount), c, with_code=False)} | "
           f"{money.format_amount(int(r.fee_amount), c, with_code=False)} |" for c, r in totals.iterrows()]))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(charges),
        "dagster/column_schema": runtime.column_schema("late_payment_charges"),
        "as_of_date": as_of.isoformat(),
        "totals": dg.MetadataValue.md(table),
        "preview": runtime.markdown_preview(runtime.money_display(
            charges.sort_values("charges_total", ascending=False)[
                ["invoice_number", "customer_id", "currency", "days_overdue", "interest_rate_percent",
                 "interest_amount", "fee_amount", "charges_total"]],
            {c: "currency" for c in ("interest_amount", "fee_amount", "charges_total")})),
    })


# -- reminder_drafts ---------------------------------------------------------------------------
@dg.asset(
    group_name=GROUP, kinds=KINDS, owners=OWNERS,
    deps=[customer_timeline, late_payment_charges, "invoice_aging", "receivables"],
    partitions_def=as_of_days,
)
@runtime.serialized_step
def reminder_drafts(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    llm: LlmSuggesterResource) -> dg.MaterializeResult:
    """A reminder draft for each customer (and company) whose stage calls for an email or a letter
    today: subject and body in the customer's language (English, German, French; English when
    unknown), tone by stage, the overdue invoices (or instalments) with amounts and due dates in
    the customer's locale, the open credit, interest and fees when charged, disputed invoices
    named as under review, the last real conversation referred to. Templates are Jinja2 files
    (the policy's `drafts.templates_dir` overrides them). An optional OpenAI-compatible endpoint
    personalises the text; its answer is kept only if every invoice number and amount survives.
    Drafts are never sent."""
    from dunning_pipeline.reporting import drafts as drafts_mod
    from dunning_pipeline.reporting import suggester as suggester_mod
    from dunning_pipeline.reporting import timeline as timeline_mod

    as_of = runtime.run_as_of(context)
    policy = _policy(context)
    wh = warehouse.get_warehouse()
    # Only what the drafts use: first the dunned stages, to know who gets a draft today; then all
    # the invoices (credit notes included), overdue instalments, charges and public messages of
    # those customers. The rest of a million-invoice ledger is not read.
    ag = wh.table("invoice_aging").c
    stages = runtime.read_of_day(wh, "invoice_aging", as_of, columns=list(drafts_mod.STAGE_COLUMNS),
                                 where=sa.and_(ag.dunning_status == "dunned", ag.stage.isnot(None)))
    ids = drafts_mod.draft_customer_ids(stages)
    aging = runtime.read_of_day(wh, "invoice_aging", as_of, columns=list(drafts_mod.AGING_COLUMNS),
                                where=ag.customer_id.in_(ids))
    rc = wh.table("receivables").c
    recv = runtime.read_of_day(wh, "receivables", as_of, columns=[
        "customer_id", "company_id", "customer_name", "customer_email", "customer_lang", "company_name"],
        where=rc.customer_id.in_(ids))
    tl = wh.table("customer_timeline").c
    timeline = runtime.read_of_day(wh, "customer_timeline", as_of, columns=drafts_mod.TIMELINE_COLUMNS, where=sa.and_(
        tl.customer_id.in_(ids), tl.kind == timeline_mod.MESSAGE, tl.visibility == "public"))
    lc = wh.table("late_payment_charges").c
    charges = runtime.read_of_day(wh, "late_payment_charges", as_of, where=lc.customer_id.in_(ids))
    it = wh.table(INSTALMENT_TABLE).c
    instalments = wh.read(INSTALMENT_TABLE, columns=list(drafts_mod.INSTALMENT_COLUMNS),
                          where=sa.and_(it.customer_id.in_(ids), it.days_overdue > 0))
    customers = recv.drop_duplicates(["customer_id", "company_id"])
    drafts = drafts_mod.build_drafts(aging, customers, timeline, as_of, charges=charges,
                                     instalments=instalments, templates_dir=policy.templates_dir)
    suggester = llm.get_suggester()
    messages_of = suggester_mod.conversations(timeline[timeline["customer_id"].isin(drafts["customer_id"])])
    used = []
    for r in drafts.itertuples(index=False):
        s = suggester.suggest(
            language=drafts_mod.customer_locale(r.lang).language, subject=r.subject, body=r.body,
            invoice_numbers=json.loads(r.invoice_numbers) + json.loads(r.under_review),
            amounts=json.loads(r.amounts),
            messages=messages_of.get(int(r.customer_id), []))
        used.append({"body": s.body, "source": s.source, "source_note": s.note, "llm_model": s.model,
                     "llm_prompt": s.prompt, "llm_answer": s.answer})
    used = pd.DataFrame(used, index=drafts.index, columns=["body", "source", "source_note", "llm_model",
                                                             "llm_prompt", "llm_answer"])
    out = drafts.rename(columns={"body": "template_body"}).join(used)
    out = out.assign(status="draft", run_id=context.run_id)
    with wh.begin() as conn:
        wh.replace("reminder_drafts", out, conn=conn)
        runtime.record_build(context, wh, conn, "reminder_drafts", as_of, inputs=(
            "invoice_aging", "receivables", "customer_timeline", "late_payment_charges", INSTALMENT_TABLE))
    context.log.info(f"wrote {len(out)} reminder drafts (never sent); "
                     + ", ".join(f"{k}: {v}" for k, v in out["source"].value_counts().items()))
    if suggester.broken:
        context.log.warning(f"the suggester endpoint failed and was not asked again: {suggester.broken}")
    sample = out.head(1)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(out),
        "dagster/column_schema": runtime.column_schema("reminder_drafts"),
        "as_of_date": as_of.isoformat(),
        "by_language": dg.MetadataValue.md(_counts_md(out["locale"].value_counts().sort_index(), "Locale")),
        "by_stage": dg.MetadataValue.md(_counts_md(out["stage"].value_counts().sort_index(), "Stage")),
        "by_source": dg.MetadataValue.md(_counts_md(out["source"].value_counts().sort_index(), "Text used")),
        "preview": runtime.markdown_preview(out[["customer_id", "customer_name", "locale", "stage", "tone",
                                                 "subject", "demand_totals", "source"]]),
        "sample_draft": dg.MetadataValue.md(
            f"**{sample['subject'].iloc[0]}**\n\n```\n{sample['body'].iloc[0]}```" if len(sample) else "_no drafts_"),
    })


ASSETS = [customer_timeline, late_payment_charges, reminder_drafts]

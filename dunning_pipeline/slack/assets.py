"""The weekly Slack alert as an asset: thin wiring of `alert.deliver` into Dagster."""

import dagster as dg

from dunning_pipeline import runtime
from dunning_pipeline.slack.resource import SlackResource
from dunning_pipeline.warehouse.resource import WarehouseResource

# The policy and the alert's modules (slack_sdk under them) are imported in the asset's body:
# loading the code location does not need them.

GROUP = "slack"
OWNERS = ["team:finance-data"]
# Errors a re-run cannot fix: a person must change a setting or the Slack workspace first.
ALERT_JOB = "weekly_slack_alert"  # the one job that posts (slack/definitions.py)
_NEEDS_A_PERSON = {"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
                   "token_revoked", "token_expired", "account_inactive", "missing_scope"}


def _run_is_active(context: dg.AssetExecutionContext):
    def active(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id)
        # Unknown here: a run of another Dagster instance may be posting; its lease decides.
        return run is None or not run.is_finished
    return active


def _attach_chart(context: dg.AssetExecutionContext, wh, slack: SlackResource, as_of) -> str:
    """SLACK_ATTACH_CHART: the AR aging chart in the alert's thread, once per alert (the ledger's
    `alert_delivery_files`); a failed upload fails the run, whose retry uploads only the chart."""
    from dunning_pipeline.reporting.report_assets import latest_aging_chart
    from dunning_pipeline.slack.alert import WEEKLY_ALERT
    from dunning_pipeline.slack.attachment import attach_file
    from dunning_pipeline.slack.delivery import SlackDeliveryError

    chart = latest_aging_chart(wh)
    if chart is None:
        context.log.info("No AR aging report written yet: no chart to attach")
        return "no report yet"
    png, report_day = chart
    try:
        done = attach_file(wh, slack.poster(), alert=WEEKLY_ALERT, period_end=as_of, content=png,
                           filename=f"ar_aging_{report_day.isoformat()}.png",
                           title=f"Open receivables by aging bucket, {report_day.isoformat()}",
                           run_id=context.run_id, is_run_active=_run_is_active(context), log=context.log)
    except SlackDeliveryError as exc:
        raise dg.Failure(description=str(exc), metadata={"slack_error": exc.code},
                         allow_retries=exc.code not in _NEEDS_A_PERSON) from None
    return f"{done.status}" + (f" ({done.file_id})" if done.file_id else "")


# A one-asset multi_asset only so that the op gets its own name: the job is called
# `weekly_slack_alert` too, and Dagster wants op and job names distinct.
@dg.multi_asset(
    name="post_weekly_slack_alert",
    specs=[dg.AssetSpec(
        "weekly_slack_alert",
        group_name=GROUP,
        deps=["dunning_history"],
        kinds={"slack", "python"},
        owners=OWNERS,
        description=(
            "The accountants' weekly Slack message: every dunning stage change since the last"
            " alert that was actually delivered, up to the run's as-of date. One line per customer"
            " (needs action now, escalated, newly overdue, on hold, other, resolved, payment on its"
            " way), at its highest stage, amounts in the invoice's currency as of the current"
            " invoice_aging, links to Odoo and Zendesk, biggest amounts first; the first alert"
            " (or one after a long gap) opens with a summary and puts the rest in its thread. Delivered"
            " exactly once: the `alert_deliveries` ledger records each message's Slack ts, so"
            " re-runs post only what is missing. With SLACK_DRY_RUN the messages go to this"
            " run's metadata instead."
        ),
    )],
)
def weekly_slack_alert(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, slack: SlackResource
) -> dg.MaterializeResult:
    from dunning_pipeline.dunning.policy import load_policy
    from dunning_pipeline.slack.alert import AlertInProgressError, deliver, read_last_contact
    from dunning_pipeline.slack.delivery import SlackDeliveryError
    from dunning_pipeline.slack.digest import render_digest, to_markdown

    as_of = runtime.run_as_of(context)
    wh = warehouse.get_warehouse()
    dry_run = slack.is_dry_run()
    not_posted = None
    if context.job_name != ALERT_JOB:
        # "Materialize all" or an ad-hoc selection in the UI: the accountants' channel gets the
        # alert only from its own job (the weekly schedule, or an explicit launch of that job).
        not_posted = (f"run of {context.job_name}, not of the {ALERT_JOB} job: rendered, not posted"
                      f" (launch the {ALERT_JOB} job to post)")
        context.log.warning(f"The weekly alert is not posted from this run: {not_posted}")
        dry_run = True
    channel = slack.target_channel()
    links, limits = slack.links(), slack.limits()
    stages = load_policy().display_stages()
    last_contact = read_last_contact(wh, as_of)
    if last_contact is None:
        context.log.info("No customer_communications table with contact dates: lines omit the last contact")

    def render(history, period):
        return render_digest(history, period, links=links, stages=stages,
                             last_contact=last_contact, limits=limits)

    try:
        outcome = deliver(
            wh, None if dry_run else slack.poster(), period_end=as_of, channel=channel,
            run_id=context.run_id, render=render, is_run_active=_run_is_active(context),
            log=context.log, dry_run=dry_run, lease=slack.claim_lease(),
        )
    except SlackDeliveryError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={"slack_error": exc.code, "channel": channel},
            allow_retries=exc.code not in _NEEDS_A_PERSON,
        ) from None
    except AlertInProgressError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None

    period = outcome.period
    metadata = {
        "status": outcome.status,
        "dry_run": dry_run,
        **({"not_posted_because": not_posted} if not_posted else {}),
        "channel": channel,
        "period_start": period.start.isoformat() if period.start else "beginning of history",
        "period_end": period.end.isoformat(),
        "history_rows": dg.MetadataValue.int(outcome.history_rows),
        "late_history_rows": dg.MetadataValue.int(period.late_rows),
        "invoices_changed": dg.MetadataValue.int(outcome.invoices),
        "customers_changed": dg.MetadataValue.int(outcome.customers),
        "messages": dg.MetadataValue.int(len(outcome.messages)),
        "posted_this_run": dg.MetadataValue.int(len(outcome.posted_now)),
        "posted_before": dg.MetadataValue.int(outcome.posted_before),
        "message_ts": ", ".join(ts for _part, ts in outcome.posted_now) or "none",
    }
    if outcome.finished_earlier:
        metadata["finished_earlier_alerts"] = ", ".join(d.isoformat() for d in outcome.finished_earlier)
    if outcome.superseded:
        metadata["superseded_alerts"] = ", ".join(d.isoformat() for d in outcome.superseded)
    if outcome.messages:
        metadata["preview"] = dg.MetadataValue.md(to_markdown(outcome.messages))
    if dry_run:
        metadata["rendered_messages"] = dg.MetadataValue.json([m.to_dict() for m in outcome.messages])
    elif slack.attaches_chart():
        metadata["aging_chart"] = _attach_chart(context, wh, slack, as_of)
    context.log.info(
        f"Weekly alert {period.describe()}: {outcome.status}; {len(outcome.posted_now)} message(s)"
        f" posted this run, {outcome.posted_before} before"
    )
    return dg.MaterializeResult(metadata=metadata)

"""Failed nightly runs, posted to SLACK_ALERTS_CHANNEL with the error and a link to the run."""

import dagster as dg
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from dunning_pipeline import settings
from dunning_pipeline.schedules import nightly_dunning
from dunning_pipeline.slack.digest import AlertMessage, escape
from dunning_pipeline.slack.resource import SlackResource

# Few and short enough to stay far below Slack's cumulative text limit of one message.
_MAX_ERRORS = 5
_MAX_ERROR_CHARS = 1000


def _clip_error(text: str) -> str:
    text = text.strip()
    if len(text) <= _MAX_ERROR_CHARS:
        return text
    return text[: _MAX_ERROR_CHARS].rstrip() + " … (cut here; the full error is in the run)"


def render_run_failure(*, job_name: str, run_id: str, run_url: str, as_of: str | None,
                       run_error: str | None, step_errors: list[tuple[str, str]]) -> AlertMessage:
    """The failure message: what failed, for which business day, why, and where to look."""
    day = f" for as-of {escape(as_of)}" if as_of else ""
    head = (f":x: *{escape(job_name)} failed*{day}\n"
            f"<{run_url}|Open run {escape(run_id[:8])} in Dagster>")
    blocks = [SectionBlock(text=MarkdownTextObject(text=head))]
    for step, error in step_errors[:_MAX_ERRORS]:
        text = f"*{escape(step)}*\n```{escape(_clip_error(error))}```"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    if not step_errors and run_error:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"```{escape(_clip_error(run_error))}```")))
    if len(step_errors) > _MAX_ERRORS:
        more = len(step_errors) - _MAX_ERRORS
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"{more} more failed step{'s' if more != 1 else ''}: see the run")]))
    failed = ", ".join(step for step, _ in step_errors) or "before any step ran"
    text = f"{job_name} failed{(' for as-of ' + as_of) if as_of else ''} ({failed}): {run_url}"
    return AlertMessage(text, [b.to_dict() for b in blocks])


def _error_message(event: dg.DagsterEvent) -> str | None:
    """The user's error, not Dagster's wrapper: a Failure's description, else the root cause."""
    data = event.event_specific_data
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description
    error = getattr(data, "error", None)
    if error is None:
        return event.message
    # Dagster's "Error occurred while executing op ..." wraps the user's error; the user's own
    # cause (e.g. the ValueError behind a SettingsError) says less than the error itself.
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return (error.message or "").strip() or error.cls_name


@dg.run_failure_sensor(
    name="nightly_dunning_failure_to_slack",
    monitored_jobs=[nightly_dunning],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts each failed nightly_dunning run to SLACK_ALERTS_CHANNEL (else SLACK_CHANNEL):"
    " the failed steps with their errors and a link to the run in the Dagster UI"
    " (DAGSTER_WEBSERVER_URL).",
)
def nightly_dunning_failure_to_slack(context: dg.RunFailureSensorContext, slack: SlackResource) -> None:
    run = context.dagster_run
    steps = [(e.step_key or "run", _error_message(e) or "failed") for e in context.get_step_failure_events()]
    message = render_run_failure(
        job_name=run.job_name, run_id=run.run_id, run_url=slack.run_url(run.run_id),
        as_of=run.tags.get(settings.AS_OF_TAG), run_error=_error_message(context.failure_event),
        step_errors=steps,
    )
    channel, variable = slack.alerts_target()
    if slack.is_dry_run():
        context.log.info(f"Dry run: would post to {channel}: {message.text}")
        return
    posted = slack.poster(channel_var=variable).post(message.text, message.blocks, channel=channel)
    context.log.info(f"Posted the failure of run {run.run_id} to {channel} (ts {posted.ts})")

"""Failed runs of every job, posted to SLACK_ALERTS_CHANNEL with the error, the steps that
succeeded, failed and never ran, the reason of a killed run, and a link to the run."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg

from dunning_pipeline import settings
from dunning_pipeline.partitions import PARTITION_TAG
from dunning_pipeline.slack.resource import SlackResource

if TYPE_CHECKING:  # slack_sdk's blocks are imported when a message is rendered, not at load
    from dunning_pipeline.slack.digest import AlertMessage

# Few and short enough to stay far below Slack's cumulative text limit of one message.
_MAX_ERRORS = 5
_MAX_ERROR_CHARS = 1000


def _clip_error(text: str) -> str:
    text = text.strip()
    if len(text) <= _MAX_ERROR_CHARS:
        return text
    return text[: _MAX_ERROR_CHARS].rstrip() + " … (cut here; the full error is in the run)"


@dataclass(frozen=True)
class StepOutcome:
    """What became of each planned step of a failed run."""

    succeeded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # started, never finished (killed run)
    not_run: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [(self.succeeded, "succeeded"), (self.interrupted, "interrupted"),
                 (self.skipped, "skipped"), (self.not_run, "never ran")]
        return " · ".join(f"{label}: {', '.join(steps)}" for steps, label in parts if steps)


_EXIT = re.compile(r"(?:exit(?:ed)?(?: with)?(?: status| code)?|return code)[ :=]*(-?\d+)", re.I)
# A signal's name is upper case (SIGKILL); case-insensitive, "signal 9" would read as a signal called SIGNAL.
_SIGNAL = re.compile(r"\b(SIG(?!NAL\b)[A-Z]{2,})\b|(?i:signal) (\d+)")


def kill_reason(messages: list[str]) -> str | None:
    """The signal or exit status behind a run that died from outside, from the run's own event
    messages (run monitoring and the launcher write the worker's exit code there). 137 and -9 are
    SIGKILL, which on a Linux host is most often the out-of-memory killer."""
    for text in reversed(messages):
        found = _SIGNAL.search(text)
        if found:
            number = int(found.group(2)) if found.group(2) else getattr(signal, found.group(1).upper(), None)
            return _describe_signal(int(number)) if number is not None else found.group(1).upper()
        found = _EXIT.search(text)
        if found:
            code = int(found.group(1))
            if code < 0:
                return _describe_signal(-code)
            if code > 128:
                return f"exit code {code}: " + _describe_signal(code - 128)
            return f"exit code {code}"
    return None


def _describe_signal(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    if name == "SIGKILL":
        return "killed by SIGKILL (often the out-of-memory killer: check the host's memory)"
    if name in ("SIGTERM", "SIGINT"):
        return f"stopped by {name} (terminated or interrupted)"
    return f"killed by {name}"


def render_run_failure(*, job_name: str, run_id: str, run_url: str, as_of: str | None,
                       run_error: str | None, step_errors: list[tuple[str, str]],
                       steps: StepOutcome | None = None, killed: str | None = None) -> AlertMessage:
    """The failure message: what failed, for which business day, why, and where to look."""
    from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

    from dunning_pipeline.slack.digest import AlertMessage, escape

    day = f" for as-of {escape(as_of)}" if as_of else ""
    head = (f":x: *{escape(job_name)} failed*{day}\n"
            f"<{run_url}|Open run {escape(run_id[:8])} in Dagster>")
    if killed:
        head += f"\nThe run {escape(killed)}."
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
    if steps is not None and steps.summary():
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=escape(steps.summary()))]))
    failed = ", ".join(step for step, _ in step_errors)
    if not failed:
        interrupted = ", ".join(steps.interrupted) if steps is not None else ""
        failed = (f"{killed}" + (f" during {interrupted}" if interrupted else "") if killed
                  else "before any step ran")
    text = f"{job_name} failed{(' for as-of ' + as_of) if as_of else ''} ({failed}): {run_url}"
    return AlertMessage(text, [b.to_dict() for b in blocks])


def step_outcome(instance: dg.DagsterInstance, run: dg.DagsterRun) -> StepOutcome:
    """Planned steps (the run's execution plan) against the step events the run recorded."""
    planned: list[str] = []
    if run.execution_plan_snapshot_id:
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        planned = [s.key for s in plan.steps] if plan is not None else []
    events = instance.all_logs(run.run_id, of_type={
        dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED})
    seen: dict[str, str] = {}
    for entry in events:
        event = entry.dagster_event
        if event is not None and event.step_key:
            seen[event.step_key] = event.event_type_value
    done = {"STEP_SUCCESS": "succeeded", "STEP_SKIPPED": "skipped", "STEP_START": "interrupted"}
    out = StepOutcome()
    for key in planned or list(seen):
        status = done.get(seen.get(key, ""), "not_run" if key not in seen else None)
        if status is not None:
            getattr(out, status).append(key)
    return out


def _run_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run-level messages (failure, engine events) in which a kill's cause is written."""
    events = instance.all_logs(run_id, of_type={dg.DagsterEventType.RUN_FAILURE,
                                                dg.DagsterEventType.ENGINE_EVENT})
    return [e.message or (e.dagster_event.message if e.dagster_event else "") or "" for e in events]


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
    name="run_failure_to_slack",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts each failed run of every job of this code location (the nightly job, the"
    " weekly alert, hand-launched materializations) to SLACK_ALERTS_CHANNEL (else SLACK_CHANNEL):"
    " the failed steps with their errors, the steps that succeeded and never ran, the signal of a"
    " killed run, and a link to the run in the Dagster UI (DAGSTER_WEBSERVER_URL).",
)
def run_failure_to_slack(context: dg.RunFailureSensorContext, slack: SlackResource) -> None:
    run = context.dagster_run
    errors = [(e.step_key or "run", _error_message(e) or "failed") for e in context.get_step_failure_events()]
    message = render_run_failure(
        job_name=run.job_name, run_id=run.run_id, run_url=slack.run_url(run.run_id),
        as_of=run.tags.get(settings.AS_OF_TAG) or run.tags.get(PARTITION_TAG), run_error=_error_message(context.failure_event),
        step_errors=errors, steps=step_outcome(context.instance, run),
        killed=None if errors else kill_reason(_run_messages(context.instance, run.run_id)),
    )
    channel, variable = slack.alerts_target()
    if slack.is_dry_run():
        context.log.info(f"Dry run: would post to {channel}: {message.text}")
        return
    posted = slack.poster(channel_var=variable).post(message.text, message.blocks, channel=channel)
    context.log.info(f"Posted the failure of run {run.run_id} to {channel} (ts {posted.ts})")

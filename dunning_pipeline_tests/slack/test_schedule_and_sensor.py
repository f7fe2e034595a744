"""The weekly schedule (time zone, configurable cron, run keys) and the run-failure sensor,
evaluated by Dagster against real failed runs on a test instance."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dunning_pipeline.schedules import nightly_dunning
from dunning_pipeline.settings import SettingsError
from dunning_pipeline.slack.definitions import (
    alert_cron,
    build_weekly_schedule,
    defs,
    weekly_slack_alert_schedule,
)
from dunning_pipeline.slack.delivery import SlackDeliveryError
from dunning_pipeline.slack.resource import SlackResource
from dunning_pipeline.slack.sensors import (
    StepOutcome,
    kill_reason,
    render_run_failure,
    run_failure_to_slack,
    step_outcome,
)
from dunning_pipeline.warehouse.resource import WarehouseResource


def test_the_weekly_schedule_runs_monday_at_eight_and_tags_the_run_with_its_day():
    assert weekly_slack_alert_schedule.cron_schedule == "0 8 * * 1"
    assert weekly_slack_alert_schedule.job_name == "weekly_slack_alert"
    berlin = build_weekly_schedule("0 8 * * 1", "Europe/Berlin")
    # 08:00 in Berlin is still Monday; the business day is the tick's day in that zone.
    tick = datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    request = berlin.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests[0]
    assert request.run_key == "weekly-slack-2026-03-02"  # a duplicate tick gets the same key
    assert request.tags["dunning/as_of"] == "2026-03-02"
    resources = {"slack": SlackResource(bot_token="xoxb-unused", channel="#dunning"),
                 "warehouse": WarehouseResource()}
    job = dg.Definitions.merge(defs, dg.Definitions(resources=resources)).resolve_job_def("weekly_slack_alert")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {"weekly_slack_alert"}


def test_the_alert_time_is_configurable_and_a_bad_cron_names_the_variable():
    assert alert_cron({}) == "0 8 * * 1"
    assert alert_cron({"DUNNING_ALERT_CRON": "30 7 * * 2"}) == "30 7 * * 2"
    assert build_weekly_schedule("30 7 * * 2", "UTC").cron_schedule == "30 7 * * 2"
    with pytest.raises(SettingsError, match=r"DUNNING_ALERT_CRON='every monday' is not a cron expression"):
        build_weekly_schedule("every monday", "UTC")


@dg.asset(name="odoo_invoices", group_name="odoo")
def failing_odoo_invoices():
    # The alert shows this error, not its cause: the message that says what to fix.
    raise ValueError("Odoo answered <html> & gave up") from KeyError("a detail of the parser")


def test_a_failed_nightly_run_is_posted_to_the_alerts_channel_with_the_error_and_a_link(sandbox, monkeypatch):
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "https://dagster.acme.example")
    slack = SlackResource(bot_token=sandbox.env["SLACK_BOT_TOKEN"], channel="#dunning",
                          alerts_channel="#dunning-alerts", api_url=sandbox.slack_api_url)
    other = dg.define_asset_job("other_job", selection=[failing_odoo_invoices])
    location = dg.Definitions(assets=[failing_odoo_invoices], jobs=[nightly_dunning, other],
                              sensors=[run_failure_to_slack], resources={"slack": slack})
    repo = location.get_repository_def()
    with dg.instance_for_test() as instance:
        def tick(cursor=None):
            ctx = dg.build_sensor_context(instance=instance, repository_def=repo, cursor=cursor,
                                          resources={"slack": slack})
            return run_failure_to_slack.evaluate_tick(ctx).cursor

        cursor = tick()  # the first tick only starts watching
        failed = location.resolve_job_def("nightly_dunning").execute_in_process(
            instance=instance, raise_on_error=False, tags={"dunning/as_of": "2026-03-02"})
        other_run = location.resolve_job_def("other_job").execute_in_process(
            instance=instance, raise_on_error=False)
        assert not failed.success
        cursor = tick(cursor)
        tick(cursor)  # the same failure is not posted twice

    run_id = failed.run_id
    url = f"https://dagster.acme.example/runs/{run_id}"
    # Every job is watched, not only the nightly one.
    assert [m["text"] for m in sandbox.slack_messages[1:]] == [
        f"other_job failed (odoo_invoices): https://dagster.acme.example/runs/{other_run.run_id}"]
    assert sandbox.slack_messages[:1] == [{
        "channel": "C0SBXALRT02", "channel_name": "#dunning-alerts", "ts": sandbox.slack_messages[0]["ts"],
        "unfurl_links": False, "unfurl_media": False,
        "text": f"nightly_dunning failed for as-of 2026-03-02 (odoo_invoices): {url}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text":
                f":x: *nightly_dunning failed* for as-of 2026-03-02\n<{url}|Open run {run_id[:8]} in Dagster>"}},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "*odoo_invoices*\n```ValueError: Odoo answered &lt;html&gt; &amp; gave up```"}},
        ],
    }]


def _failed_nightly(instance: dg.DagsterInstance, slack: SlackResource, error: Exception):
    """A failed run of a one-op job named nightly_dunning raising `error`, and the failure
    sensor's context for it."""
    @dg.op
    def extract():
        raise error

    @dg.job(name="nightly_dunning")
    def nightly():
        extract()

    result = nightly.execute_in_process(instance=instance, raise_on_error=False)
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_to_slack", dagster_event=result.get_run_failure_event(),
        dagster_instance=instance, dagster_run=result.dagster_run, resources={"slack": slack},
    ).for_run_failure()
    return result, ctx


def test_without_an_alerts_channel_failures_go_to_the_alert_channel_and_the_default_ui_url(sandbox, monkeypatch):
    monkeypatch.delenv("DAGSTER_WEBSERVER_URL", raising=False)
    slack = SlackResource(bot_token=sandbox.env["SLACK_BOT_TOKEN"], channel="#dunning",
                          api_url=sandbox.slack_api_url)
    with dg.instance_for_test() as instance:
        result, ctx = _failed_nightly(
            instance, slack, dg.Failure(description="ODOO_API_KEY was rejected: create a new key"))
        run_failure_to_slack(ctx)
    (message,) = sandbox.slack_messages
    assert message["channel"] == "C0SBXDUNN01"
    assert message["text"] == f"nightly_dunning failed (extract): http://localhost:3000/runs/{result.run_id}"
    assert message["blocks"][1]["text"]["text"] == "*extract*\n```ODOO_API_KEY was rejected: create a new key```"


def test_long_failures_are_cut_visibly_and_extra_steps_are_counted():
    message = render_run_failure(
        job_name="nightly_dunning", run_id="abcdef0123456789", run_url="http://ui/runs/abcdef0123456789",
        as_of=None, run_error=None,
        step_errors=[(f"step_{i}", "x" * 1500 if i == 0 else "boom") for i in range(7)],
    )
    texts = [b["text"]["text"] if "text" in b else b["elements"][0]["text"] for b in message.blocks]
    assert texts[1] == "*step_0*\n```" + "x" * 1000 + " … (cut here; the full error is in the run)```"
    assert texts[2:6] == ["*step_1*\n```boom```", "*step_2*\n```boom```", "*step_3*\n```boom```",
                          "*step_4*\n```boom```"]
    assert texts[6] == "2 more failed steps: see the run"
    assert message.text == ("nightly_dunning failed (step_0, step_1, step_2, step_3, step_4, step_5, step_6):"
                            " http://ui/runs/abcdef0123456789")


def test_a_missing_alerts_channel_fails_the_sensor_and_names_its_variable(sandbox):
    slack = SlackResource(bot_token=sandbox.env["SLACK_BOT_TOKEN"], channel="#dunning",
                          alerts_channel="#no-alerts-here", api_url=sandbox.slack_api_url)
    with dg.instance_for_test() as instance:
        _result, ctx = _failed_nightly(instance, slack, ValueError("down"))
        with pytest.raises(SlackDeliveryError, match=r"'#no-alerts-here' \(SLACK_ALERTS_CHANNEL\) was not found"):
            run_failure_to_slack(ctx)
    assert sandbox.slack_messages == []


def test_the_alert_says_which_steps_succeeded_failed_and_never_ran(sandbox):
    slack = SlackResource(bot_token=sandbox.env["SLACK_BOT_TOKEN"], channel="#dunning",
                          api_url=sandbox.slack_api_url)

    @dg.op
    def extract():
        return 1

    @dg.op
    def age(x):
        raise ValueError("receivables of another day")

    @dg.op
    def record(y):
        return y

    @dg.job(name="weekly_slack_alert")
    def three_steps():
        record(age(extract()))

    with dg.instance_for_test() as instance:
        result = three_steps.execute_in_process(instance=instance, raise_on_error=False)
        assert step_outcome(instance, result.dagster_run) == StepOutcome(succeeded=["extract"], not_run=["record"])
        ctx = dg.build_run_status_sensor_context(
            sensor_name="run_failure_to_slack", dagster_event=result.get_run_failure_event(),
            dagster_instance=instance, dagster_run=result.dagster_run, resources={"slack": slack},
        ).for_run_failure()
        run_failure_to_slack(ctx)
    (message,) = sandbox.slack_messages
    assert message["text"].startswith("weekly_slack_alert failed (age): ")
    assert message["blocks"][-1]["elements"][0]["text"] == "succeeded: extract · never ran: record"


def test_a_killed_run_is_alerted_with_its_signal_not_as_before_any_step_ran(sandbox):
    slack = SlackResource(bot_token=sandbox.env["SLACK_BOT_TOKEN"], channel="#dunning",
                          api_url=sandbox.slack_api_url)

    @dg.op
    def extract():
        return 1

    @dg.job(name="nightly_dunning")
    def nightly():
        extract()

    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(nightly, tags={"dunning/as_of": "2026-03-02"})
        instance.report_run_failed(  # what run monitoring records when the worker process dies
            run, "Run execution process for run " + run.run_id + " unexpectedly exited with exit code -9.")
        failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
        ctx = dg.build_run_status_sensor_context(
            sensor_name="run_failure_to_slack", dagster_event=failure, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(run.run_id), resources={"slack": slack},
        ).for_run_failure()
        run_failure_to_slack(ctx)
    (message,) = sandbox.slack_messages
    assert "before any step ran" not in message["text"]
    assert "killed by SIGKILL (often the out-of-memory killer" in message["text"]
    assert "killed by SIGKILL" in message["blocks"][0]["text"]["text"]


@pytest.mark.parametrize(("messages", "expected"), [
    (["Run worker exited with exit code -15"], "stopped by SIGTERM (terminated or interrupted)"),
    (["process finished", "return code 137"], "exit code 137: killed by SIGKILL (often the out-of-memory killer: check the host's memory)"),
    (["received SIGINT"], "stopped by SIGINT (terminated or interrupted)"),
    # Dagster's own words (`get_run_crash_explanation`): the signal by number, then by name.
    (["Run execution process for run 1f2e was terminated by signal 9 (SIGKILL). This usually indicates"
      " that the process was killed by the operating system due to running out of memory."],
     "killed by SIGKILL (often the out-of-memory killer: check the host's memory)"),
    (["Run execution process for run 1f2e unexpectedly exited with code 3."], "exit code 3"),
    (["Signal 15 received"], "stopped by SIGTERM (terminated or interrupted)"),
    (["The run was interrupted by a signal."], None),
    (["This run has been marked as failed from outside the execution context."], None),
])
def test_kill_reasons_are_read_from_the_run_messages(messages, expected):
    assert kill_reason(messages) == expected

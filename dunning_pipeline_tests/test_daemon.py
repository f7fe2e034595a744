"""The production instance with the real `dagster-daemon` and `dagster-webserver`: what dagster.yaml
promises holds when runs are launched as the UI launches them (GraphQL).

On a fresh PostgreSQL database (run, event and schedule storage, from the repository's dagster.yaml)
and the sandbox: two runs of the nightly job for the same day, launched at once, run one after the
other; a week's backfill (as the UI launches one over a range of the partition bar) runs its seven days
in date order, one at a time, although its runs carry none of the job's tags; and the history and
the aging it leaves equal those of the same nights run one by one. Then, in the same session: a run refused by
Odoo (a wrong key) is not retried; the nightly schedule ticks (DUNNING_NIGHTLY_CRON every minute)
into a night that Odoo fails with 503s beyond the client's retries, which the daemon retries as a
new run of only the failed and unrun steps; and each failure reaches the sandbox Slack's alerts
channel naming the steps that succeeded, failed and never ran. The runs compute the day-partitioned dunning
assets on extracts loaded once beforehand, which keeps the test to a few minutes on a small host;
the queue's limits do not depend on which assets a run selects.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests
from dagster._core.test_utils import environ
from dagster_graphql import DagsterGraphQLClient

from dunning_pipeline.dunning.history import HISTORY_COLUMNS
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline_tests.conftest import production_instance_env

pytestmark = [pytest.mark.daemon, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "dunning_pipeline"  # workspace.yaml
NIGHT = "2026-03-02"
BACKFILL_DAYS = [f"2026-03-{day:02d}" for day in range(3, 10)]  # a week, as the UI backfills one
TIMEOUT = 300  # generous: the daemon polls every few seconds, each run starts a process

START_SCHEDULE = """
mutation($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message stack }
  }
}
"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, done, timeout: float = TIMEOUT, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def sandbox_env(tmp_path):
    from dunning_pipeline.sandbox import Sandbox

    # Small, and without the sandbox's export rate limit: this test is about the instance.
    with Sandbox(seed=7, customers=12, invoices=90, as_of=date(2026, 3, 2),
                 zendesk_export_limit_per_minute=None) as sb:
        yield sb


@pytest.fixture
def dagster_services(tmp_path, pg_database, sandbox_env):
    """`dagster-daemon run` and `dagster-webserver` on DAGSTER_HOME with the production dagster.yaml;
    yields (graphql client, instance, environment, warehouse URL)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DUNNING_"))}
    env.update(sandbox_env.env)
    env.update(production_instance_env(home, pg_database))
    env.update({"DAGSTER_HOME": str(home), "DUNNING_DATABASE_URL": warehouse_url, "DUNNING_TIMEZONE": "UTC",
                "GX_ANALYTICS_ENABLED": "False",
                # The schedule ticks within the test; it is started only once the nights are checked.
                "DUNNING_NIGHTLY_CRON": "* * * * *", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    for name, cmd in (("webserver", ["dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]),
                      ("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"])):
        out = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen([str(BIN / cmd[0]), *cmd[1:]], cwd=REPO, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True), out))
    try:
        _wait("the webserver", lambda: _answers(f"http://127.0.0.1:{port}/server_info"), timeout=120)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        with environ({k: v for k, v in env.items() if k.startswith("DAGSTER_")}):
            with dg.DagsterInstance.from_config(str(home)) as instance:
                yield client, instance, env, warehouse_url
    finally:
        for proc, out in procs:  # the process group: the code servers and run workers too
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, out in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            out.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _settled(run) -> bool:
    # Dagster marks a run failed first and tags it `dagster/will_retry` just after, in a second
    # write: a failed run is read only once it carries that verdict.
    return run.is_finished and (run.status != dg.DagsterRunStatus.FAILURE or "dagster/will_retry" in run.tags)


def _finished(instance, run_ids):
    records = instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids)))
    if len(records) == len(run_ids) and all(_settled(r.dagster_run) for r in records):
        return sorted(records, key=lambda r: r.start_time)
    return None


def _never_overlap(records) -> None:
    spans = sorted((r.start_time, r.end_time, r.dagster_run.run_id) for r in records)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"run {second} started at {start} before run {first} ended at {end}"


def _history(url: str) -> pd.DataFrame:
    wh = Warehouse(url)
    try:
        frame = wh.read("dunning_history", columns=[c for c in HISTORY_COLUMNS if c not in ("run_id", "recorded_at")])
    finally:
        wh.dispose()
    return frame.sort_values(["as_of_date", "invoice_id", "to_stage"]).reset_index(drop=True)


def _aging(url: str) -> pd.DataFrame:
    """The aging as the last day left it, without the run that built it."""
    wh = Warehouse(url)
    try:
        frame = wh.read("invoice_aging").drop(columns=["run_id"])
    finally:
        wh.dispose()
    return frame.sort_values(["invoice_id", "instalment_number"]).reset_index(drop=True)


def _fill_extracts(env: dict[str, str], url: str, monkeypatch) -> None:
    """The extract tables from the sandbox, in process: the runs under test start from them."""
    from dunning_pipeline import definitions as top
    from dunning_pipeline.odoo.assets import odoo_customers, odoo_invoices, odoo_receivable_lines
    from dunning_pipeline.zendesk.assets import zendesk_comments, zendesk_tickets_and_users

    for name, value in env.items():
        if name.startswith(("ODOO_", "ZENDESK_", "DUNNING_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("DUNNING_DATABASE_URL", url)
    assert dg.materialize([odoo_customers, odoo_invoices, odoo_receivable_lines, zendesk_tickets_and_users,
                           zendesk_comments], resources=top.build_resources(),
                          # Known from the first night on (point-in-time extracts), not from today.
                          tags={"dunning/as_of": NIGHT}, instance=dg.DagsterInstance.ephemeral()).success


def _day_assets():
    from dunning_pipeline.dunning.assets import ASSET_CHECKS, ASSETS

    return ASSETS, ASSET_CHECKS


def test_the_daemon_runs_nights_and_backfills_one_day_at_a_time_in_date_order(dagster_services, sandbox_env,
                                                                             tmp_path, monkeypatch):
    client, instance, env, warehouse_url = dagster_services
    # The extracts once, before: the runs under test compute the days (the dunning group), which
    # keeps the test to minutes on a small host; the limits are the same for a whole night.
    _fill_extracts(env, warehouse_url, monkeypatch)
    reference_url = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    with sqlite3.connect(tmp_path / "warehouse.sqlite") as src, sqlite3.connect(tmp_path / "reference.sqlite") as dst:
        src.backup(dst)  # a copy that includes what is still in the write-ahead log
    assets, checks = _day_assets()
    day_keys = sorted(a.key.to_user_string() for a in assets)

    # Two nights launched at once, as the UI's launchpad does (the job's own tags are added).
    launch = [client.submit_job_execution("nightly_dunning", repository_location_name=LOCATION,
                                          tags={"dagster/partition": NIGHT}, asset_selection=day_keys)
              for _ in range(2)]
    nights = _wait("the two nightly runs", lambda: _finished(instance, launch))
    assert [r.dagster_run.status for r in nights] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert all(r.dagster_run.tags["dunning/job"] == "nightly_dunning" for r in nights)
    _never_overlap(nights)

    # A backfill of a week, as the UI launches one over a range of the partition bar.
    answer = client._execute(LAUNCH_BACKFILL, {"params": {
        "partitionNames": BACKFILL_DAYS, "assetSelection": [{"path": [k]} for k in day_keys],
    }})["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    backfill_id = answer["backfillId"]

    def backfill_done():
        backfill = instance.get_backfill(backfill_id)
        return backfill if backfill.status.value not in ("REQUESTED", "CANCELING") else None

    backfill = _wait("the backfill", backfill_done, timeout=3 * TIMEOUT, every=2)
    runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert backfill.status.value == "COMPLETED_SUCCESS", [(r.dagster_run.run_id, r.dagster_run.status) for r in runs]
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    by_day = sorted(runs, key=lambda r: r.start_time)
    # Backfill runs do not carry the job's tags: the limit on the partition tag is what holds them.
    assert all("dunning/job" not in r.dagster_run.tags for r in by_day)
    assert [r.dagster_run.tags["dagster/partition"] for r in by_day] == BACKFILL_DAYS
    _never_overlap([*nights, *runs])

    # The same eight nights, one by one in process, on a copy of the extracts.
    from dunning_pipeline.warehouse.resource import WarehouseResource

    for day in [NIGHT, *BACKFILL_DAYS]:
        assert dg.materialize([*assets, *checks], partition_key=day, instance=dg.DagsterInstance.ephemeral(),
                              resources={"warehouse": WarehouseResource(database_url=reference_url)}).success
    expected = _history(reference_url)
    assert len(expected) and expected["as_of_date"].min() == pd.Timestamp(NIGHT)
    pd.testing.assert_frame_equal(_history(warehouse_url), expected)
    aging = _aging(reference_url)
    assert len(aging) and set(aging["as_of_date"]) == {pd.Timestamp(BACKFILL_DAYS[-1])}
    pd.testing.assert_frame_equal(_aging(warehouse_url), aging)

    _a_wrong_key_is_not_retried_and_a_scheduled_night_odoo_fails_is(client, instance, sandbox_env)


def _a_wrong_key_is_not_retried_and_a_scheduled_night_odoo_fails_is(client, instance, sandbox) -> None:
    from dunning_pipeline.slack.sensors import step_outcome

    # A key Odoo refuses (401): retrying cannot fix it, so the daemon does not retry the run.
    # Every JSON-RPC / JSON-2 call (a version call takes one too, unharmed) until cleared.
    sandbox.faults.set("odoo", "bad_credentials", path="/json", count=50)
    refused = client.submit_job_execution("nightly_dunning", repository_location_name=LOCATION,
                                          tags={"dagster/partition": NIGHT}, asset_selection=["odoo_customers"])
    [refused_run] = [r.dagster_run for r in _wait("the refused run", lambda: _finished(instance, [refused]))]
    sandbox.faults.clear("odoo")
    assert refused_run.status == dg.DagsterRunStatus.FAILURE
    assert refused_run.tags["dagster/retry_on_asset_or_op_failure"] == "false"
    assert refused_run.tags["dagster/will_retry"] == "false"

    # Odoo answers 503 to the next six requests: the first one and its five retries by the
    # client (Retry-After: 1 s), so the first Odoo step of the night fails; nothing else does.
    sandbox.faults.set("odoo", "server_error", status=503, retry_after=1, count=6)
    answer = client._execute(START_SCHEDULE, {"selector": {
        "repositoryLocationName": LOCATION, "repositoryName": "__repository__",
        "scheduleName": "nightly_dunning_schedule"}})["startSchedule"]
    assert answer["__typename"] == "ScheduleStateResult", answer

    def scheduled():
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": "nightly_dunning_schedule"}))
        return [r for r in runs if _settled(r)] if runs else None

    # The next minute's tick, then the run (every extract: a whole night).
    [night] = _wait("the scheduled night", scheduled, timeout=TIMEOUT + 60, every=2)
    assert night.status == dg.DagsterRunStatus.FAILURE
    assert night.tags["dagster/will_retry"] == "true"
    first = step_outcome(instance, night)
    failed = [e.step_key for e in instance.all_logs(night.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
    assert len(failed) == 1 and failed[0].startswith("odoo_"), failed
    assert "zendesk_comments" in first.succeeded and "dunning_history" in first.skipped + first.not_run

    def retried():
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": night.run_id}))
        return runs if runs and runs[0].is_finished else None

    [retry] = _wait("the retried night", retried)
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.tags["dagster/retry_number"] == "1" and retry.tags["dagster/partition"] == night.tags["dagster/partition"]
    # From failure: the failed step and what never ran, not the steps that had succeeded.
    assert failed[0] in retry.step_keys_to_execute
    assert not set(first.succeeded) & set(retry.step_keys_to_execute), retry.step_keys_to_execute
    # The refused run, whose failure the daemon saw before the night's, was never retried.
    assert not instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": refused_run.run_id}))

    def alerts():
        posted = [m for m in sandbox.slack_messages if m["channel_name"] == "#dunning-alerts"]
        return posted if len(posted) >= 2 else None

    by_run = {run_id: [m for m in _wait("the two failure alerts", alerts, timeout=90) if run_id[:8] in str(m)]
              for run_id in (refused_run.run_id, night.run_id)}
    assert all(len(found) == 1 for found in by_run.values()), by_run
    [refused_alert], [night_alert] = by_run.values()
    assert "odoo_customers" in refused_alert["text"] and "ODOO_API_KEY" in str(refused_alert["blocks"])
    night_blocks = str(night_alert["blocks"])
    assert failed[0] in night_alert["text"] and "HTTP 503" in night_blocks
    assert "succeeded: " in night_blocks and "zendesk_comments" in night_blocks
    assert "skipped: " in night_blocks or "never ran: " in night_blocks


@pytest.mark.parametrize(("cron", "expected"), [("30 1 * * *", "30 1 * * *"), ("", "0 2 * * *"),
                                                ("every night", "DUNNING_NIGHTLY_CRON='every night' is not a cron")])
def test_the_nightly_cron_comes_from_the_environment(cron, expected):
    env = {**os.environ, "DUNNING_NIGHTLY_CRON": cron}
    answer = subprocess.run([sys.executable, "-c", "from dunning_pipeline.schedules import nightly_dunning_schedule as s;"
                             " print(s.cron_schedule)"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert expected in (answer.stdout if answer.returncode == 0 else answer.stderr), answer.stderr

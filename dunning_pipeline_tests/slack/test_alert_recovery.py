"""The alert stays exactly-once when Slack's answer is lost, a run dies holding a part, two
instances post at once, or the launcher is killed: each test ends with every part in the
channel once. Against the sandbox's Slack (which keeps message metadata and serves
conversations.history/replies) and a real warehouse (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults

from dunning_pipeline.slack import ledger
from dunning_pipeline.slack.alert import AlertInProgressError, part_metadata
from dunning_pipeline.slack.delivery import SlackDeliveryError, SlackPoster
from dunning_pipeline.slack.digest import Period, render_digest
from dunning_pipeline_tests.slack.test_alert import MAR2, SMALL, Log, parts, run, week

REPO = Path(__file__).resolve().parents[2]
POST = "chat.postMessage"


def _each_part_once(sandbox, wh, end=MAR2):
    """Every part of the alert is in the channel exactly once, and the ledger has its ts."""
    delivery = ledger.get_delivery(wh, "weekly_dunning", end)
    keys = Counter(m["metadata"]["event_payload"]["key"] for m in sandbox.slack_messages)
    assert all(n == 1 for n in keys.values()), keys
    assert len(keys) == len(delivery.parts) == len(sandbox.slack_messages)
    assert delivery.status == "delivered"
    by_ts = {m["ts"]: m for m in sandbox.slack_messages}
    for part in delivery.parts:
        assert part.ts in by_ts and part.ts != "None"
        assert by_ts[part.ts]["text"] == part.text
    top = delivery.parts[0].ts
    assert all(by_ts[p.ts].get("thread_ts") == top for p in delivery.parts[1:])


def test_a_lost_answer_is_found_in_the_channel_and_not_posted_again(warehouse, sandbox):
    week(warehouse, MAR2)
    sandbox.faults.set("slack", "slow", path=POST, delay=0)  # part 1 answers
    sandbox.faults.set("slack", "lost_answer", path=POST)  # part 2 is posted, its answer lost
    log = Log()
    outcome = run(warehouse, sandbox, MAR2, run_id="run-1", log=log)
    assert outcome.status == "posted"
    assert any("answer to part 2 was lost; the message is in the channel" in w for w in log.warnings)
    _each_part_once(sandbox, warehouse)


def test_an_answer_without_ts_is_an_error_never_a_stored_none(warehouse, sandbox):
    week(warehouse, MAR2, customers=1)
    sandbox.faults.set("slack", "status", path=POST, status=200, body='{"ok": true}',
                       content_type="application/json; charset=utf-8")
    poster = SlackPoster(sandbox.env["SLACK_BOT_TOKEN"], api_url=sandbox.slack_api_url)
    with pytest.raises(SlackDeliveryError) as err:
        poster.post("x", [], channel="#dunning")
    assert err.value.code == "outcome_unknown"
    # In a run, the part is looked up (absent: the fake answer posted nothing) and posted.
    sandbox.faults.set("slack", "status", path=POST, status=200, body='{"ok": true}',
                       content_type="application/json; charset=utf-8")
    run(warehouse, sandbox, MAR2, run_id="run-1")
    _each_part_once(sandbox, warehouse)


def _recorded_alert(wh, end=MAR2, run_id="run-killed"):
    messages = render_digest(wh.read("dunning_history"), Period(end=end), limits=SMALL)
    return ledger.create_delivery(
        wh, alert="weekly_dunning", cover=ledger.Coverage(end), period_start=None,
        id_max=ledger.history_id_max(wh, end), history_rows=1, invoices=1, customers=1,
        channel="#dunning", messages=[m.to_dict() for m in messages], run_id=run_id)


def test_a_killed_step_s_claim_expires_and_its_accepted_post_is_not_repeated(warehouse, sandbox):
    week(warehouse, MAR2, customers=3)
    delivery = _recorded_alert(warehouse)
    # The killed run claimed part 1, Slack accepted it, and the process died before the ts
    # was committed. Its run never finishes: it looks alive to the instance for ever.
    assert ledger.claim_part(warehouse, "weekly_dunning", MAR2, 1, "run-killed")
    poster = SlackPoster(sandbox.env["SLACK_BOT_TOKEN"], api_url=sandbox.slack_api_url)
    part = delivery.parts[0]
    poster.post(part.text, part.blocks, channel="#dunning", metadata=part_metadata(delivery, part))

    still_alive = lambda _run_id: True  # noqa: E731
    with pytest.raises(AlertInProgressError, match="its claim expires"):
        run(warehouse, sandbox, MAR2, run_id="run-2", active=still_alive)
    assert len(sandbox.slack_messages) == 1

    from dunning_pipeline.slack.alert import deliver

    log = Log()
    outcome = deliver(  # after the lease: taken over, looked up, found, not posted again
        warehouse, poster, period_end=MAR2, channel="#dunning", run_id="run-3",
        render=lambda h, p: render_digest(h, p, limits=SMALL), is_run_active=still_alive,
        log=log, lease=timedelta(0))
    assert outcome.status == "posted"
    assert "found in the channel, not posted again" in log.warnings[0]
    _each_part_once(sandbox, warehouse)


def test_without_the_history_scope_it_says_so_at_the_start_and_reposts_a_lost_part(warehouse, sandbox):
    week(warehouse, MAR2)
    sandbox.slack.scopes.discard("channels:history")
    sandbox.faults.set("slack", "slow", path=POST, delay=0)
    sandbox.faults.set("slack", "lost_answer", path=POST)
    log = Log()
    run(warehouse, sandbox, MAR2, run_id="run-1", log=log)
    assert "has no channels:history scope (groups:history for a private channel)" in log.warnings[0]
    assert any("lacks channels:history" in w for w in log.warnings)
    # The documented fallback: the lost part is posted again, so it is there (twice).
    keys = Counter(m["metadata"]["event_payload"]["key"] for m in sandbox.slack_messages)
    assert sorted(keys.values())[-1] == 2 and len(keys) == len(parts(warehouse))
    assert ledger.get_delivery(warehouse, "weekly_dunning", MAR2).status == "delivered"


def test_two_instances_posting_at_once_post_each_part_once(warehouse, sandbox):
    week(warehouse, MAR2)
    sandbox.faults.set("slack", "slow", path=POST, count=20, delay=0.05)  # widen the race
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def instance(run_id):
        barrier.wait()
        try:
            # Each instance knows only its own run: the other's is unknown, so it counts as alive.
            outcomes.append(run(warehouse, sandbox, MAR2, run_id=run_id, active=lambda r: r != run_id))
        except AlertInProgressError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=instance, args=(f"instance-{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) + len(errors) == 2 and outcomes
    if ledger.get_delivery(warehouse, "weekly_dunning", MAR2).status != "delivered":
        run(warehouse, sandbox, MAR2, run_id="instance-3")  # the one that stood back finishes
    _each_part_once(sandbox, warehouse)


@pytest.mark.slow
def test_killing_the_launcher_leaves_no_step_posting_and_the_rerun_completes(tmp_path, sandbox, warehouse_url):
    home = tmp_path / "dagster_home"
    home.mkdir()
    wh_url = warehouse_url  # SQLite and PostgreSQL
    from dunning_pipeline.warehouse.store import Warehouse

    wh = Warehouse(wh_url)
    wh.ensure_schema()
    week(wh, MAR2, customers=150)  # three parts with the default limits
    env = {**os.environ, **sandbox.env, "DAGSTER_HOME": str(home), "DUNNING_DATABASE_URL": wh_url,
           "SLACK_MAX_MESSAGES": "20", "SLACK_CLAIM_LEASE_SECONDS": "0", "GX_ANALYTICS_ENABLED": "False"}
    # Part 1 answers at once; part 2 is held long enough to kill the launcher meanwhile.
    sandbox.faults.set("slack", "slow", path=POST, delay=0)
    sandbox.faults.set("slack", "slow", path=POST, delay=8)
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "dunning_pipeline.definitions",
           "-j", "weekly_slack_alert", "--tags", '{"dunning/as_of": "2026-03-02"}']
    launcher = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len([r for r in sandbox.requests["slack"] if r["path"].endswith(POST)]) < 2:
        assert launcher.poll() is None and time.monotonic() < deadline, "the alert never reached part 2"
        time.sleep(0.1)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait(timeout=10)
    time.sleep(10)  # an orphan step would post part 2 (and more) now
    survivors = subprocess.run(["pgrep", "-s", str(launcher.pid)], capture_output=True, text=True)
    assert survivors.stdout.strip() == "", "a process of the killed launcher is still running"
    # Part 1, and part 2, which Slack still took after the kill (its answer lost): nothing more.
    assert len(sandbox.slack_messages) == 2

    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    _each_part_once(sandbox, wh)
    wh.dispose()


def test_a_run_unknown_to_this_instance_counts_as_alive_until_its_lease_ends():
    """A claim by a run of another Dagster instance must not be taken over at once."""
    import types

    import dagster as dg

    from dunning_pipeline.slack.assets import _run_is_active

    @dg.op
    def noop():
        return 1

    @dg.job
    def finished_job():
        noop()

    with dg.instance_for_test() as instance:
        done = finished_job.execute_in_process(instance=instance)
        active = _run_is_active(types.SimpleNamespace(instance=instance))
        assert active("a-run-of-another-instance") is True
        assert active(done.run_id) is False

"""The Sandbox object, the fault queues and the `python -m dunning_pipeline.sandbox` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests

from dunning_pipeline.sandbox import __main__ as cli
from dunning_pipeline.sandbox.faults import Faults

ENV_NAMES = {"ODOO_URL", "ODOO_DB", "ODOO_USERNAME", "ODOO_API_KEY", "ZENDESK_URL", "ZENDESK_EMAIL",
             "ZENDESK_API_TOKEN", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_API_URL", "SLACK_ALERTS_CHANNEL"}


def test_env_points_at_running_servers_and_stop_frees_them(sandbox):
    env = sandbox.env
    assert set(env) == ENV_NAMES
    assert env["SLACK_API_URL"].endswith("/api/") and env["ODOO_URL"].startswith("http://127.0.0.1:")
    assert requests.post(env["ODOO_URL"] + "/jsonrpc", timeout=10, json={
        "jsonrpc": "2.0", "params": {"service": "common", "method": "version", "args": []}}).ok
    sandbox.stop()
    assert not sandbox.running
    with pytest.raises(requests.ConnectionError):
        requests.post(env["ODOO_URL"] + "/jsonrpc", json={}, timeout=5)
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.odoo_url


def test_requests_are_logged(sandbox):
    requests.get(sandbox.zendesk_url + "/api/v2/users/me.json?x=1", timeout=10)
    entry = sandbox.requests["zendesk"][-1]
    assert entry["method"] == "GET" and entry["path"] == "/api/v2/users/me.json"
    assert entry["query"] == {"x": "1"} and entry["status"] == 401 and entry["fault"] is None


def test_fault_queue_order_count_path_and_validation():
    faults = Faults()
    faults.set("odoo", "rate_limit", count=2, retry_after=4)
    faults.set("odoo", "drop", path="/json/2/")
    assert faults.take("zendesk", "/api") is None
    assert faults.take("odoo", "/jsonrpc").opt("retry_after") == 4
    assert faults.take("odoo", "/json/2/x/y").kind == "rate_limit"  # queue order first
    assert faults.take("odoo", "/jsonrpc") is None  # the drop waits for its path
    assert faults.take("odoo", "/json/2/x/y").kind == "drop"
    assert faults.take("odoo", "/json/2/x/y") is None
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.set("odoo", "meltdown")
    with pytest.raises(ValueError, match="options"):
        faults.set("odoo", "slow", seconds=3)
    with pytest.raises(ValueError, match="slack"):
        faults.set("odoo", "slack_error", error="x")
    with pytest.raises(ValueError, match="unknown service"):
        faults.set("jira", "drop")
    faults.set("slack", "drop", count=3)
    faults.clear("slack")
    assert faults.pending("slack") == []


def test_random_faults_are_seeded_and_transient():
    def draw(seed):
        f = Faults()
        f.enable_random(rate=0.3, seed=seed)
        return [(x.kind if x else None) for x in (f.take("odoo", "/jsonrpc") for _ in range(200))]
    a, b = draw(1), draw(1)
    assert a == b and 20 < sum(k is not None for k in a) < 100
    assert {k for k in a if k} <= {"rate_limit", "server_error", "slow"}
    assert draw(2) != a


def test_slow_fault_delays(sandbox):
    sandbox.faults.set("slack", "slow", delay=0.2)
    resp = requests.post(sandbox.slack_api_url + "auth.test", timeout=10,
                         headers={"Authorization": "Bearer " + sandbox.env["SLACK_BOT_TOKEN"]})
    assert resp.json()["ok"] and sandbox.requests["slack"][-1]["fault"] == "slow"


def test_cli_arguments_are_validated(capsys):
    for argv, message in ((["--invoices", "0"], "must be at least 1"),
                          (["--as-of", "2026-13-01"], "YYYY-MM-DD"),
                          (["--odoo-version", "15.0"], "invalid choice"),
                          (["--odoo-port", "70000"], "not a TCP port")):
        with pytest.raises(SystemExit) as info:
            cli.parse_args(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
    args = cli.parse_args(["--seed", "3", "--as-of", "2026-04-01", "--no-faults"])
    assert args.seed == 3 and args.as_of == date(2026, 4, 1) and args.faults is False
    assert cli.export_lines({"SLACK_CHANNEL": "#dunning", "X": "a b"}) == [
        "export SLACK_CHANNEL='#dunning'", "export X='a b'"]


def test_cli_serves_until_sigterm(tmp_path: Path):
    env_file = tmp_path / "sandbox.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dunning_pipeline.sandbox", "--customers", "5", "--invoices", "40",
         "--odoo-version", "19.0", "--faults", "--fault-rate", "0", "--env-file", str(env_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the sandbox did not write its env file"
            time.sleep(0.1)
        lines = env_file.read_text().splitlines()
        env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert set(env) == ENV_NAMES and env["SLACK_CHANNEL"] == "'#dunning'"
        assert requests.get(env["ODOO_URL"] + "/web/version", timeout=10).json()["version"] == "19.0"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == lines
    assert "generating 40 account.move records" in err and "stopping" in err


def test_sandbox_process_serves_and_advances_nights():
    from dunning_pipeline.sandbox import SandboxProcess

    with SandboxProcess(seed=2, customers=6, invoices=60, zendesk_export_limit_per_minute=None) as sbp:
        assert set(sbp.env) == ENV_NAMES and sbp.env["SLACK_CHANNEL"] == "#dunning"
        body = {"jsonrpc": "2.0", "id": 1, "params": {"service": "object", "method": "execute_kw", "args": [
            sbp.env["ODOO_DB"], 2, sbp.env["ODOO_API_KEY"], "account.move", "search_read",
            [[]], {"fields": ["write_date"]}]}}
        before = requests.post(sbp.odoo_url + "/jsonrpc", json=body, timeout=10).json()["result"]
        changes = sbp.advance_night()
        assert changes["as_of"] == "2026-03-03" and changes["new_invoices"]
        after = requests.post(sbp.odoo_url + "/jsonrpc", json=body, timeout=10).json()["result"]
        newest = max(r["write_date"] for r in before)
        assert {r["id"] for r in after if r["write_date"] > newest} == set(
            changes["paid"] + changes["partially_paid"] + changes["reconciled"] + changes["new_invoices"]
            + changes["posted_drafts"] + changes["cancelled"] + changes["credit_notes"]
            + changes["reversed_invoices"])
        proc = sbp._proc
    assert proc.returncode == 0


def test_late_commits_over_http_and_the_cli_flag():
    from dunning_pipeline.sandbox import Sandbox

    assert cli.parse_args(["--late-commits"]).late_commits is True
    assert cli.parse_args([]).late_commits is False
    with Sandbox(seed=4, customers=6, invoices=60) as sb:
        mark = max(m["write_date"] for m in sb.data.moves)
        late = requests.post(sb.odoo_url + "/_sandbox/late_commit", json={"seconds_before_mark": 7200},
                             timeout=10).json()
        move = sb.data.move(late["move_id"])
        assert late["mark"] == mark and move["write_date"] == late["write_date"] < mark
        assert move["payment_state"] == "paid" and move["amount_residual"] == 0
        sb.odoo.late_commit_each_night = True  # what --late-commits switches on
        night = requests.post(sb.odoo_url + "/_sandbox/advance_night", timeout=30).json()
        # stamped before the mark an extraction took before this night, not just before the night's
        assert night["late_commit"]["write_date"] < night["late_commit"]["mark"] == mark
        assert sb.data.move(night["late_commit"]["move_id"])["payment_state"] == "paid"

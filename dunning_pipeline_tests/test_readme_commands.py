"""Every shell command in the README's ```bash blocks runs as printed.

The commands are read from README.md itself and run literally through `bash -c`, from the
repository root, with the venv's `bin` first on PATH (a user with the venv active). What differs
from a user's machine is only the environment a user is told to set up: the sandbox's variables
(`python -m dunning_pipeline.sandbox` prints them) and a Dagster instance configured by the
production `dagster.yaml` on a throwaway PostgreSQL database. A README command that this file
does not know how to run fails the test: a new command must be given a way to run here, or a
reason it cannot run offline.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from dunning_pipeline_tests.conftest import production_instance_env

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent

# How each command (by its first words) runs here.
RUN = "run"  # runs to completion with exit 0
RUN_ON_SANDBOX = "run on the sandbox"  # needs the sandbox's variables and a Dagster instance
SERVE = "serve"  # serves until interrupted: must come up, then stop cleanly on Ctrl-C
NOT_HERE = {
    "make test": "it is the test suite itself; .ci/run runs it",
}
IN_SESSION = "a shell session"  # lines of one block that build on each other: run as one script
HOW = {
    "make demo": RUN,
    "dagster job execute": RUN_ON_SANDBOX,
    "dagster job backfill": RUN_ON_SANDBOX,  # queued here; test_daemon.py has the daemon run a backfill
    "dagster definitions validate": RUN_ON_SANDBOX,
    "python -m dunning_pipeline.sandbox": SERVE,
    "export": IN_SESSION,
    "python -m dunning_pipeline.workbench adduser": IN_SESSION,
    "make workbench": IN_SESSION,
}
WORKBENCH_PORT = 8765  # the README's URL


def readme_blocks() -> list[list[str]]:
    """The README's ```bash blocks, each as its non-empty lines, exactly as printed."""
    blocks = re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", README.read_text(encoding="utf-8"), re.M | re.S)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def readme_commands() -> list[str]:
    return [line for block in readme_blocks() for line in block]


def _kind(command: str) -> str:
    words = " ".join(shlex.split(command, comments=True))
    for prefix, how in {**{k: "not here" for k in NOT_HERE}, **HOW}.items():
        if words == prefix or words.startswith(prefix + " "):
            return how
    return "unknown"


def _days(start: str, end: str) -> list[date]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]


def _user_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DUNNING_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GX_ANALYTICS_ENABLED"] = "False"
    env.update(extra or {})
    return env


def test_the_readme_has_commands_and_each_one_has_a_way_to_run_here():
    commands = readme_commands()
    assert "make demo" in [c.split("#")[0].strip() for c in commands]
    unknown = [c for c in commands if _kind(c) == "unknown"]
    assert not unknown, f"README commands with no way to run in this test: {unknown}"


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if _kind(c) == RUN], ids=str)
def test_readme_command_runs_as_printed(command):
    proc = subprocess.run(["bash", "-c", command], cwd=REPO, env=_user_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{command!r} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    if command.startswith("make demo"):
        assert "Everything reconciles." in proc.stdout
        assert "$ dagster job execute -m dunning_pipeline.definitions -j nightly_dunning" in proc.stdout


@pytest.fixture
def production_instance(tmp_path, pg_database) -> dict[str, str]:
    """DAGSTER_HOME with the repository's dagster.yaml, on a fresh PostgreSQL database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {"DAGSTER_HOME": str(home), **production_instance_env(home, pg_database)}


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if _kind(c) == RUN_ON_SANDBOX], ids=str)
def test_readme_dagster_command_runs_as_printed(command, sandbox, production_instance,
                                                pg_database):
    env = _user_env({**sandbox.env, **production_instance})
    proc = subprocess.run(["bash", "-c", command], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{command!r} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "more than one Definitions" not in proc.stderr
    tags = re.search(r"--tags '(\{.*\})'", command)
    if "job backfill" in command:
        # One run per day, queued in date order with the job's tags, for the daemon to start.
        import dagster as dg
        from dagster._core.test_utils import environ

        with environ(production_instance), dg.DagsterInstance.from_config(production_instance["DAGSTER_HOME"]) as inst:
            runs = list(reversed(inst.get_runs()))  # oldest first
        start, end = re.search(r"--from (\S+) --to (\S+)", command).groups()
        assert [r.tags.get("dagster/partition") for r in runs] == [d.isoformat() for d in _days(start, end)]
        assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}
        assert all(r.tags.get("dunning/job") == "nightly_dunning" for r in runs)
    if "job execute" in command:
        # The run went to the production instance, and the warehouse holds the day asked for.
        engine = sa.create_engine(pg_database)
        with engine.connect() as conn:
            statuses = [r[0] for r in conn.execute(sa.text("select status from runs"))]
        engine.dispose()
        assert statuses == ["SUCCESS"]
        day_tags = json.loads(tags.group(1)) if tags else {}
        day = day_tags.get("dagster/partition") or day_tags.get("dunning/as_of")
        if day:
            as_of = date.fromisoformat(day)
            warehouse = Path(production_instance["DAGSTER_HOME"]) / "dunning_warehouse.sqlite"
            wh = sa.create_engine(f"sqlite:///{warehouse}")
            with wh.connect() as conn:
                days = {r[0] for r in conn.execute(sa.text("select distinct as_of_date from invoice_aging"))}
            wh.dispose()
            assert {str(d)[:10] for d in days} == {as_of.isoformat()}


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if _kind(c) == SERVE], ids=str)
def test_readme_server_command_comes_up_and_stops_on_ctrl_c(command):
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=_user_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "serving; Ctrl+C to stop" in line:
                break
        exported = dict(re.findall(r"^export (\w+)=(\S+)", "".join(lines), re.M))
        assert {"ODOO_URL", "ZENDESK_URL", "SLACK_API_URL"} <= set(exported), "".join(lines)
        import requests

        version = requests.post(f"{shlex.split(exported['ODOO_URL'])[0]}/jsonrpc", timeout=10, json={
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"service": "common", "method": "version", "args": []}}).json()
        assert version["result"]["server_version"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, "".join(lines)


@pytest.mark.slow
def test_readme_workbench_session_runs_as_printed(tmp_path, sqlite_url):
    """The workbench block as one shell session: the user is added (its password read from
    standard input), the workbench served, and the user can log in."""
    import requests

    from dunning_pipeline.warehouse.store import Warehouse

    [block] = [b for b in readme_blocks() if any(line.startswith("make workbench") for line in b)]
    assert all(_kind(line) == IN_SESSION for line in block)
    wh = Warehouse(sqlite_url)
    wh.ensure_schema()
    wh.dispose()
    env = _user_env({"HOME": str(tmp_path), "DUNNING_DATABASE_URL": sqlite_url})
    proc = subprocess.Popen(["bash", "-c", "\n".join(block)], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        proc.stdin.write("a-long-enough-password\n")
        proc.stdin.close()
        for line in proc.stdout:
            lines.append(line)
            if "Uvicorn running on" in line:  # listening (startup completes before the bind)
                break
        base = f"http://127.0.0.1:{WORKBENCH_PORT}"
        session = requests.Session()
        page = session.get(f"{base}/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        home = session.post(f"{base}/login", data={"csrf_token": token, "username": "anna",
                                                   "password": "a-long-enough-password"}, timeout=10)
        assert home.status_code == 200 and "Worklist" in home.text, "".join(lines)
        assert (tmp_path / ".dunning_workbench_users").read_text().startswith("anna:$argon2id$")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)

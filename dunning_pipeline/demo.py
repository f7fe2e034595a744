"""`make demo`: the whole pipeline on the built-in sandbox, the way an operator runs it.

Starts the sandbox (local Odoo, Zendesk and Slack on loopback), then runs the real jobs with
`dagster job execute` against a throwaway Dagster instance and SQLite warehouse under .demo/:
the nightly job, the same night again (which must add no history), and the weekly Slack alert
twice (the second posts nothing). Prints what was loaded, checked against what the sandbox holds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

from dunning_pipeline import partitions, settings

DEMO_DIR = Path(".demo")
_EVENT = re.compile(r" - (?:dagster - )?(INFO|WARNING|ERROR|CRITICAL) - ")
_SHOWN = ("STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION", "RUN_SUCCESS", "RUN_FAILURE")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dunning_pipeline.demo", description=__doc__)
    p.add_argument("--as-of", type=date.fromisoformat, default=None,
                   help="business day to run (default: today in DUNNING_TIMEZONE)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--customers", type=int, default=60)
    p.add_argument("--invoices", type=int, default=800)
    p.add_argument("--faults", action="store_true",
                   help="transient faults: 5%% of requests get a 429, a 5xx page or a slow answer")
    p.add_argument("--data-faults", action="store_true",
                   help="spoil one record of every kind: the checks must name each and stop dunning")
    p.add_argument("--keep", action="store_true", help="keep .demo/ from an earlier demo")
    p.add_argument("--no-workbench", action="store_true",
                   help="do not serve the workbench at the end (it is served until Ctrl-C in a terminal)")
    p.add_argument("--verbose", action="store_true", help="show every Dagster event line")
    return p.parse_args(argv)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _run_job(job: str, as_of: date, env: dict[str, str], log: Path, verbose: bool) -> bool:
    """`dagster job execute` as a user would type it; progress lines echoed, all kept in `log`."""
    args = ["job", "execute", "-m", "dunning_pipeline.definitions", "-j", job,
            "--tags", json.dumps(partitions.day_tags(job == "nightly_dunning", as_of))]
    cmd = [sys.executable, "-m", "dagster", *args]
    # The command echoed is the one run (the venv's interpreter aside), quoted for a shell.
    _say("$ dagster " + shlex.join(args))
    started = time.monotonic()
    with open(log, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if verbose or _worth_showing(line):
                _say("  " + _shorten(line.rstrip()))
        code = proc.wait()
    _say(f"  -> {job}: {'succeeded' if code == 0 else 'FAILED'} in {time.monotonic() - started:.1f} s"
         f" (full log: {log})")
    return code == 0


def _worth_showing(line: str) -> bool:
    if not _EVENT.search(line):
        return "Error" in line or "error:" in line
    return " - INFO - " in line or any(tag in line for tag in _SHOWN)


def _shorten(line: str, width: int = 160) -> str:
    # Dagster's CLI lines: "ts - dagster - LEVEL - job - run_id - [pid - ]step - message".
    parts = line.split(" - ")
    if len(parts) >= 7 and parts[1] == "dagster":
        line = " - ".join(parts[5:] if parts[2] == "INFO" else parts[6:])
    return line if len(line) <= width else line[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    tz = settings.timezone()
    as_of = args.as_of or datetime.now(tz).date()  # the one place the demo reads the clock

    if DEMO_DIR.exists() and not args.keep:
        shutil.rmtree(DEMO_DIR)
    home = (DEMO_DIR / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    logs = DEMO_DIR / "logs"
    logs.mkdir(exist_ok=True)

    from dunning_pipeline.demo_report import (
        check_workbench,
        print_aging,
        print_alert,
        print_checks,
        print_drafts,
        print_instalments,
        print_ticket_holds,
        print_loaded,
        print_quarantine,
        print_reconciliation,
    )
    from dunning_pipeline.sandbox import Sandbox
    from dunning_pipeline.warehouse.store import Warehouse

    _say(f"dunning_pipeline demo: as-of {as_of} ({settings.timezone_name()}), seed {args.seed}, "
         f"{args.customers} customers, {args.invoices} invoices")
    _say("Starting the sandbox (local Odoo, Zendesk and Slack on 127.0.0.1)...")
    sb = Sandbox(seed=args.seed, customers=args.customers, invoices=args.invoices, as_of=as_of)
    if args.data_faults:
        from dunning_pipeline.sandbox import data_faults

        for fault in data_faults.inject(sb.data):
            _say(f"  spoiled: {fault.describe()}")
    if args.faults:
        sb.faults.enable_random(rate=0.05, seed=args.seed)
        _say("  transient faults on: 5% of requests get a 429, a 5xx page or a slow answer")
    with sb:
        _say(f"  Odoo {sb.odoo_url}  Zendesk {sb.zendesk_url}  Slack {sb.slack_api_url}")
        env = {k: v for k, v in os.environ.items() if k != settings.DATABASE_URL_VAR}
        env.update(sb.env)
        env.update({"DAGSTER_HOME": str(home), settings.TIMEZONE_VAR: settings.timezone_name(),
                    "GX_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
        warehouse_url = f"sqlite:///{home / 'dunning_warehouse.sqlite'}"

        _say("\n== 1. The nightly job ==")
        succeeded = _run_job("nightly_dunning", as_of, env, logs / "nightly.log", args.verbose)
        if args.faults:
            _say(f"  transient faults served and survived: {len(sb.faults.applied)}")
        blocked = print_checks(home, "nightly_dunning")
        wh = Warehouse(warehouse_url)
        if args.data_faults:
            print_quarantine(wh)
            stopped = not succeeded and blocked
            _say("\nThe blocking checks " + ("stopped the dunning assets, as they must."
                                             if stopped else "did NOT stop the dunning assets."))
            return 0 if stopped else 1
        if not succeeded:
            return 1
        print_loaded(wh, sb.data)
        ok = print_reconciliation(wh, sb.data, as_of)
        print_aging(wh)
        print_instalments(wh)
        print_ticket_holds(wh, sb.data)
        _say("\n== Reports for the accountants and managers ==")
        from dunning_pipeline.reporting import console, files

        for line in console.report_lines(wh, files.report_folder(env)) + console.kpi_lines(wh):
            _say("  " + line)
        print_drafts(wh)
        history_rows = wh.count("dunning_history")

        _say("\n== 2. The same night again (must add no history row) ==")
        if not _run_job("nightly_dunning", as_of, env, logs / "nightly-again.log", args.verbose):
            return 1
        added = wh.count("dunning_history") - history_rows
        _say(f"  dunning_history: {history_rows} rows before, {added} added by the re-run")
        ok = ok and added == 0

        _say("\n== 3. The weekly Slack alert ==")
        before = len(sb.slack_messages)
        if not _run_job("weekly_slack_alert", as_of, env, logs / "weekly.log", args.verbose):
            return 1
        print_alert(sb.slack_messages[before:])

        _say("\n== 4. The weekly alert again (must post nothing) ==")
        before = len(sb.slack_messages)
        if not _run_job("weekly_slack_alert", as_of, env, logs / "weekly-again.log", args.verbose):
            return 1
        again = len(sb.slack_messages) - before
        _say(f"  messages posted by the second run: {again}")
        ok = ok and again == 0
        wh.dispose()

        _say("\n== 5. The collections workbench (the accountants' web page) ==")
        users_file = str((DEMO_DIR / "workbench_users.txt").resolve())
        if sys.stdin.isatty() and not args.no_workbench:
            _say("\nDone. " + ("Everything reconciles." if ok else "SOMETHING DID NOT RECONCILE: see above."))
            from dunning_pipeline.workbench.__main__ import serve_for_demo

            try:  # the sandbox stays up meanwhile, so the workbench's Odoo links work
                serve_for_demo(warehouse_url, users_file=users_file, odoo_url=sb.odoo_url)
            except KeyboardInterrupt:
                pass
            return 0 if ok else 1
        ok = check_workbench(warehouse_url, users_file, sb.odoo_url) and ok
        _say("  (not a terminal: stopped again; `make demo` in a terminal keeps it running until Ctrl-C,"
             " or `make workbench` with DUNNING_DATABASE_URL set to the demo's warehouse)")

    _say("\nDone. " + ("Everything reconciles." if ok else "SOMETHING DID NOT RECONCILE: see above."))
    _say(f"Explore it in the UI: DAGSTER_HOME={home} dagster dev -w workspace.yaml "
         "(with the sandbox's variables: python -m dunning_pipeline.sandbox)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Serve the sandbox until interrupted: `python -m dunning_pipeline.sandbox --help`.

Progress goes to stderr; the `export NAME=value` lines that point the pipeline at the sandbox go
to stdout (and to --env-file, written atomically, so a script can wait for it and `source` it).
The credentials printed are fixed sandbox values, not secrets.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from datetime import date
from pathlib import Path

from dunning_pipeline.sandbox.data import open_receivables
from dunning_pipeline.sandbox.harness import Sandbox
from dunning_pipeline.sandbox.odoo_server import VERSIONS


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value


def _as_of(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from exc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m dunning_pipeline.sandbox",
        description="Local stand-ins for Odoo, Zendesk and Slack, seeded with realistic data.")
    p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    p.add_argument("--customers", type=_positive, default=40, help="commercial customers")
    p.add_argument("--invoices", type=_positive, default=400, help="account.move records in total")
    p.add_argument("--tickets", type=_positive, default=None, help="Zendesk tickets (default invoices/8)")
    p.add_argument("--as-of", type=_as_of, default=date(2026, 3, 2), help="the data's business day")
    p.add_argument("--odoo-version", choices=VERSIONS, default="17.0",
                   help="Odoo version to imitate (19.0 adds JSON-2)")
    p.add_argument("--faults", action=argparse.BooleanOptionalAction, default=False,
                   help="a light, seeded rate of transient faults (429, 5xx, slow answers)")
    p.add_argument("--fault-rate", type=float, default=0.05, help="share of requests that fail with --faults")
    p.add_argument("--late-commits", action="store_true",
                   help="each night advanced over HTTP also pays one invoice in a transaction that"
                   " commits late (write_date before the previous night's high-water mark)")
    p.add_argument("--data-faults", action="store_true",
                   help="spoil one record of every kind (dunning_pipeline.sandbox.data_faults)")
    p.add_argument("--zendesk-export-limit", type=int, default=10,
                   help="incremental export requests per minute (0: unlimited)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--odoo-port", type=_port, default=0, help="0: a free port")
    p.add_argument("--zendesk-port", type=_port, default=0)
    p.add_argument("--slack-port", type=_port, default=0)
    p.add_argument("--env-file", type=Path, default=None, help="also write the export lines here")
    return p.parse_args(argv)


def export_lines(env: dict[str, str]) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def write_env_file(path: Path, lines: list[str]) -> None:
    """Write atomically: a script waiting for the file never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(message: str) -> None:
        print(f"sandbox: {message}", file=sys.stderr, flush=True)

    progress(f"seed {args.seed}, {args.customers} customers, {args.invoices} moves, as of {args.as_of},"
             f" Odoo {args.odoo_version}")
    sb = Sandbox(seed=args.seed, customers=args.customers, invoices=args.invoices,
                 as_of=args.as_of, odoo_version=args.odoo_version, tickets=args.tickets,
                 host=args.host, odoo_port=args.odoo_port, zendesk_port=args.zendesk_port,
                 slack_port=args.slack_port,
                 zendesk_export_limit_per_minute=args.zendesk_export_limit or None,
                 progress=progress)
    if args.data_faults:
        from dunning_pipeline.sandbox import data_faults

        for fault in data_faults.inject(sb.data):
            progress(f"data fault: {fault.describe()}")
    if args.late_commits:
        sb.odoo.late_commit_each_night = True
        progress("late commits on: each night (POST /_sandbox/advance_night) pays one invoice stamped"
                 " before the previous high-water mark")
    if args.faults:
        sb.faults.enable_random(rate=args.fault_rate, seed=args.seed)
        progress(f"random faults on: {args.fault_rate:.0%} of requests get a 429, a 5xx or a slow answer")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sb.start()
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}: {exc}", file=sys.stderr)
        return 2
    try:
        data = sb.data
        progress(f"{len(data.partners)} partners, {len(data.moves)} moves"
                 f" ({len(open_receivables(data))} open receivables), {len(data.zendesk_tickets)} tickets,"
                 f" clock {data.now:%Y-%m-%d %H:%M} UTC")
        progress(f"Odoo {sb.odoo_url}  Zendesk {sb.zendesk_url}  Slack {sb.slack_api_url}")
        lines = export_lines(sb.env)
        print("\n".join(lines), flush=True)
        if args.env_file:
            write_env_file(args.env_file, lines)
            progress(f"environment written to {args.env_file}")
        progress("serving; Ctrl+C to stop")
        while not stop.wait(0.5):
            pass
        progress("stopping")
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

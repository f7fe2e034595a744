"""`make bench`: speed and memory of the nightly pipeline at sizes a real company reaches.

For each size: the sandbox generates the data (timed) and serves it from this process; each
night runs in a child process (`benchmarks.night`) whose peak RSS is read from the kernel
(wait4); the warehouse is a fresh PostgreSQL database (dropped afterwards) or SQLite.
Nights: 1 = first full load, 2 = the next day after `advance_night()` (incremental),
3 = the same day again (nothing new; history must not grow).

Zendesk's rate limits are lifted in the sandbox and the client: they measure Zendesk, not us.
On a real account the first night's comment pull is bound by the incremental exports' budget of
10 requests a minute: one request per 1,000 ticket events (about 4 minutes for 40,000 events).

    python -m benchmarks.run --invoices 10000 100000 1000000 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _night(env: dict, as_of: date, url: str) -> dict:
    """One night in a child process; its own peak RSS comes from wait4's rusage."""
    import tempfile

    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.night", "--as-of", as_of.isoformat(),
             "--database-url", url],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        line = [ln for ln in out.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not line:
            raise SystemExit(f"night {as_of} failed:\n{err.read()[-3000:]}")
    report = json.loads(line[-1])
    report["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return report


def run_size(invoices: int, backend: str, log) -> list[dict]:
    from dunning_pipeline.sandbox import Sandbox
    from dunning_pipeline.warehouse.store import Warehouse

    customers = max(20, invoices // 25)
    as_of = date(2026, 3, 2)
    t0 = time.perf_counter()
    log(f"[{invoices:,} invoices] generating sandbox data ({customers:,} customers)...")
    sb = Sandbox(seed=11, customers=customers, invoices=invoices, as_of=as_of,
                 zendesk_export_limit_per_minute=None, zendesk_rate_limit_per_minute=None,
                 progress=lambda m: log("  " + m))
    gen = time.perf_counter() - t0
    name = f"dunning_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    if backend == "postgresql":
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:////tmp/{name}.sqlite"
    rows = []
    try:
        with sb:
            env = {**os.environ, **sb.env, "GX_ANALYTICS_ENABLED": "False",
                   "DAGSTER_HOME": str(Path(f"/tmp/{name}_home").resolve())}
            Path(env["DAGSTER_HOME"]).mkdir(exist_ok=True)
            for night, day, advance in ((1, as_of, False), (2, as_of + timedelta(days=1), True),
                                        (3, as_of + timedelta(days=1), False)):
                if advance:
                    sb.advance_night()
                log(f"[{invoices:,}] night {night} ({day})...")
                sb.clear_requests()
                report = _night(env, day, url)
                report["comment_requests"] = _comment_requests(sb)
                wh = Warehouse(url)
                report["history_rows"] = wh.count("dunning_history")
                report["aging_rows"] = wh.count("invoice_aging")
                wh.dispose()
                report.update(invoices=invoices, night=night, generate_s=round(gen, 1), backend=backend)
                log(f"  {json.dumps(report)}")
                rows.append(report)
    finally:
        if backend == "postgresql":
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return rows


def _comment_requests(sb) -> int:
    """Requests the night made for comments (the ticket event export, per-ticket comments)."""
    return sum(1 for r in sb.requests["zendesk"]
               if r["path"].endswith("/comments.json") or r["path"].endswith("/ticket_events.json"))


def to_markdown(rows: list[dict]) -> str:
    steps = sorted({k for r in rows for k in r["steps"]})
    head = ["invoices", "night", "backend", "total s", "peak RSS MB*", "history rows", "comment requests", *steps]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in [
            f"{r['invoices']:,}", r["night"], r["backend"], r["seconds"], r["peak_rss_mb"],
            r["history_rows"], r.get("comment_requests", ""), *[r["steps"].get(s, "") for s in steps]]) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--invoices", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    log = lambda m: print(m, flush=True)  # noqa: E731
    rows = [r for n in args.invoices for r in run_size(n, args.backend, log)]
    table = to_markdown(rows)
    print(table)
    if args.out:
        args.out.write_text(
            "# Benchmark results\n\n`python -m benchmarks.run "
            + " ".join(sys.argv[1:]) + "`\n\n" + table
            + "\n\n*peak RSS: the largest resident set of that night's process (kernel maxrss via wait4).\n",
            encoding="utf-8")


if __name__ == "__main__":
    main()

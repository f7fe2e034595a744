"""`make bench`: speed and memory of the nightly pipeline against floors on the same data.

For each size: the sandbox generates the data (timed) and serves it from this process; each
night runs in a child process (`benchmarks.night`) that reports per step its wall seconds and
peak RSS; the whole night's peak RSS is the kernel's (wait4). This process does nothing but
serve the sandbox while a child runs, so its CPU time in that while is the sandbox's.
Nights: 1 = first full load, 2 = the next day after `advance_night()` (about 1% of the moves
change), 3 = the same day again (nothing new; history must not grow). After each night, in
child processes too, the floors on that night's data (see `benchmarks.floors`): (a) a bare
loop replaying the night's requests, decoding and COPYing the records; (b) the engine's
arithmetic as DuckDB SQL, read and write included. Once per run, floor (c): `import dagster`
against loading the code location, best of three processes each.

Zendesk's rate limits are lifted in the sandbox and the client: they measure Zendesk, not us.

    python -m benchmarks.run --invoices 10000 100000 1000000 --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from benchmarks.floors import ENGINE_STEPS, EXTRACTION_STEPS

ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
NIGHTS = ((1, 0, False, "first night"), (2, 1, True, "next day, ~1% changed"), (3, 1, False, "same day again"))


@contextmanager
def scratch_database(prefix: str) -> Iterator[sa.engine.URL]:
    """A new PostgreSQL database on ADMIN_URL's server for one benchmark, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(ADMIN_URL).set(database=name)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _cpu_self() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _child(args: list[str], env: dict, profile: Path | None = None) -> dict:
    """Run `python -m <args>` and return its last JSON line, with its peak RSS, CPU seconds
    and this process's (the sandbox's) CPU seconds meanwhile. With `profile`, py-spy samples it
    (without pausing it) into that file, as collapsed stacks; the child's peak RSS is still its
    own (the kernel reports the largest of a process's waited-for descendants)."""
    command = [sys.executable, "-m", *args]
    if profile is not None:
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking", "--rate", "20",
                   "--format", "raw", "--output", str(profile), "--", *command]
    with tempfile.TemporaryFile(mode="w+") as err:
        cpu0, wall0 = _cpu_self(), time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall, sandbox_cpu = time.perf_counter() - wall0, _cpu_self() - cpu0
        err.seek(0)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if os.waitstatus_to_exitcode(status) != 0 or not lines:
            raise SystemExit(f"{' '.join(args[:2])} failed:\n{err.read()[-3000:]}")
    report = json.loads(lines[-1])
    report.update(peak_rss_mb=round(usage.ru_maxrss / 1024), wall_s=round(wall, 2),
                  cpu_s=round(usage.ru_utime + usage.ru_stime, 2), sandbox_cpu_s=round(sandbox_cpu, 2))
    return report


def load_floor(env: dict, repeat: int = 3) -> dict:
    """Floor (c): the best of `repeat` fresh processes importing dagster, against the code location."""
    def best(code: str) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - t0)
        return round(min(times), 2)
    return {"import_dagster_s": best("import dagster"),
            "load_code_location_s": best("import dunning_pipeline.definitions")}


def run_size(invoices: int, nights: int, log, profile_dir: Path | None = None) -> dict:
    from dunning_pipeline.sandbox import Sandbox

    customers = max(20, invoices // 25)
    as_of = date(2026, 3, 2)
    t0 = time.perf_counter()
    log(f"[{invoices:,} invoices] generating sandbox data ({customers:,} customers)...")
    sb = Sandbox(seed=11, customers=customers, invoices=invoices, as_of=as_of,
                 zendesk_export_limit_per_minute=None, zendesk_rate_limit_per_minute=None,
                 progress=lambda m: log("  " + m))
    size = {"invoices": invoices, "customers": customers, "tickets": len(sb.data.zendesk_tickets),
            "generate_s": round(time.perf_counter() - t0, 1), "nights": []}
    with scratch_database("dunning_bench") as url, sb, tempfile.TemporaryDirectory() as tmp:
        name = url.database
        dsn = " ".join(f"{k}={v}" for k, v in (("host", url.host), ("port", url.port), ("user", url.username),
                                                ("password", url.password), ("dbname", name)) if v)
        home = Path(tempfile.mkdtemp(prefix=f"{name}_home"))
        env = {**os.environ, **sb.env, "GX_ANALYTICS_ENABLED": "False", "DAGSTER_HOME": str(home)}
        for night, offset, advance, label in NIGHTS[:nights]:
            day = as_of + timedelta(days=offset)
            if advance:
                sb.advance_night()
            log(f"[{invoices:,}] night {night} ({day}, {label})...")
            sb.clear_requests()
            profile = profile_dir / f"{invoices}_night{night}.txt" if profile_dir else None
            report = _child(["benchmarks.night", "--as-of", day.isoformat(), "--database-url",
                             url.render_as_string(hide_password=False)], env, profile)
            if profile is not None:
                report["profile"] = profile_summary(profile)
            if not report["success"]:
                failed = {k: v for k, v in report["steps"].items() if "failed" in v}
                raise SystemExit(f"night {night} at {invoices:,} failed: {json.dumps(failed)[:3000]}")
            spec = Path(tmp) / f"requests_{night}.json"
            spec.write_text(json.dumps({"requests": {s: list(sb.requests[s]) for s in ("odoo", "zendesk")},
                                        "base_urls": {"odoo": sb.odoo_url, "zendesk": sb.zendesk_url}}))
            report["requests"] = {s: len(sb.requests[s]) for s in ("odoo", "zendesk")}
            log(f"  night {night}: {report['seconds']} s, peak {report['peak_rss_mb']} MB; floors...")
            report["floor_a"] = _child(["benchmarks.floors", "extract", "--dsn", dsn,
                                        "--request-log", str(spec)], env)
            report["floor_b"] = _child(["benchmarks.floors", "engine", "--dsn", dsn,
                                        "--as-of", day.isoformat()], env)
            report.update(night=night, as_of=day.isoformat(), label=label)
            size["nights"].append(report)
    return size


def profile_summary(path: Path, top: int = 12) -> dict:
    """From py-spy's collapsed stacks: the share of samples spent in each of our functions
    (inclusive: it or what it called), and the library functions most often on top of the stack."""
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        # The first frame is the process; a function counts once however many of its lines appear.
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")[1:]]
        ours = {f for f in frames if "dunning_pipeline/" in f and "dunning_pipeline_tests" not in f
                and not f.startswith("serialized_step.")}  # the lock wrapper around every step says nothing
        for frame in ours:
            inclusive[frame] = inclusive.get(frame, 0) + n
        if frames:
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + n

    def share(counts: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, round(100 * c / max(total, 1), 1)) for f, c in sorted(counts.items(), key=lambda x: -x[1])[:top]]
    return {"samples": total, "ours_inclusive": share(inclusive), "leaves": share(leaf)}


def machine() -> dict:
    mem_kib = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal:"))
    return {"cores": os.cpu_count(), "ram_gib": round(mem_kib / 2**20, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.1f}x" if floor > 0 else "n/a"


def to_markdown(result: dict) -> str:
    """The tables of BENCHMARKS.md, from `run`'s result."""
    m, load = result["machine"], result["load"]
    out = [f"Command: `{result['command']}`", "",
           f"Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, load average {m['load_average']}"
           f" (1, 5, 15 min) at start, {m['started']}, Python {m['python']}. Warehouse: PostgreSQL"
           " on 127.0.0.1. Floors (a) and (b) are run after each night on that night's data.", "",
           "## Loading the code location (floor c)", "",
           "| `import dagster` s | `import dunning_pipeline.definitions` s | ratio (target ≤1.5x) |",
           "|---|---|---|",
           f"| {load['import_dagster_s']} | {load['load_code_location_s']} |"
           f" {_ratio(load['load_code_location_s'], load['import_dagster_s'])} |", ""]
    for size in result["sizes"]:
        out += [f"## {size['invoices']:,} moves ({size['customers']:,} customers, {size['tickets']:,} tickets;"
                f" generated in {size['generate_s']} s)", "",
                "| night | wall s | peak RSS MB | sandbox CPU s (share of wall) | extraction s / floor a s"
                " (target ≤1.3x) | engine s / floor b s (target ≤2x) | Odoo, Zendesk requests |",
                "|---|---|---|---|---|---|---|"]
        for n in size["nights"]:
            steps, fa, fb = n["steps"], n["floor_a"], n["floor_b"]
            ext = sum(steps[s]["seconds"] for s in EXTRACTION_STEPS if s in steps)
            fa_total = sum(fa["steps"].values())
            eng = sum(steps[s]["seconds"] for s in ENGINE_STEPS if s in steps)
            out.append(
                f"| {n['night']} {n['label']} | {n['seconds']} | {n['peak_rss_mb']} |"
                f" {n['sandbox_cpu_s']} ({n['sandbox_cpu_s'] / max(n['wall_s'], 0.01):.0%}) |"
                f" {ext:.2f} / {fa_total:.2f} = {_ratio(ext, fa_total)} |"
                f" {eng:.2f} / {fb['seconds']} = {_ratio(eng, fb['seconds'])} |"
                f" {n['requests']['odoo']}, {n['requests']['zendesk']} |")
        out += ["", "Per step: seconds (peak RSS MB) per night; the floor and the ratio for"
                " the extraction and engine steps. Floor (a) `odoo_session` (login, version) is in"
                " its total only. Floor (b) per night: read + compute + write s.", ""]
        names = list(dict.fromkeys(s for n in size["nights"] for s in n["steps"]))
        head = ["step"] + [f"night {n['night']}" for n in size["nights"]]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in names:
            cells = [name]
            for n in size["nights"]:
                st = n["steps"].get(name)
                cell = "" if st is None else f"{st['seconds']} ({st['peak_rss_mb']})"
                floor = n["floor_a"]["steps"].get(name)
                if floor is not None:
                    cell += f"; floor a {floor} = {_ratio(st['seconds'], floor)}"
                cells.append(cell)
            out.append("| " + " | ".join(cells) + " |")
        for key in ("odoo_session",):
            out.append("| floor a " + key + " | " + " | ".join(
                str(n["floor_a"]["steps"].get(key, "")) for n in size["nights"]) + " |")
        out.append("| floor b (DuckDB) | " + " | ".join(
            f"{n['floor_b']['read_s']} + {n['floor_b']['compute_s']} + {n['floor_b']['write_s']}"
            f" = {n['floor_b']['seconds']} ({n['floor_b']['peak_rss_mb']})" for n in size["nights"]) + " |")
        out.append("")
        for n in size["nights"]:
            if "profile" not in n:
                continue
            prof = n["profile"]
            out += [f"Profile of night {n['night']} (py-spy, {prof['samples']:,} samples at 20 Hz):"
                    " our functions by share of the night (inclusive), and the frames most often on top.", "",
                    "| our function (inclusive) | % | on top of the stack | % |", "|---|---|---|---|"]
            for (ours, a), (top, b) in zip(prof["ours_inclusive"], prof["leaves"], strict=False):
                out.append(f"| `{ours}` | {a} | `{top}` | {b} |")
            out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--invoices", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                   help="sandbox sizes in account.move records (default: 10k, 100k, 1M)")
    p.add_argument("--nights", type=int, choices=[1, 2, 3], default=3, help="how many of the three nights")
    p.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"),
                   help="the report (default BENCHMARKS.md; its text above the first '## ' is kept)")
    p.add_argument("--profile", type=Path, default=None,
                   help="a folder: profile each night with py-spy (bench extra) and add its summary")
    args = p.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command.strip(), "machine": machine(), "load": load_floor(dict(os.environ))}
    result["sizes"] = [run_size(n, args.nights, log, args.profile) for n in args.invoices]
    table = to_markdown(result)
    print(table)
    # The analysis written by hand above the generated tables survives a re-run.
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    head = old.split("\nCommand: `", 1)[0] if "\nCommand: `" in old else "# Benchmarks\n\n"
    args.out.write_text(head.rstrip("\n") + "\n\n" + table, encoding="utf-8")
    return result


if __name__ == "__main__":
    main()

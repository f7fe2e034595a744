"""Crash consistency: a night killed with SIGKILL at every asset boundary and inside every
large write of the nightly job, then run again, leaves the warehouse exactly as one
uninterrupted night does, table by table (row counts and a content digest), on PostgreSQL.

The kills come from the warehouse write path's test-only switch `DUNNING_TEST_KILL_AT`
(`store._kill_point`), so each lands exactly at its moment. To cover every boundary without one
night per kill point, the kills form a CHAIN on one warehouse: the first night (`dagster job
execute`) dies at point 1; the run is then marked failed, as run monitoring does with a dead
worker, and retried FROM_FAILURE (the job's `dagster/retry_strategy`): that retry re-executes the
killed step (its writes again: idempotence) and everything after it, and dies at point 2; and so
on. After every kill no table may be half-written: each day-dependent table is either refused by
`runtime.read_of_day` (its `warehouse_builds` row disagrees with its inputs) or equal to what an
uninterrupted night holds. The last retry finishes, and a whole-job rerun over it (every asset
again) must change nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from dunning_pipeline import runtime
from dunning_pipeline.odoo.extract import LINES_STATE_KEY, RECONCILIATIONS_STATE_KEY
from dunning_pipeline.partitions import PARTITION_TAG
from dunning_pipeline.warehouse import builds, store

from dunning_pipeline.workbench.rollup import WORKLIST_STATE  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-03-02"
# Columns that name the run or the moment of writing, not what the night computed.
VOLATILE = {"run_id", "created_run_id", "delivered_run_id", "claimed_by_run_id", "extracted_at", "recorded_at",
            "quarantined_at", "built_at", "version_run_id", "seen_at"}
VOLATILE_IN = {
    "dunning_history": {"id"},  # a killed insert used up sequence numbers: the ids move on
    "dunning_state": {"history_id"},
    "extract_state": {"updated_at"},
    "warehouse_builds": {"inputs"},  # run ids of the inputs
}
# State rows whose value is a moment of writing: the marks of the receivable lines and the
# reconciliations are the newest `extracted_at` of the invoices.
# The workbench rollup's mark names the aging snapshot's run.
VOLATILE_STATE = {LINES_STATE_KEY, RECONCILIATIONS_STATE_KEY, WORKLIST_STATE}
# Every step of the nightly job in the order it runs (in one process), each killed inside its
# last large write (rows in, not committed) and right after that write's commit (the boundary to
# the next step). Each link of a chain must run at or after the previous link's step.
STEPS = [  # (step, the table whose write is the kill point)
    ("odoo_customers", "odoo_customers"),
    ("odoo_invoices", "odoo_invoices"),
    ("zendesk_tickets_and_users", "zendesk_users"),  # tickets and users in one transaction
    ("odoo_receivable_lines", "odoo_receivable_lines"),
    ("receivables", "receivables"),
    ("zendesk_comments", "zendesk_comments"),
    ("odoo_reconciliations", "odoo_reconciliations"),
    ("customer_communications", "customer_communications"),
    ("invoice_aging", "instalment_aging"),           # invoice_aging and instalment_aging, one transaction
    ("ar_aging_report", "ar_aging_report_buckets"),  # the summary and its buckets, one transaction
    ("dunning_history", "dunning_history"),          # the audit log's append (dunning_state follows)
    ("late_payment_charges", "late_payment_charges"),
    ("workbench_worklist", "workbench_worklist_customers"),  # both rollup tables, one transaction
    ("collection_kpis", "collection_kpis"),
    ("customer_timeline", "customer_timeline_views"),
    ("reminder_drafts", "reminder_drafts"),
]
# The tables that record their build in warehouse_builds (what `runtime.read_of_day` checks).
DAY_TABLES = ("receivables", "customer_communications", "invoice_aging", "instalment_aging", "ar_aging_report",
              "ar_aging_report_buckets", "dunning_history", "late_payment_charges", "collection_kpis",
              "customer_timeline", "customer_timeline_views", "reminder_drafts",
              "workbench_worklist", "workbench_worklist_customers")
# The boundary after every step; inside the large writes (the extracts' upserts, the day tables,
# the audit log's append, the drafts). Two chains, run at once on two warehouses.
LARGE_WRITES = ("odoo_invoices", "zendesk_users", "odoo_receivable_lines", "receivables", "instalment_aging",
                "dunning_history", "customer_timeline_views", "reminder_drafts")
CHAINS = {"after": [f"{table}:after" for _step, table in STEPS],
          "mid-write": [f"{table}:mid-write" for _step, table in STEPS if table in LARGE_WRITES]}
# A retry FROM_FAILURE of the latest run of the instance, as the run retry daemon does after run
# monitoring has marked a run whose worker died as failed.
RETRY_FROM_FAILURE = """
import sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

instance = dg.DagsterInstance.get()
(parent,) = instance.get_runs(limit=1)
if not parent.is_finished:  # its worker was killed
    instance.report_run_failed(parent)
job = ReconstructableRepository.for_module("dunning_pipeline.definitions", "defs", sys.argv[1]) \
    .get_reconstructable_job("nightly_dunning")
day = {k: v for k, v in parent.tags.items() if k in ("dagster/partition", "dunning/as_of")}  # not carried over
with dg.execute_job(job, instance, tags=day, reexecution_options=dg.ReexecutionOptions.from_failure(
        parent.run_id, instance)) as result:
    sys.exit(0 if result.success else 1)
"""


def test_the_chains_kill_after_every_step_of_the_nightly_job():
    """A step added to the job without a kill point fails here (the list is the job's steps)."""
    from dunning_pipeline.definitions import defs

    layer = defs.resolve_job_def("nightly_dunning").asset_layer
    steps = {layer.get_op_output_handle(key).node_handle.name for key in layer.asset_graph.executable_asset_keys}
    assert sorted(step for step, _table in STEPS) == sorted(steps)
    assert len(CHAINS["after"]) == len(steps)


@pytest.fixture(scope="module")
def sandbox():
    from dunning_pipeline.sandbox import Sandbox

    with Sandbox(seed=7, customers=12, invoices=60, as_of=date(2026, 3, 2)) as sb:
        yield sb


def _create_database(server_url: str) -> tuple[str, str]:
    name = f"dunning_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, name: str) -> None:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _env(sandbox, home: Path, url: str, kill_at: str | None) -> dict:
    home.mkdir(exist_ok=True)
    env = {**os.environ, **sandbox.env, "DAGSTER_HOME": str(home), "DUNNING_DATABASE_URL": url,
           "GX_ANALYTICS_ENABLED": "False"}
    env.pop(store.KILL_AT_VAR, None)
    if kill_at:
        env[store.KILL_AT_VAR] = kill_at
    return env


def _night(sandbox, home: Path, url: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """The whole nightly job, as the CLI runs it."""
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "dunning_pipeline.definitions",
           "-j", "nightly_dunning", "--tags", json.dumps({PARTITION_TAG: AS_OF})]
    return subprocess.run(cmd, cwd=REPO, env=_env(sandbox, home, url, kill_at), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=900, check=False)


def _retry(sandbox, home: Path, url: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """The latest run of `home` retried from failure (the killed step and everything after it)."""
    return subprocess.run([sys.executable, "-c", RETRY_FROM_FAILURE, str(REPO)], cwd=REPO,
                          env=_env(sandbox, home, url, kill_at), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=900, check=False)


def digests(url: str) -> dict[str, tuple[int, str]]:
    """Per table: the row count and a SHA-256 of its rows (sorted, volatile columns left out)."""
    tables = store.load_table_modules().tables
    engine = sa.create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for name, table in sorted(tables.items()):
                skip = VOLATILE | VOLATILE_IN.get(name, set())
                cols = [c for c in table.columns if c.name not in skip]
                rows = [tuple(r) for r in conn.execute(sa.select(*cols))]
                if name == "extract_state":
                    rows = [(k, "<moment of writing>" if k in VOLATILE_STATE else v) for k, v in rows]
                rows = sorted(repr(r) for r in rows)
                out[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    finally:
        engine.dispose()
    return out


@pytest.fixture(scope="module")
def uninterrupted(sandbox, pg_server_url, tmp_path_factory):
    """One night that nobody kills: its warehouse (kept for the module), home and digests."""
    name, url = _create_database(pg_server_url)
    home = tmp_path_factory.mktemp("uninterrupted")
    try:
        night = _night(sandbox, home, url)
        assert night.returncode == 0, night.stderr[-3000:]
        yield url, home, digests(url)
    finally:
        _drop_database(pg_server_url, name)


def _day_tables(url: str) -> dict[str, str | tuple[int, str] | None]:
    """Each day-dependent table as a reader of the day sees it: the reader's refusal, the table's
    digest when the reader accepts it, or None when it was never built (no build, no rows)."""
    wh = store.Warehouse(url)
    try:
        now, tables = builds.current(wh), digests(url)
        out: dict[str, str | tuple[int, str] | None] = {}
        for table in DAY_TABLES:
            try:
                runtime.read_of_day(wh, table, date.fromisoformat(AS_OF))
            except dg.Failure as refused:  # a table never built is refused too
                never_built = table not in now and not tables[table][0]
                out[table] = None if never_built else f"refused: {refused.description}"
            else:
                out[table] = tables[table]
        return out
    finally:
        wh.dispose()


def _chain(sandbox, server_url: str, home: Path, points: list[str]):
    """One warehouse killed at each point in turn: the first night, then a retry from failure per
    point; then a retry that finishes and a whole-job rerun. Returns what readers saw after each
    kill, the digests after the finishing retry and after the rerun."""
    name, url = _create_database(server_url)
    try:
        seen = []
        for i, point in enumerate(points):
            started = time.monotonic()
            killed = (_retry if i else _night)(sandbox, home, url, kill_at=point)
            print(f"{point}: killed after {time.monotonic() - started:.1f} s", file=sys.stderr)
            assert killed.returncode == -signal.SIGKILL, f"not killed at {point}: {killed.stderr[-2000:]}"
            seen.append((point, _day_tables(url)))
        finished = _retry(sandbox, home, url)
        assert finished.returncode == 0, finished.stderr[-3000:]
        recovered = digests(url)
        again = _night(sandbox, home, url)
        assert again.returncode == 0, again.stderr[-3000:]
        return seen, recovered, digests(url)
    finally:
        _drop_database(server_url, name)


@pytest.mark.slow
@pytest.mark.faults
def test_a_night_killed_at_every_boundary_and_inside_every_write_ends_as_an_uninterrupted_night(
        sandbox, uninterrupted, pg_server_url, tmp_path):
    _url, _home, expected = uninterrupted
    assert expected["receivables"][0] > 0 and expected["dunning_history"][0] > 0
    assert expected["warehouse_builds"][0] == len(DAY_TABLES)  # every day-dependent table is listed
    # The two chains on two warehouses at once (a core each on a quiet machine).
    with ThreadPoolExecutor(max_workers=len(CHAINS)) as pool:
        futures = {moment: pool.submit(_chain, sandbox, pg_server_url, tmp_path / moment, points)
                   for moment, points in CHAINS.items()}
        results = {moment: f.result() for moment, f in futures.items()}

    for moment, (seen, recovered, rerun) in results.items():
        assert [point for point, _ in seen] == CHAINS[moment]
        half_written = {(point, table): (state, expected[table]) for point, tables in seen
                        for table, state in tables.items()
                        if state is not None and not str(state).startswith("refused: ") and state != expected[table]}
        assert half_written == {}, moment
        # Each point left the night unfinished where it should: the step's table is not built yet
        # after a kill inside its write, and built (as the uninterrupted night built it) after one.
        for point, tables in seen:
            table = point.split(":")[0]
            if table in tables:
                assert (tables[table] is None) == (moment == "mid-write"), (point, tables[table])
        assert {t: recovered[t] for t in expected if recovered[t] != expected[t]} == {}, moment
        assert {t: rerun[t] for t in expected if rerun[t] != expected[t]} == {}, moment


def _only(sandbox, home: Path, url: str, asset: str) -> subprocess.CompletedProcess:
    """Materialize one asset for the day, nothing upstream of it (as from the UI or the CLI)."""
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dunning_pipeline.definitions",
           "--select", asset, "--partition", AS_OF]
    return subprocess.run(cmd, cwd=REPO, env=_env(sandbox, home, url, None), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=900, check=False)


@pytest.mark.slow
@pytest.mark.faults
def test_after_a_kill_between_receivables_and_invoice_aging_its_readers_refuse_until_it_is_rebuilt(
        sandbox, uninterrupted):
    url, home, _expected = uninterrupted  # runs after the chains: their digests were taken
    # The day run again, killed once receivables is rebuilt: invoice_aging is still the one built
    # from the receivables of the first night.
    killed = _night(sandbox, home, url, kill_at="receivables:after")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    refused = _only(sandbox, home, url, "late_payment_charges")
    assert refused.returncode != 0
    message = " ".join(refused.stderr.split())  # the log wraps long lines
    assert "invoice_aging (as-of 2026-03-02) was built from receivables of run" in message
    assert "rebuild invoice_aging for 2026-03-02" in message

    rebuilt = _only(sandbox, home, url, "invoice_aging")  # what the message asks for
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    again = _only(sandbox, home, url, "late_payment_charges")
    assert again.returncode == 0, again.stderr[-3000:]

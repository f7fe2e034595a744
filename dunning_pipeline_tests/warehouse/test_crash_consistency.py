"""Crash consistency: a night killed with SIGKILL at an asset boundary or inside a large write,
then run again, leaves the warehouse exactly as one uninterrupted night does, table by table
(row counts and a content digest), on PostgreSQL.

Each night is `dagster job execute` of the nightly job in its own process, on a small sandbox;
the kill comes from the warehouse write path's test-only switch `DUNNING_TEST_KILL_AT`
(`store._kill_point`), so it lands exactly at the chosen moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from dunning_pipeline.odoo.extract import LINES_STATE_KEY, RECONCILIATIONS_STATE_KEY
from dunning_pipeline.partitions import PARTITION_TAG
from dunning_pipeline.warehouse import store

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-03-02"
# Columns that name the run or the moment of writing, not what the night computed.
VOLATILE = {"run_id", "created_run_id", "delivered_run_id", "claimed_by_run_id", "extracted_at", "recorded_at",
            "quarantined_at", "built_at"}
VOLATILE_IN = {
    "dunning_history": {"id"},  # a killed insert used up sequence numbers: the ids move on
    "dunning_state": {"history_id"},
    "extract_state": {"updated_at"},
    "warehouse_builds": {"inputs"},  # run ids of the inputs
}
# State rows whose value is a moment of writing: the marks of the receivable lines and the
# reconciliations are the newest `extracted_at` of the invoices.
VOLATILE_STATE = {LINES_STATE_KEY, RECONCILIATIONS_STATE_KEY}
KILL_POINTS = [
    "odoo_invoices:mid-write",      # inside the extract's upsert, before its commit
    "receivables:after",            # between receivables and invoice_aging
    "instalment_aging:mid-write",   # inside invoice_aging's transaction (both tables)
    "dunning_history:mid-write",    # inside the audit log's append
    "dunning_history:after",        # history recorded, the reporting not yet built
    "reminder_drafts:mid-write",    # inside the last asset's write
]


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


def _night(sandbox, home: Path, url: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    home.mkdir(exist_ok=True)
    env = {**os.environ, **sandbox.env, "DAGSTER_HOME": str(home), "DUNNING_DATABASE_URL": url,
           "GX_ANALYTICS_ENABLED": "False"}
    env.pop(store.KILL_AT_VAR, None)
    if kill_at:
        env[store.KILL_AT_VAR] = kill_at
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "dunning_pipeline.definitions",
           "-j", "nightly_dunning", "--tags", json.dumps({PARTITION_TAG: AS_OF})]
    return subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=900, check=False)


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
def uninterrupted(sandbox, pg_server_url, tmp_path_factory) -> dict[str, tuple[int, str]]:
    name, url = _create_database(pg_server_url)
    try:
        night = _night(sandbox, tmp_path_factory.mktemp("uninterrupted"), url)
        assert night.returncode == 0, night.stderr[-3000:]
        return digests(url)
    finally:
        _drop_database(pg_server_url, name)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_night_killed_and_run_again_equals_an_uninterrupted_night(kill_at, sandbox, uninterrupted,
                                                                     pg_database, tmp_path):
    killed = _night(sandbox, tmp_path / "home", pg_database, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, f"not killed at {kill_at}: {killed.stderr[-2000:]}"
    assert digests(pg_database) != uninterrupted  # the kill really left the night unfinished

    again = _night(sandbox, tmp_path / "home", pg_database)
    assert again.returncode == 0, again.stderr[-3000:]
    after = digests(pg_database)
    differing = {t: (after[t], uninterrupted[t]) for t in uninterrupted if after[t] != uninterrupted[t]}
    assert differing == {}
    assert uninterrupted["receivables"][0] > 0 and uninterrupted["dunning_history"][0] > 0

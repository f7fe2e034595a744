"""Shared fixtures: a real PostgreSQL database per test session (dropped afterwards) and SQLite.

PostgreSQL is required, not optional: if it cannot be reached the tests fail and say so.
`TEST_PG_URL` points at the server (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from dunning_pipeline.warehouse.store import Warehouse

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _admin_engine() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The admin URL of a reachable PostgreSQL, or a failure that says how to provide one."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the tests and is not reachable at {ADMIN_URL}: {exc}")
    finally:
        engine.dispose()
    return ADMIN_URL


@contextmanager
def fresh_pg_database(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; dropped afterwards. Yields its URL."""
    name = f"dunning_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def pg_database(pg_server_url) -> str:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards. Yields its URL."""
    with fresh_pg_database(pg_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path) -> str:
    """Both warehouse backends: each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def warehouse(warehouse_url) -> Warehouse:
    wh = Warehouse(warehouse_url)
    wh.ensure_schema()
    yield wh
    wh.dispose()


@pytest.fixture
def sandbox():
    """A running sandbox (local Odoo, Zendesk, Slack) with small data; stopped afterwards.

    Point a client at it with `sandbox.env` (ODOO_URL, ZENDESK_URL, SLACK_API_URL, credentials).
    """
    from datetime import date

    from dunning_pipeline.sandbox import Sandbox

    with Sandbox(seed=7, customers=30, invoices=300, as_of=date(2026, 3, 2)) as sb:
        yield sb


def production_instance_env(home, pg_url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables (and the compute-log folder) that the repository's dagster.yaml
    reads, pointing at the PostgreSQL database `pg_url`."""
    url = sa.engine.make_url(pg_url)
    return {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database,
        "DAGSTER_PG_USERNAME": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "trust-auth-ignores-this",
        "DAGSTER_COMPUTE_LOGS_DIR": str(home / "compute_logs"),
    }


def point_at_sandbox(sb, tmp_path, monkeypatch) -> str:
    """Point the pipeline's environment at a running sandbox, a Dagster home and a SQLite
    warehouse under `tmp_path`; returns the warehouse URL."""
    from dunning_pipeline import settings

    for name, value in sb.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    monkeypatch.setenv(settings.DATABASE_URL_VAR, url)
    return url

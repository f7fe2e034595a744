"""Fixtures of the workbench tests: a warehouse after one night of the dunning assets on the
hand-made dataset (with script in a customer name and an email body), users alice and bob,
and logged-in TestClients. Today is 2026-03-02, the as-of day."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime

import dagster as dg
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from dunning_pipeline.dunning.assets import ASSET_CHECKS, ASSETS
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.workbench import auth
from dunning_pipeline.workbench.app import create_app
from dunning_pipeline.workbench.config import WorkbenchConfig
from dunning_pipeline_tests.conftest import _admin_engine
from dunning_pipeline_tests.dunning import dataset as D

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # the afternoon of the as-of day
SCRIPT_NAME = 'Acme <script>alert("name")</script> GmbH'
SCRIPT_BODY = "Please see <script>alert('body')</script> <img src=x onerror=alert(1)>"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def fill(wh: Warehouse) -> None:
    customers = D.customers()
    customers.loc[customers["id"] == 10, "name"] = SCRIPT_NAME
    comments = D.comments()
    comments.loc[comments["id"] == 3, "body"] = SCRIPT_BODY
    wh.upsert("odoo_invoices", D.invoices())
    wh.upsert("odoo_customers", customers)
    wh.upsert("zendesk_tickets", D.tickets())
    wh.upsert("zendesk_users", D.users())
    wh.upsert("zendesk_comments", comments)
    wh.upsert("data_quality_quarantine", D.quarantine())
    wh.append("dunning_holds", D.manual_holds().drop(columns=["id"]))


def night(url: str, day: str) -> None:
    result = dg.materialize([*ASSETS, *ASSET_CHECKS], resources={"warehouse": WarehouseResource(database_url=url)},
                            partition_key=day)
    assert result.success


@pytest.fixture(scope="session")
def users_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("users") / "users.txt"
    users = auth.UsersFile(path)
    for name, pw in PASSWORDS.items():
        users.add(name, pw)
    return str(path)


def _new_warehouse_url(kind: str, tmp_path) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'wb-{uuid.uuid4().hex[:6]}.sqlite'}", lambda: None
    name = f"dunning_test_wb_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(str(admin.url)).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    return url, drop


def aged_warehouse(kind: str, tmp_path, monkeypatch) -> tuple[str, callable]:
    monkeypatch.delenv("DUNNING_POLICY_FILE", raising=False)
    monkeypatch.setenv("DUNNING_TIMEZONE", "UTC")
    url, drop = _new_warehouse_url(kind, tmp_path)
    wh = Warehouse(url)
    wh.ensure_schema()
    fill(wh)
    wh.dispose()
    night(url, TODAY.isoformat())
    return url, drop


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def aged_url(request, tmp_path_factory, pg_server_url):
    """A warehouse after the night of 2026-03-02, shared by a module's tests (they only add rows)."""
    mp = pytest.MonkeyPatch()
    try:
        url, drop = aged_warehouse(request.param, tmp_path_factory.mktemp("aged"), mp)
        yield url
        drop()
    finally:
        mp.undo()


def make_client(url: str, users_file: str, **kwargs) -> TestClient:
    config_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in WorkbenchConfig.__dataclass_fields__}
    client_kw = {k: kwargs.pop(k) for k in ("client",) if k in kwargs}
    cfg = WorkbenchConfig(database_url=url, users_file=users_file, secret=b"s" * 32, secret_is_random=False,
                          odoo_url="https://odoo.example", **config_kw)
    return TestClient(create_app(cfg, now=lambda: NOW, **kwargs), follow_redirects=False, **client_kw)


def csrf_of(html: str) -> str:
    return CSRF.search(html).group(1)


def login(client: TestClient, name: str, password: str | None = None):
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_of(page.text), "username": name,
                                       "password": PASSWORDS.get(name, "") if password is None else password})


@pytest.fixture
def alice(aged_url, users_file) -> TestClient:
    client = make_client(aged_url, users_file)
    assert login(client, "alice").status_code == 303
    return client


@pytest.fixture
def bob(aged_url, users_file) -> TestClient:
    client = make_client(aged_url, users_file)
    assert login(client, "bob").status_code == 303
    return client

"""The warehouse resource: a wrong DUNNING_DATABASE_URL fails naming the variable, never the password."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from dunning_pipeline.settings import SettingsError
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.warehouse.store import WarehouseError

PASSWORD = "hunter2-Secret"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_url_that_does_not_parse_names_the_variable_not_the_url():
    resource = WarehouseResource(database_url=f"postgresql://dunning:{PASSWORD}@db.internal:54x2/dunning")
    with pytest.raises(SettingsError) as exc:
        resource.get_warehouse()
    message = str(exc.value)
    assert "DUNNING_DATABASE_URL cannot be parsed" in message and "port is a number" in message
    assert PASSWORD not in message and "54x2" not in message


def test_an_unreachable_server_names_the_variable_and_the_place_without_the_password():
    port = _closed_port()
    resource = WarehouseResource(database_url=f"postgresql://dunning:{PASSWORD}@127.0.0.1:{port}/dunning")
    with pytest.raises(WarehouseError) as exc:
        resource.get_warehouse()
    message = str(exc.value)
    assert f"postgresql://dunning:***@127.0.0.1:{port}/dunning" in message
    assert "check DUNNING_DATABASE_URL" in message and "Connection refused" in message
    assert PASSWORD not in message


def test_a_missing_database_on_a_real_server_is_named(pg_server_url):
    url = sa.engine.make_url(pg_server_url).set(drivername="postgresql", database="dunning_no_such_db")
    resource = WarehouseResource(database_url=url.render_as_string(hide_password=False))
    with pytest.raises(WarehouseError, match='database "dunning_no_such_db" does not exist.*check DUNNING_DATABASE_URL'):
        resource.get_warehouse()


def test_a_sqlite_file_that_cannot_be_created_is_named(tmp_path):
    missing_dir = tmp_path / "no" / "such" / "dir"
    resource = WarehouseResource(database_url=f"sqlite:///{missing_dir / 'warehouse.sqlite'}")
    with pytest.raises(WarehouseError, match="unable to open database file.*check DUNNING_DATABASE_URL"):
        resource.get_warehouse()


def test_a_good_url_opens_and_migrates(sqlite_url):
    wh = WarehouseResource(database_url=sqlite_url).get_warehouse()
    try:
        assert "odoo_invoices" in sa.inspect(wh.engine).get_table_names()
    finally:
        wh.dispose()


def test_the_resource_never_shows_the_url_it_holds():
    resource = WarehouseResource(database_url=f"postgresql://dunning:{PASSWORD}@db.internal:5432/dunning")
    assert PASSWORD not in repr(resource) and PASSWORD not in str(resource)

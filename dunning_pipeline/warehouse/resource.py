"""The warehouse as a Dagster resource."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from dunning_pipeline import settings
from dunning_pipeline.warehouse.store import Warehouse, WarehouseError


class WarehouseResource(dg.ConfigurableResource):
    """The SQL database the pipeline writes its tables to.

    `database_url` comes from `DUNNING_DATABASE_URL` (a secret: it may hold a password); when it
    is unset, an embedded SQLite file under `$DAGSTER_HOME` is used.
    """

    database_url: str | None = Field(
        default=None, repr=False,  # may hold a password
        description="SQLAlchemy URL of the warehouse (DUNNING_DATABASE_URL); unset: SQLite under $DAGSTER_HOME",
    )
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get_warehouse(self) -> Warehouse:
        if self._warehouse is None:
            url = self.database_url or settings.default_database_url()
            settings.check_database_url(url)
            self._warehouse = open_warehouse(url)
        return self._warehouse


def open_warehouse(url: str, variable: str = settings.DATABASE_URL_VAR) -> Warehouse:
    """Connect and migrate; a URL that does not parse or a database that cannot be reached fails
    with a message naming `variable` and the place (password hidden), never the URL itself."""
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port only fails when read
    except (ValueError, sa.exc.ArgumentError):
        # The parser's own message may quote part of the URL, so it is not repeated.
        raise settings.SettingsError(
            f"{variable} cannot be parsed as a SQLAlchemy URL: expected"
            " postgresql://user:password@host:5432/database or sqlite:////path/to/file.sqlite"
            " (check the port is a number and special characters in the password are %-encoded)"
        ) from None
    wh = Warehouse(url)
    try:
        wh.ensure_schema()
    except sa.exc.OperationalError as exc:
        wh.dispose()
        place = parsed.render_as_string(hide_password=True)
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        if parsed.password:
            reason = reason.replace(parsed.password, "***")
        raise WarehouseError(
            f"cannot open the warehouse {place} (from {variable}): {reason}; check {variable}"
            " (host, port, database, user and password) and that the database server is up"
        ) from None
    return wh

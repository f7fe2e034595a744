"""The warehouse as a Dagster resource."""

from __future__ import annotations

from functools import cached_property

import dagster as dg
from pydantic import PrivateAttr

from dunning_pipeline import settings
from dunning_pipeline.warehouse.store import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The SQL database the pipeline writes its tables to.

    `database_url` comes from `DUNNING_DATABASE_URL` (a secret: it may hold a password); when it
    is unset, an embedded SQLite file under `$DAGSTER_HOME` is used.
    """

    database_url: str | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get_warehouse(self) -> Warehouse:
        if self._warehouse is None:
            url = self.database_url or settings.default_database_url()
            settings.check_database_url(url)
            wh = Warehouse(url)
            wh.ensure_schema()
            self._warehouse = wh
        return self._warehouse

    @cached_property
    def backend(self) -> str:
        return "postgresql" if (self.database_url or "").startswith("postgresql") else "sqlite"

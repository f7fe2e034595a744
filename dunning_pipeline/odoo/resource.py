"""Odoo as a Dagster resource: validated configuration that builds an `OdooClient`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from dunning_pipeline import settings

if TYPE_CHECKING:  # the client (and requests) is imported when a step asks for it, not at load
    from dunning_pipeline.odoo.client import OdooClient


class OdooResource(dg.ConfigurableResource):
    """Odoo's external API, authenticated with an API key (ODOO_URL, ODOO_DB, ODOO_USERNAME,
    ODOO_API_KEY, optional ODOO_PROTOCOL). Works with Odoo 16 to 19: JSON-RPC, or JSON-2 on
    Odoo 19 and later."""

    url: str = Field(description="Root address of the Odoo server (ODOO_URL), e.g. https://acme.odoo.com")
    database: str = Field(description="Odoo database name (ODOO_DB)")
    username: str = Field(description="Login of the API user (ODOO_USERNAME); used by JSON-RPC")
    api_key: str = Field(
        repr=False,
        description="API key of that user (ODOO_API_KEY; Preferences > Account Security)."
        " A secret: bind it with EnvVar.",
    )
    protocol: str | None = Field(
        default=None,
        description="ODOO_PROTOCOL: 'auto' (the default: JSON-2 on Odoo 19+, else JSON-RPC, and"
        " JSON-RPC with a warning where /json/2 is blocked), 'json2' or 'jsonrpc'",
    )
    page_size: int = Field(default=2000, description="Records per request")
    timeout_seconds: float = Field(
        default=30.0, description="Read timeout of one attempt (connect: 5 s); all retries of a"
        " failing Odoo stop at DUNNING_SOURCE_DEADLINE_SECONDS (60 s)")
    max_retries: int = Field(
        default=5, description="Retries of 429, 5xx, timeouts, dropped or reset connections and cut answers"
    )
    backoff_factor: float = Field(
        default=1.0,
        description="Exponential backoff between retries, in seconds (a Retry-After header wins)",
    )
    overlap_seconds: int = Field(
        default=300,
        description="Incremental runs re-read records written this long before the high-water"
        " mark, for Odoo transactions that commit after stamping write_date",
    )

    def validated(self) -> OdooResource:
        """Check every value, with errors that name the environment variable (never a secret)."""
        settings.check_http_url(self.url, "ODOO_URL")
        settings.require(self.database, "ODOO_DB")
        settings.require(self.username, "ODOO_USERNAME")
        settings.require(self.api_key, "ODOO_API_KEY")
        settings.odoo_protocol(self.protocol)
        for name, value, low in (
            ("page_size", self.page_size, 1),
            ("timeout_seconds", self.timeout_seconds, 0.001),
            ("max_retries", self.max_retries, 0),
            ("backoff_factor", self.backoff_factor, 0),
            ("overlap_seconds", self.overlap_seconds, 0),
        ):
            if value < low:
                raise settings.SettingsError(f"OdooResource.{name} must be at least {low} (got {value!r})")
        return self

    def get_client(self, on_retry=None, on_warning=None) -> OdooClient:
        """A new client (close it, or use it as a context manager); `on_retry(message)` hears
        of each retried request, `on_warning(message)` of a protocol fallback or deprecation
        (e.g. the run's log)."""
        from dunning_pipeline.odoo.client import OdooClient

        self.validated()
        return OdooClient(
            settings.check_http_url(self.url, "ODOO_URL"),
            settings.require(self.database, "ODOO_DB"),
            settings.require(self.username, "ODOO_USERNAME"),
            settings.require(self.api_key, "ODOO_API_KEY"),
            protocol=settings.odoo_protocol(self.protocol),
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_factor=self.backoff_factor,
            on_retry=on_retry,
            on_warning=on_warning,
        )

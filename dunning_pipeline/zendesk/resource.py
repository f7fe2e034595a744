"""Zendesk as a Dagster resource: configuration from the environment, validated, and the client."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from dunning_pipeline import settings

if TYPE_CHECKING:  # the client (and requests) is imported when a step asks for it, not at load
    from dunning_pipeline.zendesk.client import ZendeskClient


class ZendeskResource(dg.ConfigurableResource):
    """Zendesk Support API with an API token (ZENDESK_URL, ZENDESK_EMAIL, ZENDESK_API_TOKEN).

    The token's user must be an admin (incremental exports are admin-only).
    """

    url: str = Field(description="Base URL of the account, e.g. https://acme.zendesk.com (ZENDESK_URL)")
    email: str = Field(description="Email of the user the API token belongs to (ZENDESK_EMAIL)")
    api_token: str = Field(repr=False, description="API token (ZENDESK_API_TOKEN); a secret")
    page_size: int = Field(default=1000, description="Records per incremental export page (1-1000)")
    export_requests_per_minute: int = Field(
        default=10, description="Budget of the incremental export endpoints (10; 30 with the add-on)"
    )
    timeout_seconds: float = Field(
        default=30.0, description="Read timeout of one attempt (connect: 5 s); all retries of a"
        " failing Zendesk stop at DUNNING_SOURCE_DEADLINE_SECONDS (60 s)")
    max_retries: int = Field(
        default=5, description="Retries on 5xx, timeouts, dropped or reset connections and cut answers")
    rate_limit_budget_seconds: float = Field(
        default=900.0,
        description="How long one request may wait out 429s in total, honouring Retry-After (seconds)",
    )
    retry_backoff_seconds: float = Field(
        default=0.5, description="Exponential backoff factor between retries without Retry-After"
    )
    comments_page_size: int = Field(default=100, description="Comments per page (1-100)")
    comments_concurrency: int = Field(
        default=4, description="Comment requests in flight at once (one request per ticket; 1-32)"
    )
    start_time: int = Field(
        default=0,
        description=(
            "Unix time the very first export starts from (0: everything);"
            " later runs resume from the stored cursor"
        ),
    )

    def get_client(self, logger: logging.Logger | Any | None = None) -> ZendeskClient:
        """A client on the validated configuration; errors name the environment variable."""
        from dunning_pipeline.zendesk.client import ZendeskClient

        url = settings.check_http_url(settings.require(self.url, "ZENDESK_URL"), "ZENDESK_URL")
        email = settings.require(self.email, "ZENDESK_EMAIL")
        if "@" not in email:
            raise settings.SettingsError(
                "ZENDESK_EMAIL must be the email address of the Zendesk user the API token belongs to"
            )
        token = settings.require(self.api_token, "ZENDESK_API_TOKEN")
        for name, value, low, high in (
            ("page_size", self.page_size, 1, 1000),
            ("comments_page_size", self.comments_page_size, 1, 100),
            ("comments_concurrency", self.comments_concurrency, 1, 32),
            ("export_requests_per_minute", self.export_requests_per_minute, 1, 10_000),
            ("max_retries", self.max_retries, 0, 100),
        ):
            if not low <= value <= high:
                raise settings.SettingsError(
                    f"zendesk resource: {name} must be between {low} and {high} (got {value})"
                )
        if self.rate_limit_budget_seconds < 0:
            raise settings.SettingsError("zendesk resource: rate_limit_budget_seconds must be >= 0")
        if self.timeout_seconds <= 0:
            raise settings.SettingsError("zendesk resource: timeout_seconds must be positive")
        if self.start_time < 0:
            raise settings.SettingsError("zendesk resource: start_time must be a Unix time >= 0")
        return ZendeskClient(
            url,
            email,
            token,
            page_size=self.page_size,
            comments_page_size=self.comments_page_size,
            export_requests_per_minute=self.export_requests_per_minute,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_factor=self.retry_backoff_seconds,
            rate_limit_budget_seconds=self.rate_limit_budget_seconds,
            logger=logger,
        )

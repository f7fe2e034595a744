"""Slack as a Dagster resource: validated configuration that builds a poster, links and limits.

The contract fields (bot_token, channel, api_url, alerts_channel, dry_run) are bound to
environment variables in `dunning_pipeline.definitions`. The optional fields below fall back to
non-secret environment variables when left unset, so an operator configures them the same way:
ODOO_URL and ZENDESK_URL (link targets), DAGSTER_WEBSERVER_URL (run links), SLACK_DRY_RUN,
SLACK_MAX_MESSAGES.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from dunning_pipeline import settings

if TYPE_CHECKING:  # the poster and the digest (slack_sdk) are imported when a step asks for them
    from dunning_pipeline.slack.delivery import SlackPoster
    from dunning_pipeline.slack.digest import Limits, Links

CHANNEL_VAR = settings.SLACK_CHANNEL_VAR
TOKEN_VAR = settings.SLACK_TOKEN_VAR

DRY_RUN_VAR = "SLACK_DRY_RUN"
LEASE_VAR = "SLACK_CLAIM_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 600
ATTACH_CHART_VAR = "SLACK_ATTACH_CHART"
MAX_MESSAGES_VAR = "SLACK_MAX_MESSAGES"
WEBSERVER_VAR = "DAGSTER_WEBSERVER_URL"
DEFAULT_WEBSERVER_URL = "http://localhost:3000"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _flag(name: str) -> bool:
    value = (os.environ.get(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise settings.SettingsError(f"{name} must be true or false (got {value!r})")


def _field_or_env_int(value: int | None, variable: str, default: int) -> int:
    """The resource field when set, else the environment variable, else the default."""
    if value is not None:
        return value
    raw = (os.environ.get(variable) or "").strip()
    if raw and not raw.isdigit():
        raise settings.SettingsError(f"{variable} must be a whole number (got {raw!r})")
    return int(raw) if raw else default


def _optional_url(value: str | None, variable: str) -> str | None:
    value = value or os.environ.get(variable)
    return settings.check_http_url(value, variable) if value else None


class SlackResource(dg.ConfigurableResource):
    """Slack Web API with a bot token (SLACK_BOT_TOKEN, needs chat:write), the weekly alert's
    channel (SLACK_CHANNEL), the run-failure channel (SLACK_ALERTS_CHANNEL) and an optional API
    base URL (SLACK_API_URL, e.g. the sandbox's)."""

    bot_token: str = Field(
        repr=False,
        description="Bot User OAuth Token, xoxb-... (SLACK_BOT_TOKEN). A secret: bind it with EnvVar.",
    )
    channel: str = Field(description="Channel of the weekly alert, a name (#dunning) or an ID (SLACK_CHANNEL)")
    api_url: str | None = Field(
        default=None, description="Slack API base URL override (SLACK_API_URL), e.g. http://127.0.0.1:9000/api/"
    )
    alerts_channel: str | None = Field(
        default=None,
        description="Channel for failed-run alerts (SLACK_ALERTS_CHANNEL); unset: the alert channel",
    )
    dry_run: bool = Field(
        default=False,
        description="Render the alert into the run's metadata without posting (also SLACK_DRY_RUN=true)",
    )
    odoo_url: str | None = Field(default=None, description="Odoo base URL for invoice links (default: ODOO_URL)")
    zendesk_url: str | None = Field(
        default=None, description="Zendesk base URL for ticket links (default: ZENDESK_URL)"
    )
    invoice_path: str = Field(
        default="/odoo/action-account.action_move_out_invoice_type/{invoice_id}",
        description="Path of an invoice in Odoo's web client; on Odoo 16 use"
        " '/web#id={invoice_id}&model=account.move&view_type=form'",
    )
    webserver_url: str | None = Field(
        default=None,
        description=f"Dagster UI base URL for run links (default: {WEBSERVER_VAR}, else {DEFAULT_WEBSERVER_URL})",
    )
    max_messages: int | None = Field(
        default=None,
        description=f"Most messages one alert may take (default: {MAX_MESSAGES_VAR}, else 20);"
        " beyond it the alert says how many customer lines it left out",
    )
    attach_chart: bool = Field(
        default=False,
        description=f"Attach the AR aging chart to the weekly alert's thread (also {ATTACH_CHART_VAR}=true);"
        " needs the scope files:write",
    )
    rate_limit_retries: int = Field(default=5, description="How often a 429 is waited out and retried")
    timeout_seconds: int = Field(default=30, description="Per-request timeout")
    claim_lease_seconds: int | None = Field(
        default=None,
        description=f"How long a run's claim on an alert part holds before another run may take it"
        f" over after checking the channel (default: {LEASE_VAR}, else 600)",
    )

    # -- validated views ---------------------------------------------------------------------
    def is_dry_run(self) -> bool:
        return bool(self.dry_run) or _flag(DRY_RUN_VAR)

    def attaches_chart(self) -> bool:
        return bool(self.attach_chart) or _flag(ATTACH_CHART_VAR)

    def target_channel(self) -> str:
        return settings.require(self.channel, CHANNEL_VAR)

    def alerts_target(self) -> tuple[str, str]:
        """The run-failure channel and the variable that names it."""
        if (self.alerts_channel or "").strip():
            return self.alerts_channel.strip(), "SLACK_ALERTS_CHANNEL"
        return self.target_channel(), CHANNEL_VAR

    def poster(self, channel_var: str = CHANNEL_VAR) -> SlackPoster:
        """A poster; `channel_var` is the variable its errors tell the operator to fix."""
        from dunning_pipeline.slack.delivery import SlackPoster

        settings.require(self.bot_token, TOKEN_VAR)
        api_url = None
        if self.api_url:
            # slack_sdk appends the method name to the base URL, so it must end with '/'.
            api_url = settings.check_http_url(self.api_url, "SLACK_API_URL") + "/"
        return SlackPoster(self.bot_token, api_url=api_url, rate_limit_retries=self.rate_limit_retries,
                           timeout=self.timeout_seconds, channel_var=channel_var)

    def links(self) -> Links:
        from dunning_pipeline.slack.digest import Links

        return Links(
            odoo_url=_optional_url(self.odoo_url, "ODOO_URL"),
            zendesk_url=_optional_url(self.zendesk_url, "ZENDESK_URL"),
            invoice_path=self.invoice_path,
        )

    def limits(self) -> Limits:
        from dunning_pipeline.slack.digest import Limits

        value = _field_or_env_int(self.max_messages, MAX_MESSAGES_VAR, Limits().max_messages)
        if value < 1:
            raise settings.SettingsError(f"SlackResource.max_messages must be at least 1 (got {value})")
        return Limits(max_messages=value)

    def claim_lease(self) -> timedelta:
        return timedelta(seconds=_field_or_env_int(self.claim_lease_seconds, LEASE_VAR, DEFAULT_LEASE_SECONDS))

    def run_url(self, run_id: str) -> str:
        base = _optional_url(self.webserver_url, WEBSERVER_VAR) or DEFAULT_WEBSERVER_URL
        return f"{base}/runs/{run_id}"

"""Slack as a Dagster resource (stub: fields are the contract)."""

import dagster as dg


class SlackResource(dg.ConfigurableResource):
    """Slack Web API with a bot token (SLACK_BOT_TOKEN, SLACK_CHANNEL, SLACK_API_URL)."""

    bot_token: str
    channel: str
    api_url: str | None = None
    alerts_channel: str | None = None
    dry_run: bool = False

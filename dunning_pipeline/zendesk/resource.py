"""Zendesk as a Dagster resource (stub: fields are the contract; the client lands in zendesk/client.py)."""

import dagster as dg


class ZendeskResource(dg.ConfigurableResource):
    """Zendesk Support API with an API token (ZENDESK_URL, ZENDESK_EMAIL, ZENDESK_API_TOKEN)."""

    url: str
    email: str
    api_token: str
    page_size: int = 1000
    export_requests_per_minute: int = 10
    timeout_seconds: float = 60.0
    max_retries: int = 5

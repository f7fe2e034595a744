"""Odoo as a Dagster resource (stub: fields are the contract; the client lands in odoo/client.py)."""

import dagster as dg


class OdooResource(dg.ConfigurableResource):
    """Odoo's external API, authenticated with an API key (ODOO_URL, ODOO_DB, ODOO_USERNAME, ODOO_API_KEY)."""

    url: str
    database: str
    username: str
    api_key: str
    protocol: str = "auto"  # auto | jsonrpc | json2
    page_size: int = 2000
    timeout_seconds: float = 60.0
    max_retries: int = 5

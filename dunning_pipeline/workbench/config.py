"""The workbench's settings, read from the environment once at start.

- `DUNNING_DATABASE_URL`: the warehouse (default: the embedded SQLite under DAGSTER_HOME).
- `DUNNING_WORKBENCH_USERS`: the users file (`adduser` writes it).
- `DUNNING_WORKBENCH_SECRET`: the session-signing key, at least 32 characters; unset, a random
  key per process (everyone logs in again after a restart). Never logged.
- `DUNNING_WORKBENCH_TRUSTED_PROXY`: comma-separated addresses of an authenticating reverse
  proxy; only requests from them may name the user in `DUNNING_WORKBENCH_PROXY_HEADER`
  (default `X-Forwarded-Email`) or say `X-Forwarded-Proto: https`.
- `DUNNING_WORKBENCH_HTTPS=1`: served over https (Secure cookies) without a proxy saying so.
- `ODOO_URL`: links to the invoices in Odoo (none when unset).
- `DUNNING_WORKBENCH_ZENDESK_SEND=1`: a reminder draft can be sent through Zendesk (a new ticket
  or a public reply), with `ZENDESK_URL`, `ZENDESK_EMAIL`, `ZENDESK_API_TOKEN` (an agent's token;
  never shown). Unset: no send button.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field

from dunning_pipeline import settings

USERS_VAR = "DUNNING_WORKBENCH_USERS"
SECRET_VAR = "DUNNING_WORKBENCH_SECRET"
PROXY_VAR = "DUNNING_WORKBENCH_TRUSTED_PROXY"
PROXY_HEADER_VAR = "DUNNING_WORKBENCH_PROXY_HEADER"
HTTPS_VAR = "DUNNING_WORKBENCH_HTTPS"
ZENDESK_SEND_VAR = "DUNNING_WORKBENCH_ZENDESK_SEND"


@dataclass(frozen=True)
class WorkbenchConfig:
    database_url: str
    users_file: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    secret_is_random: bool = True
    trusted_proxies: frozenset[str] = frozenset()
    proxy_header: str = "X-Forwarded-Email"
    https: bool = False
    odoo_url: str | None = None
    page_size: int = 50  # rows per page: worklist customers, a customer's open invoices
    zendesk_url: str | None = None  # set: reminders can be sent through Zendesk
    zendesk_email: str | None = None
    zendesk_api_token: str | None = field(default=None, repr=False)

    @property
    def zendesk_send(self) -> bool:
        return bool(self.zendesk_url and self.zendesk_email and self.zendesk_api_token)

    @property
    def proxy_auth(self) -> bool:
        return bool(self.trusted_proxies)


def _addresses(value: str) -> frozenset[str]:
    out = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            out.add(str(ipaddress.ip_address(part)))
        except ValueError:
            raise settings.SettingsError(f"{PROXY_VAR}: {part!r} is not an IP address") from None
    return frozenset(out)


def from_env(environ: dict[str, str] | None = None) -> WorkbenchConfig:
    env = os.environ if environ is None else environ
    url = env.get(settings.DATABASE_URL_VAR) or settings.default_database_url(env)
    settings.check_database_url(url)
    secret = env.get(SECRET_VAR)
    if secret is not None and len(secret) < 32:
        raise settings.SettingsError(f"{SECRET_VAR} must be at least 32 characters "
                                     f"(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    odoo = env.get("ODOO_URL")
    zendesk = {}
    if _flag(env.get(ZENDESK_SEND_VAR)):
        zendesk = dict(
            zendesk_url=settings.check_http_url(settings.require(env.get("ZENDESK_URL"), "ZENDESK_URL"),
                                                "ZENDESK_URL"),
            zendesk_email=settings.require(env.get("ZENDESK_EMAIL"), "ZENDESK_EMAIL"),
            zendesk_api_token=settings.require(env.get("ZENDESK_API_TOKEN"), "ZENDESK_API_TOKEN"))
    return WorkbenchConfig(
        database_url=url,
        users_file=env.get(USERS_VAR) or None,
        secret=secret.encode() if secret else secrets.token_bytes(32),
        secret_is_random=not secret,
        trusted_proxies=_addresses(env.get(PROXY_VAR, "")),
        proxy_header=(env.get(PROXY_HEADER_VAR) or "X-Forwarded-Email").strip(),
        https=_flag(env.get(HTTPS_VAR)),
        odoo_url=settings.check_http_url(odoo, "ODOO_URL") if odoo else None,
        **zendesk,
    )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""Configuration read from the environment: names, parsing, and errors that name the variable.

Secrets (API keys, tokens, a database URL with a password) are passed to resources as
`dagster.EnvVar` so Dagster resolves them at run time and never shows them; this module only
validates values and never puts a value it read into an error message, except for values that
are not secret (a time zone, a URL without credentials).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIMEZONE_VAR = "DUNNING_TIMEZONE"
DATABASE_URL_VAR = "DUNNING_DATABASE_URL"
POLICY_FILE_VAR = "DUNNING_POLICY_FILE"
ODOO_PROTOCOL_VAR = "ODOO_PROTOCOL"
SLACK_TOKEN_VAR = "SLACK_BOT_TOKEN"
SLACK_CHANNEL_VAR = "SLACK_CHANNEL"
ODOO_PROTOCOLS = ("auto", "json2", "jsonrpc")
AS_OF_TAG = "dunning/as_of"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def timezone_name(environ: dict[str, str] | None = None) -> str:
    """The IANA time zone of the business day (`DUNNING_TIMEZONE`, default UTC), validated."""
    env = os.environ if environ is None else environ
    name = (env.get(TIMEZONE_VAR) or "UTC").strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"{TIMEZONE_VAR}={name!r} is not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC')"
        ) from exc
    return name


def timezone(environ: dict[str, str] | None = None) -> ZoneInfo:
    return ZoneInfo(timezone_name(environ))


def default_database_url(environ: dict[str, str] | None = None) -> str:
    """The embedded warehouse: a SQLite file under `$DAGSTER_HOME` (or ./.dagster_home)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'dunning_warehouse.sqlite'}"


def check_database_url(url: str, variable: str = DATABASE_URL_VAR) -> str:
    """Validate a SQLAlchemy URL without ever echoing it (it may hold a password)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.split("+", 1)[0] not in ("postgresql", "postgres", "sqlite"):
        raise SettingsError(
            f"{variable} must be a SQLAlchemy URL starting with postgresql:// or sqlite:///"
            + (f" (got a value starting with {scheme!r})" if scheme else " (got a value without a scheme)")
        )
    if scheme == "postgres":
        raise SettingsError(f"{variable}: use the scheme postgresql://, not postgres://")
    return url


def check_http_url(url: str, variable: str) -> str:
    """Validate a base URL such as ODOO_URL; the message names the variable."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"{variable} must be an http(s) URL such as https://example.com (got {url!r})"
        )
    if parts.username or parts.password:
        raise SettingsError(f"{variable} must not carry credentials; use the API key variable")
    return url.strip().rstrip("/")


def require(value: str | None, variable: str) -> str:
    """A non-empty value, or an error that names the variable (never the value)."""
    if value is None or not str(value).strip():
        raise SettingsError(f"{variable} is not set; see .env.example for what it must hold")
    return str(value).strip()


def odoo_protocol(value: str | None, variable: str = ODOO_PROTOCOL_VAR) -> str:
    """`auto` (unset or empty), `json2` or `jsonrpc`, case-insensitive; the message names the variable."""
    name = (value or "auto").strip().lower() or "auto"
    if name not in ODOO_PROTOCOLS:
        raise SettingsError(
            f"{variable} must be one of {', '.join(ODOO_PROTOCOLS)} (got {value!r}): auto picks JSON-2"
            " on Odoo 19+ and JSON-RPC before"
        )
    return name


SOURCE_DEADLINE_VAR = "DUNNING_SOURCE_DEADLINE_SECONDS"
DEFAULT_SOURCE_DEADLINE_SECONDS = 60.0


def source_deadline_seconds(environ: dict[str, str] | None = None) -> float:
    """How long an asset keeps retrying a source (Odoo, Zendesk, Slack) that gives no usable
    answer (`DUNNING_SOURCE_DEADLINE_SECONDS`, default 60), counted from the first failed
    attempt since its last good answer."""
    env = os.environ if environ is None else environ
    raw = (env.get(SOURCE_DEADLINE_VAR) or "").strip()
    if not raw:
        return DEFAULT_SOURCE_DEADLINE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 3600:
        raise SettingsError(f"{SOURCE_DEADLINE_VAR} must be a number of seconds between 1 and 3600 (got {raw!r})")
    return value
KPI_HISTORY_MONTHS_VAR = "DUNNING_KPI_HISTORY_MONTHS"
KPI_HISTORY_MONTHS_DEFAULT = 24


def kpi_history_months(environ: dict[str, str] | None = None) -> int:
    """How many months back `collection_kpis` rebuilds the days its series lacks
    (`DUNNING_KPI_HISTORY_MONTHS`, default 24; 0: none), validated."""
    env = os.environ if environ is None else environ
    text = (env.get(KPI_HISTORY_MONTHS_VAR) or str(KPI_HISTORY_MONTHS_DEFAULT)).strip()
    if not text.isdigit() or int(text) > 120:
        raise SettingsError(f"{KPI_HISTORY_MONTHS_VAR} must be a whole number of months from 0 to 120 (got {text!r})")
    return int(text)

"""Helpers for the Odoo tests: sandboxes per Odoo version, clients that retry without waiting."""

from __future__ import annotations

import socket
import types
from datetime import date

import pytest
import urllib3.util.retry

from dunning_pipeline.odoo.client import OdooClient

AS_OF = date(2026, 3, 2)
OUT_TYPES = ("out_invoice", "out_refund")


def make_sandbox(version: str = "17.0", *, customers: int = 12, invoices: int = 150, seed: int = 11):
    from dunning_pipeline.sandbox import Sandbox

    return Sandbox(seed=seed, customers=customers, invoices=invoices, as_of=AS_OF, odoo_version=version)


@pytest.fixture(params=["17.0", "19.0"], ids=["jsonrpc-17.0", "json2-19.0"])
def odoo_version(request) -> str:
    return request.param


@pytest.fixture
def odoo_sandbox(odoo_version):
    """A small sandbox, once as Odoo 17 (JSON-RPC) and once as Odoo 19 (JSON-2)."""
    with make_sandbox(odoo_version) as sb:
        yield sb


def client_for(sb, **overrides) -> OdooClient:
    env = sb.env
    kwargs = dict(protocol="auto", timeout_seconds=10.0, max_retries=3, backoff_factor=0.0)
    kwargs.update({k: v for k, v in overrides.items()
                   if k in ("protocol", "timeout_seconds", "max_retries", "backoff_factor")})
    return OdooClient(
        overrides.get("url", env["ODOO_URL"]),
        overrides.get("database", env["ODOO_DB"]),
        overrides.get("username", env["ODOO_USERNAME"]),
        overrides.get("api_key", env["ODOO_API_KEY"]),
        **kwargs,
    )


def out_moves(data) -> list[dict]:
    return [m for m in data.moves if m["move_type"] in OUT_TYPES]


def odoo_calls(sb, model: str, method: str = "search_read") -> list[dict]:
    """The logged requests that called model.method (JSON-RPC execute_kw or JSON-2), with the
    call's keyword arguments normalised to one dict (domain included)."""
    calls = []
    for entry in sb.requests["odoo"]:
        body = entry.get("json") or {}
        if entry["path"] == "/jsonrpc":
            params = body.get("params", {})
            args = params.get("args", [])
            if params.get("method") == "execute_kw" and args[3:5] == [model, method]:
                kwargs = dict(args[6]) if len(args) > 6 else {}
                kwargs["domain"] = args[5][0] if args[5] else []
                calls.append({**entry, "call": kwargs})
        elif entry["path"] == f"/json/2/{model}/{method}":
            calls.append({**entry, "call": dict(body)})
    return calls


@pytest.fixture
def retry_sleeps(monkeypatch) -> list[float]:
    """Record the waits urllib3's Retry asks for instead of sleeping (tests stay fast and can
    assert that Retry-After was honoured without measuring time)."""
    sleeps: list[float] = []
    import time as real_time

    fake = types.SimpleNamespace(sleep=sleeps.append, time=real_time.time, monotonic=real_time.monotonic)
    monkeypatch.setattr(urllib3.util.retry, "time", fake)
    return sleeps


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_secret_free(exc: BaseException, secret: str) -> None:
    """The secret is in no message of the exception or of anything chained to it."""
    seen = exc
    while seen is not None:
        assert secret not in str(seen), f"secret in {type(seen).__name__}: {seen}"
        assert secret not in repr(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)

"""Helpers for the Zendesk tests: clients and resources pointed at a sandbox."""

from __future__ import annotations

import time
import types

import pytest
import urllib3.util.retry

from dunning_pipeline.zendesk.resource import ZendeskResource


def resource_for(sb, **overrides) -> ZendeskResource:
    env = sb.env
    fields = {"url": env["ZENDESK_URL"], "email": env["ZENDESK_EMAIL"],
              "api_token": env["ZENDESK_API_TOKEN"], "retry_backoff_seconds": 0.0, "max_retries": 3}
    fields.update(overrides)
    return ZendeskResource(**fields)


@pytest.fixture
def retry_sleeps(monkeypatch) -> list[float]:
    """The waits urllib3's Retry asks for (Retry-After, backoff), recorded instead of slept.

    Only the `time` seen by urllib3's retry module is replaced, so the servers keep real time."""
    sleeps: list[float] = []
    fake = types.SimpleNamespace(sleep=sleeps.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(urllib3.util.retry, "time", fake)
    return sleeps

"""`Sandbox`: the data plus local Odoo, Zendesk and Slack servers on loopback, in one object.

    with Sandbox(seed=7, customers=40, invoices=400, as_of=date(2026, 3, 2)) as sb:
        os.environ.update(sb.env)        # points the pipeline at the sandbox
        sb.faults.set("zendesk", "rate_limit", retry_after=1)
        sb.advance_night()               # the next day's payments, invoices and tickets

Credentials are fixed sandbox values (not secrets); the servers accept only them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import requests

from dunning_pipeline.sandbox import data as sd
from dunning_pipeline.sandbox.faults import SERVICES, Faults, LateCommit, late_commit, late_new_invoice
from dunning_pipeline.sandbox.base_server import SandboxHTTPServer
from dunning_pipeline.sandbox.odoo_server import DEFAULT_INDEX_THRESHOLD, OdooApp
from dunning_pipeline.sandbox.slack_server import CHANNELS, SlackApp
from dunning_pipeline.sandbox.zendesk_server import ZendeskApp

ODOO_API_KEY = "sandbox-odoo-api-key"
ZENDESK_EMAIL = sd.ZENDESK_ADMIN_EMAIL
ZENDESK_API_TOKEN = "sandbox-zendesk-api-token"
SLACK_BOT_TOKEN = "xoxb-sandbox-0000000000-bot-token"
SLACK_CHANNEL = CHANNELS[0]["name"]  # "#dunning"
SLACK_ALERTS_CHANNEL = CHANNELS[1]["name"]  # "#dunning-alerts"


class Sandbox:
    """Generates the data and serves it; a context manager (start on enter, stop on exit)."""

    def __init__(self, seed: int = 7, customers: int = 40, invoices: int = 400,
                 as_of: date = date(2026, 3, 2), odoo_version: str = "17.0", *,
                 tickets: int | None = None, host: str = "127.0.0.1", odoo_port: int = 0,
                 zendesk_port: int = 0, slack_port: int = 0,
                 zendesk_export_limit_per_minute: int | None = 10,
                 zendesk_rate_limit_per_minute: int | None = 700,
                 index_threshold: int = DEFAULT_INDEX_THRESHOLD,
                 data: sd.SandboxData | None = None, progress=None):
        self.data = data if data is not None else sd.generate(
            seed=seed, customers=customers, invoices=invoices, as_of=as_of, tickets=tickets,
            progress=progress)
        self.odoo_version = odoo_version
        self.faults = Faults()
        self.requests: dict[str, list[dict]] = {s: [] for s in SERVICES}
        self.slack_messages: list[dict] = []
        self._host = host
        self._ports = {"odoo": odoo_port, "zendesk": zendesk_port, "slack": slack_port}
        self.odoo = OdooApp(self.data, version=odoo_version, api_key=ODOO_API_KEY,
                            index_threshold=index_threshold)
        self.zendesk = ZendeskApp(self.data, email=ZENDESK_EMAIL, api_token=ZENDESK_API_TOKEN,
                                  export_limit_per_minute=zendesk_export_limit_per_minute,
                                  rate_limit_per_minute=zendesk_rate_limit_per_minute,
                                  index_threshold=index_threshold)
        self.slack = SlackApp(token=SLACK_BOT_TOKEN, messages=self.slack_messages,
                              clock=lambda: self.data.now)
        self._servers: dict[str, SandboxHTTPServer] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Sandbox":
        if self._servers:
            return self
        try:
            for service, app in (("odoo", self.odoo), ("zendesk", self.zendesk), ("slack", self.slack)):
                server = SandboxHTTPServer(app, self.faults, self.requests[service], self._host,
                                           self._ports[service])
                self._servers[service] = server
                server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, {}
        for server in servers.values():
            server.stop()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._servers)

    # ------------------------------------------------------------------ addresses
    def _url(self, service: str) -> str:
        if service not in self._servers:
            raise RuntimeError("the sandbox is not running: use `with Sandbox(...) as sb` or sb.start()")
        return self._servers[service].url

    @property
    def odoo_url(self) -> str:
        return self._url("odoo")

    @property
    def zendesk_url(self) -> str:
        return self._url("zendesk")

    @property
    def slack_api_url(self) -> str:
        return self._url("slack") + "/api/"

    @property
    def env(self) -> dict[str, str]:
        """The environment variables that point the pipeline at this sandbox."""
        return {
            "ODOO_URL": self.odoo_url,
            "ODOO_DB": self.odoo.database,
            "ODOO_USERNAME": self.odoo.login,
            "ODOO_API_KEY": ODOO_API_KEY,
            "ZENDESK_URL": self.zendesk_url,
            "ZENDESK_EMAIL": ZENDESK_EMAIL,
            "ZENDESK_API_TOKEN": ZENDESK_API_TOKEN,
            "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
            "SLACK_CHANNEL": SLACK_CHANNEL,
            "SLACK_API_URL": self.slack_api_url,
            "SLACK_ALERTS_CHANNEL": SLACK_ALERTS_CHANNEL,
        }

    # ------------------------------------------------------------------ behaviour
    def advance_night(self) -> sd.NightChanges:
        """The next day's business (see `data.advance_night`); the servers see it at once."""
        return sd.advance_night(self.data)

    def late_commit(self, *, seconds_before_mark: int = 3600, move_id: int | None = None) -> LateCommit:
        """An invoice paid by a transaction that commits now but is stamped before the last
        high-water mark (see `faults.late_commit`)."""
        return late_commit(self.data, seconds_before_mark=seconds_before_mark, move_id=move_id)

    def late_new_invoice(self, *, seconds_before_mark: int = 3600) -> LateCommit:
        """A new invoice created by a transaction that commits now but is stamped before the
        last high-water mark (see `faults.late_new_invoice`)."""
        return late_new_invoice(self.data, seconds_before_mark=seconds_before_mark)

    def revoke_company(self, company_id: int) -> None:
        """The Odoo API users lose access to a company: its records are hidden from them."""
        self.odoo.unreadable_company_ids.add(company_id)

    def clear_requests(self) -> None:
        for log in self.requests.values():
            log.clear()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Sandbox({self.data!r}, odoo_version={self.odoo_version!r}, {state})"


class SandboxProcess:
    """The sandbox in a child process (`python -m dunning_pipeline.sandbox`), for benchmarks.

    In-process servers share the GIL with the code under test; a child process does not, so the
    benchmark measures the pipeline, not the sandbox. Exposes `env`, the URLs and
    `advance_night()` (over HTTP); data and faults live in the child.
    """

    def __init__(self, seed: int = 7, customers: int = 40, invoices: int = 400,
                 as_of: date = date(2026, 3, 2), odoo_version: str = "17.0", *,
                 tickets: int | None = None, zendesk_export_limit_per_minute: int | None = 10,
                 faults: bool = False, late_commits: bool = False, startup_timeout: float = 600.0,
                 python: str = sys.executable):
        self._args = ["--seed", str(seed), "--customers", str(customers), "--invoices", str(invoices),
                      "--as-of", as_of.isoformat(), "--odoo-version", odoo_version,
                      "--zendesk-export-limit", str(zendesk_export_limit_per_minute or 0),
                      "--faults" if faults else "--no-faults"]
        if tickets is not None:
            self._args += ["--tickets", str(tickets)]
        if late_commits:
            self._args.append("--late-commits")
        self._python = python
        self._timeout = startup_timeout
        self._proc: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self.env: dict[str, str] = {}

    def start(self) -> "SandboxProcess":
        self._dir = tempfile.TemporaryDirectory(prefix="dunning-sandbox-")
        env_file = Path(self._dir.name) / "sandbox.env"
        self.log_path = Path(self._dir.name) / "sandbox.log"
        with open(self.log_path, "w") as log:
            self._proc = subprocess.Popen(
                [self._python, "-m", "dunning_pipeline.sandbox", *self._args, "--env-file", str(env_file)],
                stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self._timeout
        while not env_file.exists():
            if self._proc.poll() is not None:
                log_text = self.log_path.read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"the sandbox process exited with {self._proc.returncode}:\n{log_text}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the sandbox did not start within {self._timeout:.0f} s")
            time.sleep(0.2)
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value.strip("'")
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "SandboxProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def odoo_url(self) -> str:
        return self.env["ODOO_URL"]

    @property
    def zendesk_url(self) -> str:
        return self.env["ZENDESK_URL"]

    @property
    def slack_api_url(self) -> str:
        return self.env["SLACK_API_URL"]

    def advance_night(self) -> dict:
        """The next day's changes in the child; returns them (NightChanges as a dict)."""
        resp = requests.post(self.odoo_url + "/_sandbox/advance_night", timeout=600)
        resp.raise_for_status()
        return resp.json()

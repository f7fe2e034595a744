"""The workbench in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright)
against the app serving a warehouse filled by a real nightly run on the sandbox. Log in, open
the worklist, open a customer, read its email history, record a promise, log out; no console
errors; screenshots of each page at 1280 px and at phone width under .ci/artifacts/workbench/.

Part of the suite, never skipped: without /usr/bin/chromium it fails and says how to install it."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from dunning_pipeline import definitions as top
from dunning_pipeline import settings
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.workbench import auth
from dunning_pipeline.workbench.app import create_app
from dunning_pipeline.workbench.config import WorkbenchConfig

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts" / "workbench"
AS_OF = date(2026, 3, 2)
PASSWORD = "browser-test-password"


@pytest.fixture(scope="module")
def nightly_warehouse(tmp_path_factory) -> str:
    """The sandbox extracted, checked and dunned by the real nightly job, in process."""
    from dunning_pipeline.sandbox import Sandbox

    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
    mp = pytest.MonkeyPatch()
    try:
        with Sandbox(seed=7, customers=20, invoices=160, as_of=AS_OF) as sb:
            for name, value in sb.env.items():
                mp.setenv(name, value)
            mp.setenv("DAGSTER_HOME", str(tmp))
            mp.setenv(settings.DATABASE_URL_VAR, url)
            mp.setenv(settings.TIMEZONE_VAR, "UTC")
            mp.delenv(settings.POLICY_FILE_VAR, raising=False)
            defs = dg.Definitions.merge(
                top.odoo_part.defs, top.zendesk_part.defs, top.quality_part.defs, top.dunning_part.defs,
                top.reporting_part.defs, dg.Definitions(jobs=[top.nightly_dunning], resources=top.build_resources()))
            result = defs.resolve_job_def("nightly_dunning").execute_in_process(
                partition_key=AS_OF.isoformat(), instance=dg.DagsterInstance.ephemeral())
            assert result.success
    finally:
        mp.undo()
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(nightly_warehouse, tmp_path_factory):
    import uvicorn

    users = tmp_path_factory.mktemp("users") / "users.txt"
    auth.UsersFile(users).add("anna", PASSWORD)
    cfg = WorkbenchConfig(database_url=nightly_warehouse, users_file=str(users))
    app = create_app(cfg, now=lambda: datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the workbench did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _browser(playwright):
    if not CHROMIUM.exists():
        pytest.fail("the browser test needs Debian's Chromium at /usr/bin/chromium: "
                    "run `apt-get install -y chromium` (as .ci/run does)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _customer_with_email(url: str) -> tuple[int, str]:
    """A customer on today's worklist whose tickets have comments."""
    wh = Warehouse(url)
    ag, cc, c = wh.table("invoice_aging"), wh.table("customer_communications"), wh.table("zendesk_comments")
    stmt = (sa.select(ag.c.customer_id, sa.func.max(ag.c.customer_name))
            .where(ag.c.dunning_status == "dunned",
                   ag.c.customer_id.in_(sa.select(cc.c.customer_id).join(c, c.c.ticket_id == cc.c.ticket_id)))
            .group_by(ag.c.customer_id).order_by(ag.c.customer_id).limit(1))
    with wh.begin() as conn:
        row = conn.execute(stmt).one()
    wh.dispose()
    return int(row[0]), row[1]


def _shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, width in (("desktop", 1280), ("phone", 390)):
        page.set_viewport_size({"width": width, "height": 900 if width > 600 else 844})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
        # Usable at that width: nothing wider than the window but the scrolling tables.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} at {width}px is {overflow}px wider than the window"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_accountant_works_a_case_in_the_browser(served, nightly_warehouse):
    from playwright.sync_api import expect, sync_playwright

    customer_id, customer_name = _customer_with_email(nightly_warehouse)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

            page.goto(served + "/")
            expect(page).to_have_url(served + "/login?next=%2F")
            _shoot(page, "1-login")
            page.fill("input[name=username]", "anna")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")

            expect(page.locator("h1")).to_contain_text("Worklist")
            expect(page.locator("h1")).to_contain_text("as of 2026-03-02")
            _shoot(page, "2-worklist")
            page.click(f'a[href="/customers/{customer_id}"]')

            expect(page.locator("h1")).to_contain_text(customer_name)
            emails = page.locator("#emails li.email")
            assert emails.count() >= 1
            directions = {d.lower() for d in page.locator("#emails li.email .dir").all_inner_texts()}
            assert directions and directions <= {"inbound", "outbound", "internal"}
            assert emails.first.locator("pre").inner_text().strip()
            _shoot(page, "3-customer")

            form = page.locator("#promise-form")
            invoice = form.locator("select[name=invoice_id] option").nth(1).get_attribute("value")
            form.locator("select[name=invoice_id]").select_option(invoice)
            form.locator("input[name=until]").fill((AS_OF + timedelta(days=10)).isoformat())
            form.locator("textarea[name=note]").fill("Promised on the phone, browser test")
            form.locator("button[type=submit]").click()
            expect(page.locator(".done")).to_contain_text("Payment promise recorded")
            expect(page.locator("#holds")).to_contain_text("Promised on the phone, browser test")
            _shoot(page, "4-promise-recorded")

            page.click("header button:has-text('Log out')")
            expect(page).to_have_url(served + "/login")
            page.goto(served + f"/customers/{customer_id}")
            expect(page.locator("h1")).to_have_text("Log in")
        finally:
            browser.close()

    assert problems == []
    wh = Warehouse(nightly_warehouse)
    holds = wh.table("dunning_holds")
    with wh.begin() as conn:
        row = conn.execute(sa.select(holds).where(holds.c.created_by == "anna")).mappings().one()
    wh.dispose()
    assert (row["invoice_id"], row["kind"], str(row["until"])[:10]) == (int(invoice), "promise", "2026-03-12")
    assert sorted(f.name for f in ARTIFACTS.glob("*.png")) >= sorted(
        f"{n}-{w}.png" for n in ("1-login", "2-worklist", "3-customer", "4-promise-recorded")
        for w in ("desktop", "phone"))

"""The pages show what the warehouse holds: the worklist grouped by action with counts, totals,
filters and paging; the customer page; the report; and the reporting part's tables when present."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from dunning_pipeline.warehouse.store import Warehouse

from .conftest import csrf_of, login, make_client


def _section(html: str, key: str) -> str:
    m = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    return m.group(1) if m else ""


def test_worklist_groups_customers_by_action_with_totals(alice):
    html = alice.get("/").text
    assert "as of 2026-03-02" in html
    call = _section(html, "call")
    # Acme: invoice 104 reached the call stage; its total is its dunned invoices in EUR.
    assert "/customers/10" in call and "1,330.50 EUR" in call
    reminder = _section(html, "reminder")
    assert "/customers/30" in reminder and "/customers/10" not in reminder
    # Held customers are not in the default list (Delta's promise, Epsilon's exclusion).
    assert "/customers/40" not in html and "/customers/50" not in html
    assert re.search(r"<strong>Call</strong></a> 1 customer\s*<span class=\"amount\">1,330.50 EUR", html)


def test_worklist_filters(alice):
    held = alice.get("/", params={"hold": "promise"}).text
    assert "/customers/40" in held and "/customers/10" not in held
    usd = alice.get("/", params={"currency": "USD"}).text
    assert "/customers/10" in usd and "900.00 EUR" in usd and "/customers/30" not in usd
    assert "/customers/10" not in alice.get("/", params={"segment": "key_accounts"}).text
    assert "/customers/10" in alice.get("/", params={"stage": "call"}).text
    assert "/customers/10" not in alice.get("/", params={"company": "2"}).text


def test_worklist_pages(aged_url, users_file):
    client = make_client(aged_url, users_file, page_size=1)
    assert login(client, "alice").status_code == 303
    first, second = client.get("/").text, client.get("/", params={"page": "2"}).text
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert ("/customers/10\"" in first) != ("/customers/10\"" in second)
    assert 'href="/?page=2"' in first


def test_a_customer_handled_today_leaves_the_worklist(aged_url, users_file):
    client = make_client(aged_url, users_file)
    assert login(client, "bob").status_code == 303
    assert "/customers/30" in client.get("/").text
    token = csrf_of(client.get("/customers/30").text)
    assert client.post("/customers/30/reminder-sent", data={"csrf_token": token}).status_code == 303
    assert "/customers/30" not in client.get("/").text
    assert "/customers/30" in client.get("/", params={"handled": "1"}).text


def test_customer_page(alice):
    html = alice.get("/customers/10").text
    invoices = _section(html, "invoices")
    assert 'href="https://odoo.example/web#id=104&amp;model=account.move&amp;view_type=form"' in invoices
    assert "INV/2026/00106" in invoices and "on_hold: dispute" in invoices and "1,000.00 USD" in invoices
    emails = _section(html, "emails")
    order = [m.start() for m in re.finditer(r'<li class="email (inbound|outbound|internal)">', emails)]
    kinds = re.findall(r'<li class="email (inbound|outbound|internal)">', emails)
    assert kinds == ["inbound", "outbound", "inbound", "inbound", "internal", "outbound"] and len(order) == 6
    assert emails.index("We are looking into it.") < emails.index("Thanks, we will check.")
    history = _section(html, "history")
    assert "reminder_1" in history and "INV/2026/00102" in history
    assert "Acme" not in alice.get("/customers/40").text.split("<main>")[1]


def test_customer_page_shows_manual_holds_with_release(alice):
    html = alice.get("/customers/50").text
    holds = _section(html, "holds")
    assert "Insolvency proceedings" in holds and "joe" in holds and "Release now" in holds


def test_report_page(alice):
    html = alice.get("/report").text
    assert "Open receivables by aging bucket" in html and "1,000.00 USD" in html
    assert "No rows." in html  # the reporting tables exist, empty before their first night


@pytest.fixture
def with_reporting_tables(aged_url):
    """Rows in the reporting part's own tables for customer 10."""
    wh = Warehouse(aged_url)
    day = pd.Timestamp("2026-03-02")
    wh.append("reminder_drafts", pd.DataFrame([{
        "customer_id": 10, "company_id": 1, "stage": "reminder_1", "action": "email",
        "subject": "Reminder: INV/2026/00104 & more", "body": "Dear Acme,\n<b>please</b> pay 1,000.00 USD.",
        "template_body": "Dear Acme", "source": "template", "customer_email": "ap@acme.example",
        "status": "draft", "as_of_date": day}]))
    wh.append("ar_aging_report", pd.DataFrame([{
        "company_id": 1, "customer_id": 10, "customer_name": "Acme", "company_currency": "EUR", "open_items": 1,
        "total_company": 1_234_500, "current_company": 0, "overdue_company": 1_234_500, "open_credit_company": 0,
        "invoices_on_hold": 0, "on_hold_company": 0, "as_of_date": day}]))
    wh.append("customer_timeline", pd.DataFrame([{
        "customer_id": 10, "seq": 1, "day": pd.Timestamp("2026-03-01"), "at": pd.Timestamp("2026-03-01 09:00"),
        "kind": "message", "event": "inbound", "direction": "inbound", "visibility": "public",
        "text": "from the timeline", "ticket_id": 9001, "as_of_date": day}]))
    yield
    wh.dispose()


def test_reporting_tables_are_shown_when_present(alice, with_reporting_tables):
    html = alice.get("/customers/10").text
    drafts = _section(html, "drafts")
    assert "Dear Acme,\n&lt;b&gt;please&lt;/b&gt; pay 1,000.00 USD." in drafts
    assert 'data-copy="draft-1"' in drafts
    assert ('href="mailto:ap@acme.example?subject=Reminder%3A%20INV%2F2026%2F00104%20%26%20more&amp;body=Dear%20Acme'
            in drafts)
    assert "from the timeline" in _section(html, "emails")
    token = csrf_of(html)
    [ref] = re.findall(r'name="draft_ref" value="([^"]+)"', drafts)
    assert "10" in ref and "2026-03-02" in ref  # the draft's day, customer and company
    assert alice.post("/customers/10/reminder-sent", data={"csrf_token": token, "draft_ref": ref}).status_code == 303
    report = alice.get("/report").text
    assert "total_company" in report and "123.45" in report


@pytest.fixture
def with_instalments(aged_url):
    wh = Warehouse(aged_url)
    wh.append("instalment_aging", pd.DataFrame([{
        "invoice_id": 104, "line_id": 9104, "customer_id": 10, "instalment_number": 2, "instalments_total": 2,
        "date_maturity": pd.Timestamp("2026-02-15"), "days_overdue": 15, "aging_bucket": "1-30",
        "amount_residual": 10_000_000, "amount_residual_company": 9_000_000, "currency": "USD",
        "as_of_date": pd.Timestamp("2026-03-02")}]))
    yield
    wh.dispose()


def test_instalments_are_shown_when_present(alice, with_instalments):
    invoices = _section(alice.get("/customers/10").text, "invoices")
    assert "<h3>Instalments</h3>" in invoices and "9104" in invoices and "2026-02-15" in invoices
    assert "9104" not in _section(alice.get("/customers/30").text, "invoices")


def test_indexes_of_the_pages_are_added_to_an_existing_warehouse(warehouse):
    with warehouse.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_invoice_aging_status_customer"))
    warehouse.ensure_schema()
    names = {i["name"] for i in sa.inspect(warehouse.engine).get_indexes("invoice_aging")}
    assert "ix_invoice_aging_status_customer" in names
    names = {i["name"] for i in sa.inspect(warehouse.engine).get_indexes("dunning_history")}
    assert "ix_dunning_history_customer_id" in names


def test_the_demo_login_works(aged_url, tmp_path):
    from dunning_pipeline.workbench.__main__ import prepare_demo
    from dunning_pipeline.workbench.app import create_app
    from starlette.testclient import TestClient

    cfg, password = prepare_demo(aged_url, users_file=str(tmp_path / "demo-users.txt"))
    client = TestClient(create_app(cfg), follow_redirects=False)
    page = client.get("/login")
    r = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "demo", "password": password})
    assert r.status_code == 303 and client.get("/").status_code == 200


def test_report_page_shows_the_kpi_series_from_its_latest_day(alice, aged_url):
    """With a rebuilt history the series reaches back months: the page lists the latest days
    first, not the oldest 500 rows."""
    wh = Warehouse(aged_url)
    days = pd.date_range("2024-01-01", "2026-03-02", freq="D")
    wh.append("collection_kpis", pd.DataFrame({
        "as_of_date": days, "company_id": 1, "kpi": "dso_count_back", "dimension": "",
        "value": [float(i) for i in range(len(days))], "source": "nightly"}))
    wh.dispose()
    report = alice.get("/report").text
    assert "2026-03-02" in report and "2024-01-01" not in report


def test_a_customer_with_many_invoices_is_paged_with_totals_of_all(aged_url, users_file):
    client = make_client(aged_url, users_file, page_size=2)
    assert login(client, "alice").status_code == 303
    with Warehouse(aged_url).engine.connect() as conn:
        aged = conn.execute(sa.text("SELECT invoice_number, currency, amount_residual FROM invoice_aging "
                                    "WHERE customer_id = 10")).all()
    assert len(aged) > 4  # enough for three pages of two
    shown, page = [], 1
    while True:
        invoices = _section(client.get("/customers/10", params={"invoices_page": str(page)}).text, "invoices")
        body = invoices.split("<tbody>")[1].split("</tbody>")[0]
        rows = [a.invoice_number for a in aged if re.search(rf">{re.escape(a.invoice_number)}(</a>|\s)", body)]
        assert 0 < len(rows) <= 2
        shown += rows
        # The totals line counts and sums every open item, not the page's.
        assert f"{len(aged)} open" in invoices
        for currency in {a.currency for a in aged}:
            n = sum(1 for a in aged if a.currency == currency)
            amount = sum(Decimal(str(a.amount_residual)) for a in aged if a.currency == currency)
            assert f"{n} in {currency}, {amount:,.2f} {currency}" in invoices
        if f"invoices_page={page + 1}" not in invoices:
            break
        page += 1
    assert page == -(-len(aged) // 2) and sorted(shown) == sorted(a.invoice_number for a in aged)
    assert f"invoices_page={page - 1}" in invoices  # the last page links back

"""What an accountant records is written with author and time, refused with a clear message
when invalid (writing nothing), and honoured by the engine's next night: a promise holds the
invoice, releasing it early ends the hold."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dunning_pipeline.warehouse.store import Warehouse

from .conftest import aged_warehouse, csrf_of, login, make_client, night


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path, monkeypatch, pg_server_url):
    url, drop = aged_warehouse(request.param, tmp_path, monkeypatch)
    yield url
    drop()


def _client(url, users_file, who="alice"):
    client = make_client(url, users_file)
    assert login(client, who).status_code == 303
    return client


def _post(client, path, **data):
    token = csrf_of(client.get(path.rsplit("/", 1)[0] if "/holds/" not in path and "/actions/" not in path
                                else path.split("/holds/")[0].split("/actions/")[0]).text)
    return client.post(path, data={"csrf_token": token, **data})


def _aging(url, invoice_id):
    wh = Warehouse(url)
    t = wh.table("invoice_aging")
    with wh.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.invoice_id == invoice_id)).mappings().one()
    wh.dispose()
    return row


def _table(url, name):
    wh = Warehouse(url)
    t = wh.table(name)
    with wh.begin() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.id)).mappings()]
    wh.dispose()
    return rows


def test_a_promise_holds_the_invoice_next_night_and_an_early_release_ends_it(fresh_url, users_file):
    client = _client(fresh_url, users_file)
    assert _aging(fresh_url, 104)["dunning_status"] == "dunned"
    r = _post(client, "/customers/10/promise", invoice_id="104", until="2026-03-20", note="pays after the audit")
    assert r.status_code == 303 and r.headers["location"] == "/customers/10?done=promise"
    hold = _table(fresh_url, "dunning_holds")[-1]
    assert (hold["invoice_id"], hold["kind"], str(hold["until"])[:10], hold["created_by"]) == \
        (104, "promise", "2026-03-20", "alice")
    action = _table(fresh_url, "workbench_actions")[-1]
    assert (action["kind"], action["customer_id"], action["invoice_id"], action["hold_id"], action["author"]) == \
        ("promise", 10, 104, hold["id"], "alice")
    assert "Payment promise recorded" in client.get(r.headers["location"]).text

    night(fresh_url, "2026-03-03")
    aging = _aging(fresh_url, 104)
    assert (aging["dunning_status"], aging["hold_reason"], str(aging["hold_until"])[:10]) == \
        ("on_hold", "promise", "2026-03-20")
    assert "pays after the audit (alice)" in aging["hold_note"]
    page = client.get("/customers/10").text
    assert "on_hold: promise until 2026-03-20" in page

    r = _post(client, f"/customers/10/holds/{hold['id']}/release", note="paid half, chase the rest")
    assert r.status_code == 303
    released = next(h for h in _table(fresh_url, "dunning_holds") if h["id"] == hold["id"])
    assert released["released_by"] == "alice" and released["released_at"] is not None
    assert _table(fresh_url, "workbench_actions")[-1]["kind"] == "release"
    night(fresh_url, "2026-03-04")
    aging = _aging(fresh_url, 104)
    assert aging["dunning_status"] == "dunned" and aging["hold_reason"] is None
    # Released once: a second release is refused.
    r = _post(client, f"/customers/10/holds/{hold['id']}/release")
    assert r.status_code == 400 and "already released" in r.text


@pytest.mark.parametrize(("path", "data", "message"), [
    ("promise", {"invoice_id": "104", "until": "2026-03-01"}, "until: 2026-03-01 is in the past (today is 2026-03-02)"),
    ("promise", {"invoice_id": "104", "until": "next friday"}, "until: &#39;next friday&#39; is not a date"),
    ("promise", {"invoice_id": "104", "until": ""}, "until: enter a date"),
    ("promise", {"invoice_id": "999999", "until": "2026-03-20"}, "invoice: 999999 is not an open invoice of this customer"),
    ("promise", {"invoice_id": "201", "until": "2026-03-20"}, "invoice: 201 is not an open invoice of this customer"),
    ("promise", {"invoice_id": "104 OR 1=1", "until": "2026-03-20"}, "is not an invoice id"),
    ("promise", {"invoice_id": "104", "until": "2028-01-01"}, "more than a year ahead"),
    ("exclusion", {"scope": "invoice", "invoice_id": "104", "note": ""}, "note: say why"),
    ("exclusion", {"scope": "invoice", "invoice_id": ""}, "invoice: choose one of the customer"),
    ("exclusion", {"scope": "customer", "note": "x", "until": "2020-01-01"}, "until: 2020-01-01 is in the past"),
    ("call", {"outcome": ""}, "outcome: choose how the call went"),
    ("reminder-sent", {"draft_ref": "77"}, "draft: not a reminder draft of this customer"),
])
def test_invalid_input_is_named_on_the_form_and_writes_nothing(alice, aged_url, path, data, message):
    before = (len(_table(aged_url, "dunning_holds")), len(_table(aged_url, "workbench_actions")))
    r = _post(alice, f"/customers/10/{path}", **data)
    assert r.status_code == 400
    assert message in r.text and "Not saved" in r.text
    assert (len(_table(aged_url, "dunning_holds")), len(_table(aged_url, "workbench_actions"))) == before


def test_unknown_customer_and_action(alice):
    token = csrf_of(alice.get("/").text)
    assert alice.post("/customers/424242/call", data={"csrf_token": token, "outcome": "no_answer"}).status_code == 404
    assert alice.post("/customers/10/delete-everything", data={"csrf_token": token}).status_code == 404
    assert alice.get("/customers/424242").status_code == 404


def test_exclusion_call_and_reminder_are_logged_with_author(fresh_url, users_file):
    client = _client(fresh_url, users_file, "bob")
    assert _post(client, "/customers/40/exclusion", scope="customer", note="insolvency filed",
                 until="2026-06-30").status_code == 303
    assert _post(client, "/customers/10/call", outcome="promised", invoice_id="104",
                 note="will pay next week").status_code == 303
    assert _post(client, "/customers/10/reminder-sent", invoice_id="103").status_code == 303
    actions = _table(fresh_url, "workbench_actions")[-3:]
    assert [(a["kind"], a["customer_id"], a["author"]) for a in actions] == \
        [("exclusion", 40, "bob"), ("call", 10, "bob"), ("reminder_sent", 10, "bob")]
    assert actions[1]["outcome"] == "promised" and str(actions[0]["as_of_date"])[:10] == "2026-03-02"
    hold = _table(fresh_url, "dunning_holds")[-1]
    assert (hold["customer_id"], hold["invoice_id"], hold["kind"], hold["created_by"]) == (40, None, "exclusion", "bob")
    night(fresh_url, "2026-03-03")
    assert _aging(fresh_url, 401)["hold_reason"] == "exclusion"
    page = client.get("/customers/10").text
    assert "Reached: promised to pay" in page and "will pay next week" in page


@pytest.mark.parametrize(("effective", "message"), [
    ("2026-03-03", "effective_date: 2026-03-03 is in the future (today is 2026-03-02)"),
    ("last tuesday", "effective_date: &#39;last tuesday&#39; is not a date"),
    ("2025-01-01", "effective_date: 2025-01-01 is more than a year back"),
])
def test_a_promise_dated_in_the_future_is_refused(alice, aged_url, effective, message):
    before = len(_table(aged_url, "dunning_holds"))
    r = _post(alice, "/customers/10/promise", invoice_id="104", until="2026-03-20", effective_date=effective)
    assert r.status_code == 400 and message in r.text
    assert len(_table(aged_url, "dunning_holds")) == before


def test_a_promise_made_on_an_earlier_call_counts_from_that_day(fresh_url, users_file):
    client = _client(fresh_url, users_file)
    r = _post(client, "/customers/10/promise", invoice_id="104", until="2026-03-20", effective_date="2026-02-26")
    assert r.status_code == 303
    hold = _table(fresh_url, "dunning_holds")[-1]
    assert (hold["kind"], str(hold["effective_date"])[:10]) == ("promise", "2026-02-26")
    night(fresh_url, "2026-03-03")
    aging = _aging(fresh_url, 104)
    assert (aging["hold_reason"], str(aging["hold_since"])[:10]) == ("promise", "2026-02-26")

"""The sandbox's Odoo answers like a real one: JSON-RPC and JSON-2 shapes, errors, domains, paging."""

from __future__ import annotations

from datetime import date

import pytest
import requests

from dunning_pipeline.sandbox import Sandbox

DB, KEY, UID = "dunning_demo", "sandbox-odoo-api-key", 2


@pytest.fixture(scope="module")
def sb():
    with Sandbox(seed=5, customers=15, invoices=200, as_of=date(2026, 3, 2)) as sandbox:
        yield sandbox


def rpc(sb, service, method, *args):
    resp = requests.post(f"{sb.odoo_url}/jsonrpc", timeout=10, json={
        "jsonrpc": "2.0", "method": "call", "id": 9,
        "params": {"service": service, "method": method, "args": list(args)}})
    assert resp.status_code == 200  # Odoo reports errors inside a 200
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 9
    return body


def call(sb, model, method, *args, key=KEY, db=DB, **kwargs):
    return rpc(sb, "object", "execute_kw", db, UID, key, model, method, list(args), kwargs)


def result(body):
    assert "error" not in body, body.get("error")
    return body["result"]


def error(body, name):
    err = body["error"]
    assert err["message"] == "Odoo Server Error"
    assert err["data"]["name"] == name
    assert err["data"]["arguments"] == [err["data"]["message"]]
    return err


def test_version_and_authentication(sb):
    assert result(rpc(sb, "common", "version"))["server_version_info"][:2] == [17, 0]
    assert result(rpc(sb, "common", "authenticate", DB, "admin", KEY, {})) == UID
    assert result(rpc(sb, "common", "login", DB, "admin", KEY)) == UID
    assert rpc(sb, "common", "authenticate", DB, "admin", "wrong", {}) == {"jsonrpc": "2.0", "id": 9, "result": False}
    assert rpc(sb, "common", "authenticate", DB, "someone", KEY, {})["result"] is False
    error(rpc(sb, "common", "authenticate", "nodb", "admin", KEY, {}), "psycopg2.OperationalError")


def test_object_service_errors(sb):
    err = error(call(sb, "account.move", "search_count", [], key="wrong"), "odoo.exceptions.AccessDenied")
    assert err["code"] == 200 and err["data"]["message"] == "Access Denied"
    assert "nodb" in error(call(sb, "account.move", "search_count", [], db="nodb"),
                           "psycopg2.OperationalError")["data"]["message"]
    assert error(call(sb, "account.movez", "search_count", []),
                 "odoo.exceptions.UserError")["data"]["message"] == "Object account.movez doesn't exist"
    assert error(call(sb, "account.move", "search_read", [], fields=["name", "foo"]),
                 "builtins.ValueError")["data"]["message"] == "Invalid field 'foo' on model 'account.move'"
    assert error(call(sb, "account.move", "search_read", [["foo", "=", 1]]),
                 "builtins.ValueError")["data"]["message"] == "Invalid field 'foo' on model 'account.move'"
    error(call(sb, "account.move", "search_read", [["state", "~", 1]]), "builtins.ValueError")
    error(call(sb, "account.move", "search_read", [], order="nonsense desc"), "builtins.ValueError")
    # read() leaves out ids that do not exist, as Odoo's does (no MissingError)
    assert result(call(sb, "account.move", "read", [10**9], fields=["name"])) == []
    assert "domain" in error(call(sb, "account.move", "search_count"), "builtins.TypeError")["data"]["message"]
    error(call(sb, "account.move", "search_read", [], bogus=1), "builtins.TypeError")
    error(call(sb, "account.move", "write", [1], {"ref": "x"}), "odoo.exceptions.AccessError")
    assert requests.post(f"{sb.odoo_url}/json/2/account.move/search", json={}, timeout=10).status_code == 404
    assert requests.get(f"{sb.odoo_url}/web/version", timeout=10).status_code == 404  # JSON-2 is 19+
    assert requests.post(f"{sb.odoo_url}/xmlrpc/2/object", data="<x/>", timeout=10).status_code == 404


def test_only_requested_fields_come_back_in_odoo_shapes(sb):
    rows = result(call(sb, "account.move", "search_read", [["state", "=", "draft"]],
                       fields=["name", "partner_id", "invoice_date", "ref", "amount_total"], limit=50))
    assert rows and all(set(r) == {"id", "name", "partner_id", "invoice_date", "ref", "amount_total"} for r in rows)
    assert all(r["name"] == "/" for r in rows)
    assert any(r["invoice_date"] is False for r in rows) or any(r["ref"] is False for r in rows)
    pairs = [r["partner_id"] for r in rows]
    assert all(isinstance(p, list) and isinstance(p[0], int) and isinstance(p[1], str) for p in pairs)
    # computed fields Odoo derives are served too
    row = result(call(sb, "account.move", "search_read", [["state", "=", "posted"], ["move_type", "=", "out_invoice"]],
                      fields=["name", "payment_reference", "company_currency_id", "date", "display_name"],
                      limit=1, order="id"))[0]
    move = sb.data.move(row["id"])
    assert row["payment_reference"] == row["display_name"] == move["name"]
    assert row["date"] == move["invoice_date"]
    company = next(c for c in sb.data.companies if c["id"] == move["company_id"][0])
    assert row["company_currency_id"] == company["currency_id"]


DOMAINS = [
    [["move_type", "in", ["out_invoice", "out_refund"]], ["state", "=", "posted"]],
    ["|", ["payment_state", "=", "partial"], ["payment_state", "=", "not_paid"]],
    ["!", ["state", "=", "posted"]],
    ["&", ["amount_residual", ">", 0], ["invoice_date_due", "<", "2026-02-01"]],
    [["partner_id", "!=", False], ["ref", "=", False]],
    [["currency_id", "not in", [125]], ["amount_total", ">=", 1000], ["amount_total", "<=", 5000]],
    [["write_date", ">=", "2026-02-20"]],
    [["commercial_partner_id", "in", [7, 8, 9, 10, 11, 12]]],
    [["name", "ilike", "rinv"]],
]


def expected_ids(sb, domain) -> list[int]:
    import operator as op
    ops = {"=": op.eq, "!=": op.ne, ">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le}

    def leaf(m, f, o, v):
        x = m[f]
        if isinstance(x, list):
            x = x[0]
        if o == "in":
            return x in v
        if o == "not in":
            return x not in v
        if o == "ilike":
            return v.lower() in str(x).lower()
        if v is False:
            return (x is False) == (o == "=")
        return x is not False and ops[o](x, v)

    def ev(m, items):
        stack = []
        for item in reversed(items):
            if item == "!":
                stack.append(not stack.pop())
            elif item in ("&", "|"):
                a, b = stack.pop(), stack.pop()
                stack.append((a and b) if item == "&" else (a or b))
            else:
                stack.append(leaf(m, *item))
        return all(stack)
    return [m["id"] for m in sb.data.moves if ev(m, domain)]


@pytest.mark.parametrize("domain", DOMAINS, ids=[str(d) for d in DOMAINS])
def test_domains_select_what_odoo_would(sb, domain):
    ids = result(call(sb, "account.move", "search", domain, order="id"))
    assert ids == expected_ids(sb, domain)
    assert result(call(sb, "account.move", "search_count", domain)) == len(ids)


def test_paging_by_id_returns_every_record_once(sb):
    domain = [["move_type", "in", ["out_invoice", "out_refund"]]]
    pages, last = [], 0
    while True:
        page = result(call(sb, "account.move", "search_read", domain + [["id", ">", last]],
                           fields=["name"], limit=17, order="id asc"))
        if not page:
            break
        assert len(page) <= 17
        pages.append(page)
        last = page[-1]["id"]
    got = [r["id"] for page in pages for r in page]
    assert got == expected_ids(sb, domain) and len(pages[-1]) <= 17 and len(pages) > 3
    offsets = [r["id"] for off in range(0, len(got), 50)
               for r in result(call(sb, "account.move", "search_read", domain, fields=["id"],
                                    offset=off, limit=50, order="id"))]
    assert offsets == got
    desc = result(call(sb, "account.move", "search", domain, limit=5, order="id desc"))
    assert desc == sorted(got, reverse=True)[:5]
    by_due = result(call(sb, "account.move", "search_read", domain, fields=["invoice_date_due"],
                         order="invoice_date_due desc, id asc", limit=40))
    # PostgreSQL's order: NULLs (drafts without a due date) first when descending
    nulls = [r for r in by_due if r["invoice_date_due"] is False]
    assert nulls and by_due[:len(nulls)] == nulls
    keys = [(r["invoice_date_due"], -r["id"]) for r in by_due[len(nulls):]]
    assert keys == sorted(keys, reverse=True)


def test_archived_partners_only_with_active_test_false(sb):
    archived = [p["id"] for p in sb.data.partners if not p["active"]]
    assert archived
    visible = result(call(sb, "res.partner", "search", []))
    everything = result(call(sb, "res.partner", "search", [], context={"active_test": False}))
    assert set(everything) == {p["id"] for p in sb.data.partners}
    assert set(visible) == set(everything) - set(archived)
    # naming `active` in the domain also lifts the default filter, as in Odoo
    assert set(result(call(sb, "res.partner", "search", [["active", "=", False]]))) == set(archived)
    rows = result(call(sb, "res.partner", "read", archived[:2], ["name", "active"]))
    assert [r["id"] for r in rows] == archived[:2] and all(r["active"] is False for r in rows)


def test_other_models_and_fields_get(sb):
    currencies = result(call(sb, "res.currency", "search_read", [], fields=["name", "decimal_places"]))
    assert {c["name"]: c["decimal_places"] for c in currencies}["JPY"] == 0
    assert len(result(call(sb, "res.company", "search_read", [], fields=["currency_id"]))) == 2
    tags = result(call(sb, "res.partner.category", "search_read", [], fields=["name"]))
    assert "Key Account" in {t["name"] for t in tags}
    spec = result(call(sb, "account.move", "fields_get", ["payment_state", "partner_id"],
                       ["type", "relation", "selection"]))
    assert spec["partner_id"] == {"type": "many2one", "relation": "res.partner"}
    assert ["blocked", "Blocked"] in spec["payment_state"]["selection"]  # 17.0 knows "blocked"


def test_unknown_database_and_route_errors_are_specific():
    with Sandbox(seed=1, customers=3, invoices=20, odoo_version="16.0") as sb16:
        body = rpc(sb16, "object", "execute_kw", DB, UID, "bad", "account.move", "search", [[]], {})
        assert body["error"]["code"] == 200
        spec = result(call(sb16, "account.move", "fields_get", ["payment_state"], ["selection"]))
        assert ["blocked", "Blocked"] not in spec["payment_state"]["selection"]


def test_odoo_19_json2_and_jsonrpc():
    with Sandbox(seed=2, customers=8, invoices=80, odoo_version="19.0") as sb:
        url = f"{sb.odoo_url}/json/2/account.move/search_read"
        headers = {"Authorization": f"bearer {KEY}", "X-Odoo-Database": DB}
        assert requests.get(f"{sb.odoo_url}/web/version", timeout=10).json() == {
            "version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"}
        resp = requests.post(url, headers=headers, timeout=10, json={
            "domain": [["move_type", "in", ["out_invoice", "out_refund"]]], "fields": ["name"],
            "limit": 3, "order": "id", "context": {"active_test": False}})
        assert resp.status_code == 200
        expected = [{"id": m["id"], "name": m["name"]} for m in sb.data.moves
                    if m["move_type"] in ("out_invoice", "out_refund")][:3]
        assert resp.json() == expected
        read = requests.post(f"{sb.odoo_url}/json/2/res.partner/read", headers=headers, timeout=10,
                             json={"ids": [1], "fields": ["name"]})
        assert read.json() == [{"id": 1, "name": sb.data.partner(1)["name"]}]
        missing = requests.post(f"{sb.odoo_url}/json/2/res.partner/read", headers=headers, timeout=10,
                                json={"ids": [10**9], "fields": ["name"]})
        assert missing.status_code == 200 and missing.json() == []
        bad = requests.post(url, headers={"Authorization": "bearer nope"}, json={}, timeout=10)
        assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
        assert bad.json()["name"] == "werkzeug.exceptions.Unauthorized" and bad.json()["message"] == "Invalid apikey"
        assert bad.json()["arguments"] == ["Invalid apikey", 401]
        anonymous = requests.post(url, json={}, timeout=10)
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert anonymous.json()["message"] == 'User not authenticated, use the "Authorization" header'
        sb.faults.set("odoo", "expired_key")
        expired = requests.post(url, headers=headers, json={}, timeout=10)
        # an expired key is not found among the valid ones: the same answer as a wrong key
        assert expired.status_code == 401 and expired.json() == bad.json()
        field = requests.post(url, headers=headers, json={"fields": ["foo"]}, timeout=10)
        assert field.status_code == 500 and field.json()["name"] == "builtins.ValueError"
        assert field.json()["message"] == "Invalid field 'foo' on model 'account.move'"
        model = requests.post(f"{sb.odoo_url}/json/2/account.movez/search", headers=headers, json={}, timeout=10)
        assert model.status_code == 404
        kwarg = requests.post(url, headers=headers, json={"bogus": 1}, timeout=10)
        assert kwarg.status_code == 422 and kwarg.json()["name"] == "builtins.TypeError"
        db = requests.post(url, headers={**headers, "X-Odoo-Database": "other"}, json={}, timeout=10)
        assert db.status_code == 404 and db.headers["Content-Type"].startswith("text/html")
        assert "<title>404 Not Found</title>" in db.text  # the server-wide page, not an API error
        # a key without accounting rights: account.move is refused (403), res.partner reads
        sb.odoo.add_api_key("clerk-key", "clerk@example.com", "Clerk", accounting=False)
        clerk = {**headers, "Authorization": "bearer clerk-key"}
        denied = requests.post(url, headers=clerk, json={"fields": ["name"], "limit": 1}, timeout=10)
        assert denied.status_code == 403 and denied.json()["name"] == "odoo.exceptions.AccessError"
        assert denied.json()["message"].startswith(
            "You are not allowed to access 'Journal Entry' (account.move) records.")
        partners = requests.post(f"{sb.odoo_url}/json/2/res.partner/search_read", headers=clerk,
                                 json={"fields": ["name"], "limit": 1}, timeout=10)
        assert partners.status_code == 200 and len(partners.json()) == 1
        me = requests.post(f"{sb.odoo_url}/json/2/res.users/context_get", headers=clerk, json={}, timeout=10)
        uid = me.json()["uid"]
        who = requests.post(f"{sb.odoo_url}/json/2/res.users/read", headers=clerk, timeout=10,
                            json={"ids": [uid], "fields": ["login"]})
        assert who.json() == [{"id": uid, "login": "clerk@example.com"}]
        # JSON-RPC still works on 19, with error code 0
        assert rpc(sb, "object", "execute_kw", DB, UID, "bad", "account.move", "search", [[]], {})["error"]["code"] == 0


def test_faults_proxy_pages_retry_after_drops(sb):
    url = f"{sb.odoo_url}/jsonrpc"
    sb.faults.set("odoo", "server_error", status=503)
    resp = requests.post(url, json={}, timeout=10)
    assert resp.status_code == 503 and resp.headers["Content-Type"].startswith("text/html")
    assert "503 Service Temporarily Unavailable" in resp.text and "nginx" in resp.text
    sb.faults.set("odoo", "rate_limit", retry_after=7)
    resp = requests.post(url, json={}, timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    sb.faults.set("odoo", "drop")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={}, timeout=10)
    sb.faults.set("odoo", "malformed")
    with pytest.raises(ValueError):
        requests.post(url, json={}, timeout=10).json()
    sb.faults.set("odoo", "bad_credentials")
    assert rpc(sb, "common", "authenticate", DB, "admin", KEY, {})["result"] is False
    assert result(rpc(sb, "common", "authenticate", DB, "admin", KEY, {})) == UID  # one request only
    assert [e["fault"] for e in sb.requests["odoo"][-6:]] == [
        "server_error", "rate_limit", "drop", "malformed", "bad_credentials", None]


def test_large_data_index_paths_give_the_same_answers():
    """With index_threshold=0 every query takes the indexed paths used at a million moves."""
    kwargs = dict(seed=4, customers=12, invoices=250, as_of=date(2026, 3, 2))
    with Sandbox(**kwargs) as plain, Sandbox(**kwargs, index_threshold=0) as indexed:
        mark = max(m["write_date"] for m in plain.data.moves)
        for sb in (plain, indexed):
            sb.advance_night()
        for domain in ([["write_date", ">", mark]], [["write_date", ">=", "2026-02-25 00:00:00"], ["id", ">", 100]],
                       [["id", ">", 40], ["id", "<=", 90], ["state", "=", "posted"]]):
            for order in ("id asc", "id desc", "amount_total desc, id asc", "write_date desc, id desc",
                          "write_date asc"):
                a = result(call(plain, "account.move", "search_read", domain, fields=["write_date"], order=order))
                b = result(call(indexed, "account.move", "search_read", domain, fields=["write_date"], order=order))
                assert a == b and a, (domain, order)
                top = result(call(indexed, "account.move", "search_read", domain, fields=["write_date"],
                                  order=order, limit=3, offset=1))
                assert top == a[1:4], (domain, order)
                assert result(call(indexed, "account.move", "search_count", domain)) == len(a)
        assert indexed.odoo.index_hits > 0 and plain.odoo.index_hits == 0
        changed = result(call(indexed, "account.move", "search", [["write_date", ">", mark]], order="id"))
        assert changed == sorted(indexed.data.move(i)["id"] for i in changed) and len(changed) >= 5

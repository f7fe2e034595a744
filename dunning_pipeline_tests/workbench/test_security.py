"""Nobody gets in who should not, and nothing they send is run: no session, forged cookies,
CSRF, script in data, SQL-looking filters, another user's action ids, login throttling, the
trusted proxy header, and the bind guard."""

from __future__ import annotations

import io
import time

import pytest
import sqlalchemy as sa

from dunning_pipeline.settings import SettingsError
from dunning_pipeline.warehouse.store import Warehouse
from dunning_pipeline.workbench import __main__ as cli
from dunning_pipeline.workbench import auth
from dunning_pipeline.workbench.app import COOKIE
from dunning_pipeline.workbench.config import WorkbenchConfig

from .conftest import SCRIPT_BODY, SCRIPT_NAME, csrf_of, login, make_client

PAGES = ["/", "/customers/10", "/report", "/customers/10?emails_page=2"]


def _rows(url: str, table: str) -> int:
    wh = Warehouse(url)
    try:
        return wh.count(table)
    finally:
        wh.dispose()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_login(aged_url, users_file, path):
    client = make_client(aged_url, users_file)
    r = client.get(path)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2F")
    assert "Acme" not in r.text


def test_posting_without_a_session_writes_nothing(aged_url, users_file):
    client = make_client(aged_url, users_file)
    before = _rows(aged_url, "dunning_holds")
    r = client.post("/customers/10/promise", data={"until": "2026-03-20", "csrf_token": "x"})
    assert r.status_code == 403
    assert _rows(aged_url, "dunning_holds") == before


def test_login_sets_a_hardened_cookie_and_rotates_the_session(aged_url, users_file):
    client = make_client(aged_url, users_file)
    anonymous = client.get("/login")
    before = client.cookies[COOKIE]
    assert "httponly" in anonymous.headers["set-cookie"].lower()
    assert "samesite=lax" in anonymous.headers["set-cookie"].lower()
    r = client.post("/login", data={"csrf_token": csrf_of(anonymous.text), "username": "alice",
                                    "password": "alice-password-1", "next": "/customers/10"})
    assert r.status_code == 303 and r.headers["location"] == "/customers/10"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert client.cookies[COOKIE] != before
    page = client.get("/customers/10")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_cookie_is_secure_behind_https(aged_url, users_file):
    client = make_client(aged_url, users_file, https=True)
    assert "secure" in client.get("/login").headers["set-cookie"].lower()


def test_login_redirect_target_stays_on_the_site(aged_url, users_file):
    client = make_client(aged_url, users_file)
    page = client.get("/login")
    r = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "alice",
                                    "password": "alice-password-1", "next": "//evil.example/x"})
    assert r.headers["location"] == "/"


def test_a_forged_or_tampered_cookie_is_no_session(aged_url, users_file):
    client = make_client(aged_url, users_file)

    def send(value: str) -> int:
        client.cookies.clear()  # only the cookie under test (each refusal sets a fresh one)
        client.cookies.set(COOKIE, value)
        return client.get("/").status_code
    # Signed with another key: looks right, is not ours.
    other = auth.SessionSigner(b"another-key-of-thirty-two-bytes!")
    assert send(other.dumps({"u": "alice", "csrf": "t", "iat": int(time.time())})) == 303
    # Ours, with the user changed after signing.
    mine = auth.SessionSigner(b"s" * 32)
    body, mac = mine.dumps({"u": "bob", "csrf": "t", "iat": int(time.time())}).split(".")
    forged = mine.dumps({"u": "alice", "csrf": "t", "iat": int(time.time())}).split(".")[0] + "." + mac
    assert send(forged) == 303
    # Ours, but expired, or naming a user who is not in the users file.
    assert send(mine.dumps({"u": "alice", "csrf": "t", "iat": int(time.time()) - 13 * 3600})) == 303
    assert send(mine.dumps({"u": "mallory", "csrf": "t", "iat": int(time.time())})) == 303
    # The genuine article gets in (so the refusals above are about the forgery).
    assert send(mine.dumps({"u": "alice", "csrf": "t", "iat": int(time.time())})) == 200


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_a_missing_or_wrong_csrf_token_is_refused(alice, aged_url, token):
    before = (_rows(aged_url, "dunning_holds"), _rows(aged_url, "workbench_actions"))
    data = {"until": "2026-03-20", "note": "promised"}
    if token is not None:
        data["csrf_token"] = token
    r = alice.post("/customers/40/promise", data=data)
    assert r.status_code == 403 and "nothing was saved" in r.text
    assert (_rows(aged_url, "dunning_holds"), _rows(aged_url, "workbench_actions")) == before


def test_another_sessions_csrf_token_is_refused(alice, bob, aged_url):
    bobs_token = csrf_of(bob.get("/customers/40").text)
    before = _rows(aged_url, "workbench_actions")
    r = alice.post("/customers/40/call", data={"csrf_token": bobs_token, "outcome": "no_answer"})
    assert r.status_code == 403 and _rows(aged_url, "workbench_actions") == before


def test_logout_needs_the_token_and_ends_the_session(alice):
    assert alice.post("/logout", data={}).status_code == 403
    assert alice.get("/").status_code == 200
    token = csrf_of(alice.get("/").text)
    kept = alice.cookies[COOKIE]
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 303
    assert alice.get("/").status_code == 303
    # A copy of the cookie taken before the logout is dead too.
    alice.cookies.clear()
    alice.cookies.set(COOKIE, kept)
    assert alice.get("/").status_code == 303
    # Logging in again works.
    assert login(alice, "alice").status_code == 303 and alice.get("/").status_code == 200


def test_script_in_a_customer_name_and_an_email_body_is_shown_as_text(alice):
    worklist = alice.get("/").text
    page = alice.get("/customers/10").text
    for html in (worklist, page):
        assert "<script>alert" not in html
    assert "Acme &lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt; GmbH" in page
    assert "Acme &lt;script&gt;" in worklist
    assert "&lt;script&gt;alert(&#39;body&#39;)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    assert SCRIPT_NAME not in page and SCRIPT_BODY not in page


@pytest.mark.parametrize("params", [
    {"stage": "call' OR '1'='1"},
    {"segment": "default'; DROP TABLE invoice_aging; --"},
    {"currency": "EUR' UNION SELECT 1 --"},
    {"company": "1 OR 1=1"},
    {"hold": "promise' OR 1=1 --"},
    {"page": "1; DELETE FROM dunning_holds"},
])
def test_sql_looking_filter_values_are_only_values(alice, aged_url, params):
    holds = _rows(aged_url, "dunning_holds")
    r = alice.get("/", params=params)
    assert r.status_code in (200, 400)
    if "page" not in params:  # a bad page number is page 1; anything else filters or is refused
        assert "Nobody needs an action with these filters" in r.text or "is not" in r.text
        assert "Acme" not in r.text.split("<h2>", 1)[-1] or r.status_code == 400
    assert _rows(aged_url, "invoice_aging") == 17 and _rows(aged_url, "dunning_holds") == holds
    if "company" in params or "hold" in params:
        assert r.status_code == 400 and "is not" in r.text


def _action_id(url: str, author: str, kind: str) -> int:
    wh = Warehouse(url)
    try:
        t = wh.table("workbench_actions")
        with wh.begin() as conn:
            return conn.execute(sa.select(sa.func.max(t.c.id)).where(t.c.author == author, t.c.kind == kind)).scalar()
    finally:
        wh.dispose()


def test_another_users_action_cannot_be_retracted(alice, bob, aged_url):
    token = csrf_of(alice.get("/customers/40").text)
    r = alice.post("/customers/40/promise", data={"csrf_token": token, "until": "2026-03-25", "note": "by Friday"})
    assert r.status_code == 303
    action = _action_id(aged_url, "alice", "promise")
    bob_token = csrf_of(bob.get("/customers/40").text)
    r = bob.post(f"/customers/40/actions/{action}/retract", data={"csrf_token": bob_token})
    assert r.status_code == 403 and "someone else" in r.text
    # Nor through another customer's URL.
    r = bob.post(f"/customers/10/actions/{action}/retract", data={"csrf_token": bob_token})
    assert r.status_code == 400 and "not an action on this customer" in r.text
    wh = Warehouse(aged_url)
    t = wh.table("workbench_actions")
    holds = wh.table("dunning_holds")
    with wh.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == action)).mappings().one()
        assert row["retracted_at"] is None
        assert conn.execute(sa.select(holds.c.released_at).where(holds.c.id == row["hold_id"])).scalar() is None
    # Its author may.
    token = csrf_of(alice.get("/customers/40").text)
    assert alice.post(f"/customers/40/actions/{action}/retract", data={"csrf_token": token}).status_code == 303
    with wh.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == action)).mappings().one()
        assert row["retracted_at"] is not None
        assert conn.execute(sa.select(holds.c.released_by).where(holds.c.id == row["hold_id"])).scalar() == "alice"
    wh.dispose()


def test_a_hold_of_another_customer_cannot_be_released_from_this_one(alice, aged_url):
    wh = Warehouse(aged_url)
    holds = wh.table("dunning_holds")
    with wh.begin() as conn:  # the exclusion of Epsilon (50), entered by joe
        hold = conn.execute(sa.select(holds.c.id).where(holds.c.customer_id == 50)).scalar()
    token = csrf_of(alice.get("/customers/10").text)
    r = alice.post(f"/customers/10/holds/{hold}/release", data={"csrf_token": token})
    assert r.status_code == 400 and f"hold {hold}: not a hold of this customer" in r.text
    with wh.begin() as conn:
        assert conn.execute(sa.select(holds.c.released_at).where(holds.c.id == hold)).scalar() is None
    wh.dispose()


def test_failed_logins_are_limited(aged_url, users_file):
    now = [1000.0]
    client = make_client(aged_url, users_file, limiter=auth.LoginLimiter(limit=3, window_s=600,
                                                                         clock=lambda: now[0]))
    for _ in range(3):
        assert login(client, "alice", "guess-guess-guess").status_code == 401
    # Even the right password waits now.
    r = login(client, "alice")
    assert r.status_code == 429 and "Too many failed logins" in r.text
    now[0] += 601
    assert login(client, "alice").status_code == 303


def test_wrong_password_and_unknown_user_look_the_same(aged_url, users_file):
    client = make_client(aged_url, users_file)
    a = login(client, "alice", "not-her-password")
    b = login(client, "nobody-here", "whatever-password")
    assert a.status_code == b.status_code == 401
    assert "Wrong user name or password." in a.text and "Wrong user name or password." in b.text


def test_the_proxy_header_counts_only_from_the_proxy(aged_url, users_file):
    proxied = make_client(aged_url, users_file, trusted_proxies=frozenset({"10.0.0.5"}), client=("10.0.0.5", 4000))
    r = proxied.get("/", headers={"X-Forwarded-Email": "carol@ourcompany.example"})
    assert r.status_code == 200 and "carol@ourcompany.example" in r.text
    stranger = make_client(aged_url, users_file, trusted_proxies=frozenset({"10.0.0.5"}), client=("10.0.0.9", 4000))
    assert stranger.get("/", headers={"X-Forwarded-Email": "carol@ourcompany.example"}).status_code == 303
    # Without a proxy configured, the header is nothing.
    plain = make_client(aged_url, users_file, client=("10.0.0.5", 4000))
    assert plain.get("/", headers={"X-Forwarded-Email": "carol@ourcompany.example"}).status_code == 303


def test_proxy_user_actions_still_need_the_csrf_token(aged_url, users_file):
    proxied = make_client(aged_url, users_file, trusted_proxies=frozenset({"10.0.0.5"}), client=("10.0.0.5", 4000))
    h = {"X-Forwarded-Email": "carol@ourcompany.example"}
    before = _rows(aged_url, "workbench_actions")
    assert proxied.post("/customers/40/call", data={"outcome": "no_answer"}, headers=h).status_code == 403
    token = csrf_of(proxied.get("/customers/40", headers=h).text)
    assert proxied.post("/customers/40/call", data={"outcome": "no_answer", "csrf_token": token},
                        headers=h).status_code == 303
    assert _rows(aged_url, "workbench_actions") == before + 1
    assert _action_id(aged_url, "carol@ourcompany.example", "call") is not None


def test_a_public_bind_needs_authentication(tmp_path):
    bare = WorkbenchConfig(database_url="sqlite://", users_file=str(tmp_path / "none.txt"))
    with pytest.raises(SettingsError, match="refusing to listen on 0.0.0.0: no authentication"):
        cli.check_bind("0.0.0.0", bare)
    cli.check_bind("127.0.0.1", bare)
    cli.check_bind("::1", bare)
    auth.UsersFile(tmp_path / "users.txt").add("alice", "alice-password-1")
    cli.check_bind("0.0.0.0", WorkbenchConfig(database_url="sqlite://", users_file=str(tmp_path / "users.txt")))
    cli.check_bind("0.0.0.0", WorkbenchConfig(database_url="sqlite://", trusted_proxies=frozenset({"10.0.0.5"})))


def test_adduser_reads_the_password_from_stdin_and_stores_only_a_hash(tmp_path, monkeypatch):
    path = tmp_path / "users.txt"
    monkeypatch.setenv("DUNNING_WORKBENCH_USERS", str(path))
    monkeypatch.setenv("DUNNING_DATABASE_URL", f"sqlite:///{tmp_path / 'w.sqlite'}")
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-secret-1\n"))
    assert cli.main(["adduser", "dana"]) == 0
    text = path.read_text()
    assert text.startswith("dana:$argon2id$") and "a-long-secret-1" not in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    users = auth.UsersFile(path)
    assert users.verify("dana", "a-long-secret-1") and not users.verify("dana", "a-long-secret-2")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["adduser", "erin"]) == 2 and "erin" not in path.read_text()


def test_a_short_secret_is_refused(monkeypatch):
    from dunning_pipeline.workbench import config

    with pytest.raises(SettingsError, match="at least 32 characters"):
        config.from_env({"DUNNING_WORKBENCH_SECRET": "short", "DUNNING_DATABASE_URL": "sqlite://"})
    cfg = config.from_env({"DUNNING_WORKBENCH_SECRET": "x" * 40, "DUNNING_DATABASE_URL": "sqlite://"})
    assert "x" * 40 not in repr(cfg)

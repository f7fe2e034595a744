"""Who may use the workbench: a users file with argon2 hashes, an optional trusted proxy header,
signed session cookies with a CSRF token, and a limit on failed logins.

The users file holds one `name:argon2-hash` per line (`#` comments allowed); it is re-read when
it changes, so `adduser` needs no restart. Sessions are stateless: the cookie carries the user,
a CSRF token and the issue time, signed with HMAC-SHA256 under `DUNNING_WORKBENCH_SECRET`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeSerializer

USER_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_hasher = PasswordHasher()
# Verified against when the user is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AuthError(ValueError):
    """A users file or a user name that cannot be used; the message names the line or the field."""


def check_user_name(name: str) -> str:
    if not USER_NAME.match(name or ""):
        raise AuthError("user name: use 1-64 letters, digits or . _ @ + - (no spaces or colons)")
    return name


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise AuthError("password: use at least 10 characters")
    return _hasher.hash(password)


class UsersFile:
    """The users of the workbench, from `path`; missing file: nobody."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._stamp: tuple | None = None
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        if self.path is None or not self.path.exists():
            return {}
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._users = parse_users(self.path.read_text(encoding="utf-8"), self.path)
                self._stamp = stamp
            return self._users

    def names(self) -> list[str]:
        return sorted(self._load())

    def verify(self, name: str, password: str) -> bool:
        stored = self._load().get(name)
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def add(self, name: str, password: str) -> bool:
        """Add or replace `name`; returns True when the user is new. The file is made 0600."""
        if self.path is None:
            raise AuthError("DUNNING_WORKBENCH_USERS is not set: name the users file there")
        check_user_name(name)
        hashed = hash_password(password)
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        kept = [ln for ln in lines if ln.split(":", 1)[0].strip() != name]
        new = len(kept) == len(lines)
        kept.append(f"{name}:{hashed}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(kept) + "\n")
        os.replace(tmp, self.path)
        return new


def parse_users(text: str, path: Path | str = "users file") -> dict[str, str]:
    users = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not USER_NAME.match(name) or not hashed.startswith("$argon2"):
            raise AuthError(f"{path} line {number}: expected 'name:$argon2id$...' "
                            f"(add users with `python -m dunning_pipeline.workbench adduser NAME`)")
        users[name] = hashed
    return users


class SessionSigner:
    """Cookie value <-> session dict, signed (itsdangerous, HMAC-SHA256); anything tampered,
    expired or malformed is None. Expiry is the session's own issue time (`iat`)."""

    def __init__(self, secret: bytes, max_age_s: int = 12 * 3600):
        self._serializer = URLSafeSerializer(secret, salt="dunning-workbench-session",
                                             signer_kwargs={"digest_method": hashlib.sha256})
        self.max_age_s = max_age_s

    def dumps(self, session: dict) -> str:
        return self._serializer.dumps(session)

    def loads(self, value: str | None, now: float | None = None) -> dict | None:
        if not value:
            return None
        try:
            session = self._serializer.loads(value)
        except BadSignature:  # also a payload that does not decode
            return None
        issued = session.get("iat") if isinstance(session, dict) else None
        if not isinstance(issued, (int, float)) or (now or time.time()) - issued > self.max_age_s:
            return None
        return session


def new_session(user: str | None) -> dict:
    return {"u": user, "csrf": secrets.token_urlsafe(24), "iat": time.time()}


def csrf_ok(session: dict | None, token: str | None) -> bool:
    expected = (session or {}).get("csrf")
    return bool(expected and token) and hmac.compare_digest(str(expected), str(token))


class LoginLimiter:
    """At most `limit` failed logins per user name and per client address in `window_s`."""

    def __init__(self, limit: int = 5, window_s: float = 900, clock=time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._fails: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque:
        q, cutoff = self._fails[key], self.clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> int:
        """Seconds until a login may be tried again (0: now)."""
        with self._lock:
            waits = [self._recent(k)[0] + self.window_s - self.clock()
                     for k in keys if len(self._recent(k)) >= self.limit]
        return int(max(waits)) + 1 if waits else 0

    def failed(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._recent(k).append(self.clock())

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)

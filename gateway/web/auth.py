"""API tokens and the failed-authentication limit.

A token is created once with ``gateway token create`` and shown once; only its
SHA-256 hash is kept, in the ``web_tokens`` table of the daemon's database, so a
copy of the database cannot be used to call the API.  Scopes are ordered:
``read`` < ``operate`` < ``admin``.  The functions here block (SQLite); the web
app runs them on its :class:`~gateway.store.Store` thread, the CLI directly.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

import sqlite_utils

TABLE = "web_tokens"
TOKEN_PREFIX = "gwt_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
#: :data:`NAME_PATTERN` in words, for people.
NAME_RULE = (
    "a token name is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
)


class TokenError(Exception):
    """A token cannot be created or revoked; the message says why."""


class Scope(IntEnum):
    """What a token may do; a higher scope includes the lower ones."""

    READ = 1
    OPERATE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Scope:
        try:
            return cls[text.upper()]
        except KeyError:
            raise TokenError(f"unknown scope {text!r}; use read, operate or admin") from None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    scope: Scope
    created_at: float
    last_used_at: float | None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scope"] = self.scope.label
        return d


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def ensure_schema(db: sqlite_utils.Database) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        " name TEXT PRIMARY KEY, scope TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,"
        " created_at REAL NOT NULL, last_used_at REAL)"
    )


def _record(row: tuple[Any, ...]) -> TokenRecord:
    name, scope, created_at, last_used_at = row
    return TokenRecord(name, Scope.parse(scope), created_at, last_used_at)


def create_token(db: sqlite_utils.Database, name: str, scope: Scope) -> tuple[TokenRecord, str]:
    """Create a token; returns its record and the secret (shown once, never stored)."""
    if not NAME_PATTERN.match(name):
        raise TokenError(NAME_RULE)
    ensure_schema(db)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    with db.conn:
        exists = db.execute(f"SELECT 1 FROM {TABLE} WHERE name = ?", [name]).fetchone()
        if exists:
            raise TokenError(f"a token named {name!r} exists; revoke it first or pick a new name")
        db.execute(
            f"INSERT INTO {TABLE} (name, scope, token_hash, created_at) VALUES (?, ?, ?, ?)",
            [name, scope.label, hash_token(secret), now],
        )
    return TokenRecord(name, scope, now, None), secret


def list_tokens(db: sqlite_utils.Database) -> list[TokenRecord]:
    ensure_schema(db)
    rows = db.execute(
        f"SELECT name, scope, created_at, last_used_at FROM {TABLE} ORDER BY name"
    ).fetchall()
    return [_record(r) for r in rows]


def revoke_token(db: sqlite_utils.Database, name: str) -> bool:
    """Delete the token named ``name``; False if there was none."""
    ensure_schema(db)
    with db.conn:
        cur = db.execute(f"DELETE FROM {TABLE} WHERE name = ?", [name])
    return bool(cur.rowcount)


def find_token(db: sqlite_utils.Database, token: str) -> TokenRecord | None:
    """The live token whose secret is ``token``, or None (revoked tokens are gone)."""
    row = db.execute(
        f"SELECT name, scope, created_at, last_used_at FROM {TABLE} WHERE token_hash = ?",
        [hash_token(token)],
    ).fetchone()
    return _record(row) if row else None


def touch_token(db: sqlite_utils.Database, name: str, at: float) -> None:
    with db.conn:
        db.execute(f"UPDATE {TABLE} SET last_used_at = ? WHERE name = ?", [at, name])


class FailedAuthLimit:
    """Counts refused credentials per client address in a sliding window (pure; clock passed in).

    After ``limit`` failures within ``window`` seconds, the address is refused
    until the oldest of them leaves the window, whatever token it presents.
    """

    def __init__(self, limit: int, window: float = 60.0, max_addresses: int = 4096) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float] | None:
        q = self._failures.get(address)
        if q is None:
            return None
        while q and now - q[0] >= self.window:
            q.popleft()
        if not q:
            del self._failures[address]
            return None
        return q

    def retry_after(self, address: str, now: float) -> float | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        q = self._recent(address, now)
        if q is None or len(q) < self.limit:
            return None
        return q[-self.limit] + self.window - now

    def failed(self, address: str, now: float) -> None:
        q = self._recent(address, now)
        if q is None:
            if len(self._failures) >= self.max_addresses:
                del self._failures[next(iter(self._failures))]
            q = self._failures[address] = deque(maxlen=self.limit)
        q.append(now)

"""``gateway token create|list|revoke``: API tokens, managed on the Pi itself.

Each function takes the daemon's database path (``storage.state_dir``/gateway.db),
prints for a person at a terminal and returns a process exit status.  The
secret of a new token is printed once; only its hash is stored.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from gateway.store import open_database
from gateway.web.auth import Scope, TokenError, create_token, list_tokens, revoke_token


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def token_create(db_path: Path, name: str, scope: str, out: TextIO = sys.stdout) -> int:
    """Create a token and print its secret once."""
    try:
        parsed = Scope.parse(scope)
        db = open_database(db_path)
        try:
            record, secret = create_token(db, name, parsed)
        finally:
            db.conn.close()
    except TokenError as err:
        print(f"gateway token: {err}", file=sys.stderr)
        return 1
    print(f"Created token {record.name!r} with scope {record.scope.label}.", file=out)
    print("Copy it now; it is not stored and cannot be shown again:", file=out)
    print(secret, file=out)
    print("Send it as the header  Authorization: Bearer <token>", file=out)
    return 0


def token_list(db_path: Path, out: TextIO = sys.stdout) -> int:
    """Print every token's name, scope, creation and last use (never a secret)."""
    db = open_database(db_path)
    try:
        records = list_tokens(db)
    finally:
        db.conn.close()
    if not records:
        print("No tokens. Create one with: gateway token create --name NAME --scope read", file=out)
        return 0
    print(f"{'NAME':<24} {'SCOPE':<8} {'CREATED':<21} LAST USED", file=out)
    for r in records:
        print(
            f"{r.name:<24} {r.scope.label:<8} {_when(r.created_at):<21} {_when(r.last_used_at)}",
            file=out,
        )
    return 0


def token_revoke(db_path: Path, name: str, out: TextIO = sys.stdout) -> int:
    """Revoke (delete) the token named ``name``; it stops working at once."""
    db = open_database(db_path)
    try:
        removed = revoke_token(db, name)
    finally:
        db.conn.close()
    if not removed:
        print(f"gateway token: no token named {name!r} (see gateway token list)", file=sys.stderr)
        return 1
    print(f"Revoked token {name!r}.", file=out)
    return 0

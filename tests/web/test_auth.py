"""Tokens (the table and the ``gateway token`` commands) and the failed-auth limit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import open_database
from gateway.web import auth
from gateway.web.auth import FailedAuthLimit, Scope
from gateway.web.tokens_cli import token_create, token_list, token_revoke


def test_token_commands_show_the_secret_once_and_store_only_its_hash(tmp_path: Path) -> None:
    db_path = tmp_path / "gateway.db"
    out = io.StringIO()
    assert token_create(db_path, "prometheus", "read", out) == 0
    secret = next(line for line in out.getvalue().splitlines() if line.startswith("gwt_"))
    assert secret.encode() not in db_path.read_bytes()
    db = open_database(db_path)
    try:
        record = auth.find_token(db, secret)
        assert record is not None and record.name == "prometheus" and record.scope is Scope.READ
        assert auth.find_token(db, secret + "x") is None
    finally:
        db.conn.close()

    listing = io.StringIO()
    assert token_list(db_path, listing) == 0
    assert "prometheus" in listing.getvalue() and "read" in listing.getvalue()
    assert secret not in listing.getvalue()

    assert token_create(db_path, "prometheus", "admin", io.StringIO()) == 1  # name taken
    assert token_create(db_path, "bad name!", "read", io.StringIO()) == 1
    assert token_create(db_path, "x", "superuser", io.StringIO()) == 1

    assert token_revoke(db_path, "prometheus", io.StringIO()) == 0
    assert token_revoke(db_path, "prometheus", io.StringIO()) == 1
    db = open_database(db_path)
    try:
        assert auth.find_token(db, secret) is None
    finally:
        db.conn.close()
    empty = io.StringIO()
    token_list(db_path, empty)
    assert "No tokens" in empty.getvalue()


def test_scopes_are_ordered() -> None:
    assert Scope.READ < Scope.OPERATE < Scope.ADMIN
    assert Scope.parse("Operate") is Scope.OPERATE
    with pytest.raises(auth.TokenError):
        Scope.parse("root")


def test_failed_auth_limit_blocks_after_the_limit_until_the_window_passes() -> None:
    limit = FailedAuthLimit(3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert limit.retry_after("a", t) is None
        limit.failed("a", t)
    assert limit.retry_after("a", 2.5) == pytest.approx(57.5)
    assert limit.retry_after("b", 2.5) is None
    assert limit.retry_after("a", 59.9) is not None
    assert limit.retry_after("a", 60.0) is None  # the first failure left the window


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.floats(0, 1, allow_nan=False)), max_size=60),
    st.integers(2, 5),
)
def test_failed_auth_limit_matches_a_sliding_window(
    failures: list[tuple[str, float]], max_addresses: int
) -> None:
    """Blocked exactly when ``limit`` failures are in the window, while every address
    fits; with more addresses than fit, memory stays bounded and nobody is blocked early."""
    limit = FailedAuthLimit(5, window=10.0, max_addresses=max_addresses)
    now = 0.0
    seen: list[tuple[str, float]] = []
    exact = max_addresses >= 4
    for address, step in failures:
        now += step
        recent = [t for a, t in seen if a == address and now - t < 10.0]
        blocked = limit.retry_after(address, now)
        if len(recent) < 5:
            assert blocked is None
        elif exact:
            assert blocked is not None and 0 < blocked <= 10.0
        limit.failed(address, now)
        seen.append((address, now))
        assert len(limit._failures) <= max_addresses

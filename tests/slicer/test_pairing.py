"""Cura's app-key pairing as a state machine."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.slicer.pairing import MAX_PENDING, PairingBook, PairingState, clean_app


def test_approved_key_is_handed_out_once() -> None:
    book = PairingBook(timeout=60)
    book.request("t1", "Cura", now=0)
    assert book.collect("t1", now=1).state is PairingState.PENDING  # type: ignore[union-attr]
    assert book.approve("t1", "m-ada", "Ada Lovelace", "gwm_k", now=2) is not None
    got = book.collect("t1", now=3)
    assert got is not None and got.api_key == "gwm_k"
    assert book.collect("t1", now=4) is None


def test_denied_and_expired_requests_are_gone() -> None:
    book = PairingBook(timeout=60)
    book.request("t1", "Cura", now=0)
    book.request("t2", "Cura", now=0)
    assert book.deny("t1", now=1)
    assert book.collect("t1", now=2).state is PairingState.DENIED  # type: ignore[union-attr]
    assert book.approve("t1", "m", "M", "k", now=2) is None
    assert book.collect("t2", now=60) is None
    assert book.approve("t2", "m", "M", "k", now=61) is None


@given(st.integers(1, 40))
def test_pending_requests_are_bounded(n: int) -> None:
    book = PairingBook(timeout=60)
    for i in range(n):
        book.request(f"t{i}", "Cura", now=i * 0.01)
    pending = book.pending(now=1)
    assert len(pending) == min(n, MAX_PENDING)
    assert pending[-1].token == f"t{n - 1}"


def test_app_names() -> None:
    assert clean_app(" Cura\n") == "Cura"
    assert clean_app("") is None and clean_app(5) is None
    assert len(clean_app("x" * 500) or "") == 64

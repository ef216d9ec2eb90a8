"""Marlin's wire text: framing and reply parsing (gateway/machine/marlin_wire.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.machine.marlin_wire import (
    Reply,
    classify,
    format_line,
    line_error,
    parse_ok,
    parse_resend,
)


def test_replies_are_sorted_by_kind() -> None:
    for text, kind in (
        ("ok", Reply.OK),
        ("ok N12 P15 B3", Reply.OK_FIELDS),
        ("ok T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0", Reply.OK_FIELDS),
        ("Resend: 12", Reply.RESEND),
        ("rs N12", Reply.RESEND),
        ("Error:checksum mismatch, Last Line: 11", Reply.ERROR),
        ("!! kill", Reply.ERROR),
        ("echo:busy: processing", Reply.ECHO),
        ("T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0", Reply.TEMPERATURES),
        ("busy: processing", Reply.BUSY),
        ("start", Reply.START),
        ("wait", Reply.WAIT),
        ("FIRMWARE_NAME:Marlin 2.1.2", Reply.FIRMWARE_NAME),
        ("Cap:EEPROM:1", Reply.CAP),
        ("// action:pause", Reply.INFO),
        ("X:0.00 Y:0.00 Z:0.00 E:0.00", Reply.OTHER),
    ):
        assert classify(text) is kind, text


def test_ok_fields() -> None:
    assert parse_ok("N12 P15 B3") == (12, 15, 3)
    assert parse_ok("P15 B3") == (-1, 15, 3)
    assert parse_ok("") == (-1, -1, -1)
    assert parse_ok("N12 P-1 B3") is None  # a negative planner count is no Marlin's
    assert parse_ok("N1_2") is None and parse_ok("X12") is None


def test_line_errors_with_and_without_a_line_number() -> None:
    assert line_error("checksum mismatch, Last Line: 11") == (True, 11)
    assert line_error("Line Number is not Last Line Number+1, Last Line: 4") == (True, 4)
    assert line_error(" Wrong checksum") == (True, None)
    assert line_error("expected line 12 got 13") == (True, 11)
    assert line_error("Printer halted. kill() called!") == (False, None)
    assert parse_resend("Resend: 12") == parse_resend("rs N12") == 12


@given(st.integers(0, 10**6), st.text("GMXYZEF0123456789. -", min_size=1, max_size=40))
def test_framed_lines_carry_their_number_and_checksum(n: int, text: str) -> None:
    wire = format_line(n, text)
    head, _, tail = wire.rstrip(b"\n").rpartition(b"*")
    value = 0
    for b in head:
        value ^= b
    assert head == f"N{n} {text}".encode() and int(tail) == value

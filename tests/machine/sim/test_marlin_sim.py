"""Tests for the simulated Marlin: it must answer like Marlin 2.1.2 does."""

from __future__ import annotations

from functools import reduce

import pytest

from gateway.machine.sim.marlin import SimulatedMarlin


def numbered(n: int, text: str) -> bytes:
    head = f"N{n} {text}".encode()
    return head + b"*%d\n" % reduce(lambda a, b: a ^ b, head, 0)


def booted(**kw: object) -> SimulatedMarlin:
    fw = SimulatedMarlin(**kw)  # type: ignore[arg-type]
    fw.power_on(0.0)
    assert fw.output().startswith(b"start\n")
    return fw


def replies(fw: SimulatedMarlin, data: bytes, now: float = 0.0) -> list[str]:
    fw.receive(data, now)
    fw.tick(now)
    return fw.output().decode().splitlines()


def test_numbered_lines_get_advanced_ok_and_run_without_number_or_checksum() -> None:
    fw = booted()
    assert replies(fw, numbered(1, "G28") + numbered(2, "G1 X10 Y20")) == [
        "ok N1 P15 B3",
        "ok N2 P15 B3",
    ]
    assert fw.executed == ["G28", "G1 X10 Y20"]
    plain = booted(advanced_ok=False)
    assert replies(plain, numbered(1, "G28")) == ["ok"]


def test_checksum_error_replies_exactly_like_marlin() -> None:
    fw = booted()
    replies(fw, numbered(1, "G1 X1"))
    bad = bytearray(numbered(2, "G1 X2"))
    bad[5] ^= 0x01  # the X
    assert replies(fw, bytes(bad)) == [
        "Error:checksum mismatch, Last Line: 1",
        "Resend: 2",
        "ok",
    ]
    assert fw.lines_rejected == 1
    assert fw.executed == ["G1 X1"]


def test_line_number_errors() -> None:
    fw = booted()
    replies(fw, numbered(1, "G1 X1"))
    assert replies(fw, numbered(3, "G1 X3")) == [
        "Error:Line Number is not Last Line Number+1, Last Line: 1",
        "Resend: 2",
        "ok",
    ]
    assert replies(fw, b"N2 G1 X2\n") == [
        "Error:No Checksum with line number, Last Line: 1",
        "Resend: 2",
        "ok",
    ]
    # A copy of a line already executed (in transit when Resend went out) is
    # dropped silently by 2.1.2 ("WITHIN(gcode_N, last_N - 1, last_N)").
    assert replies(fw, numbered(1, "G1 X1")) == []
    assert fw.executed == ["G1 X1"]


def test_unnumbered_lines_need_no_checksum_and_m110_resets_the_counter() -> None:
    fw = booted()
    assert replies(fw, b"G1 X5\n") == ["ok P15 B3"]
    replies(fw, numbered(1, "G1 X1"))
    assert replies(fw, numbered(0, "M110 N0")) == ["ok N0 P15 B3"]  # out of sequence: fine
    assert replies(fw, numbered(1, "G1 X1")) == ["ok N1 P15 B3"]
    assert fw.executed == ["G1 X5", "G1 X1", "M110 N0", "G1 X1"]


def test_comment_escape_and_over_long_line_are_handled_like_the_reader() -> None:
    fw = booted()
    assert replies(fw, b"G1 X1 ; move\n") == ["ok P15 B3"]
    assert fw.executed[-1] == "G1 X1"
    long = numbered(1, "M117 " + "x" * 95)
    assert replies(fw, long)[0] == "Error:No Checksum with line number, Last Line: 0"


def test_m105_and_m115_answers() -> None:
    fw = booted()
    assert replies(fw, numbered(1, "M105")) == ["ok T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0"]
    answer = replies(fw, numbered(2, "M115"))
    assert answer[0].startswith("FIRMWARE_NAME:Marlin 2.1.2 (")
    assert "Cap:AUTOREPORT_TEMP:1" in answer
    assert answer[-1] == "ok N2 P15 B3"
    no_report = booted(auto_report=False, version="2.0.9.3")
    answer = replies(no_report, numbered(1, "M115"))
    assert "FIRMWARE_NAME:Marlin 2.0.9.3" in answer[0] and "Cap:AUTOREPORT_TEMP:0" in answer
    assert replies(no_report, numbered(2, "M155 S2"))[0] == 'echo:Unknown command: "M155 S2"'


def test_two_hotends_are_listed() -> None:
    fw = booted(extruders=2)
    (line,) = replies(fw, b"M105\n")
    assert line == (
        "ok T:20.00 /0.00 B:20.00 /0.00 T0:20.00 /0.00 T1:20.00 /0.00 @:0 B@:0 @0:0 @1:0"
    )


def test_m155_reports_temperatures_on_the_sim_clock() -> None:
    fw = booted()
    replies(fw, numbered(1, "M155 S2"), now=1.0)
    assert fw.next_wakeup() == 3.0
    fw.tick(2.9)
    assert fw.output() == b""
    fw.tick(3.0)
    assert fw.output() == b" T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n"
    assert fw.next_wakeup() == 5.0


def test_unknown_command() -> None:
    fw = booted()
    assert replies(fw, numbered(1, "X123")) == ['echo:Unknown command: "X123"', "ok N1 P15 B3"]


def test_heating_is_instant_without_time_scale() -> None:
    fw = booted()
    assert replies(fw, numbered(1, "M109 S200") + numbered(2, "M190 S60")) == [
        "ok N1 P15 B3",
        "ok N2 P15 B3",
    ]
    assert replies(fw, b"M105\n") == ["ok T:200.00 /200.00 B:60.00 /60.00 @:0 B@:0"]


def test_heating_waits_with_busy_and_temperature_lines() -> None:
    fw = booted(time_scale=1.0)  # the hotend heats 4 °C/s: 20 -> 60 °C takes 10 s
    assert replies(fw, numbered(1, "M109 S60"), now=0.0) == []
    out: list[str] = []
    t = 0.0
    while t < 10.0:
        t = min(fw.next_wakeup() or 10.0, 10.0)
        fw.tick(t)
        out += fw.output().decode().splitlines()
    assert out.count("echo:busy: processing") == 4  # every 2 s
    assert sum(1 for x in out if x.endswith("W:?")) == 9  # every second
    assert out[-1] == "ok N1 P15 B3"


def test_homing_is_busy_and_moves_take_time() -> None:
    fw = booted(time_scale=1.0, planner_blocks=4)
    assert replies(fw, numbered(1, "G28"), now=0.0) == []
    fw.tick(2.0)
    assert fw.output() == b"echo:busy: processing\n"
    fw.tick(4.0)
    assert fw.output() == b"ok N1 P3 B3\n"
    # 25 mm/s default feedrate: each 50 mm move takes 2 s; 3 blocks fit (4 - 1).
    moves = b"".join(numbered(n, f"G1 X{50 * (n - 1)}") for n in range(2, 6))
    assert replies(fw, moves, now=4.0) == ["ok N2 P2 B3", "ok N3 P1 B3", "ok N4 P0 B3"]
    assert fw.next_wakeup() == 6.0  # the first move ends; the fourth can be planned
    fw.tick(6.0)
    assert fw.output() == b"ok N5 P0 B3\n"


def test_rx_overflow_is_counted_while_the_queue_is_full() -> None:
    fw = booted(bufsize=1, time_scale=1.0)
    replies(fw, numbered(1, "G4 S10"), now=0.0)  # the queue (one line) is blocked
    fw.receive(b"G1 X1\n" * 50, 0.1)  # 300 bytes; the ring holds 127
    assert fw.overflows == 300 - 127
    fw.tick(10.0)
    assert fw.executed.count("G1 X1") == 21  # 127 bytes = 21 whole lines


def test_line_error_drains_the_rx_buffer() -> None:
    """``gcode_line_error`` empties the RX ring: lines waiting behind a bad one are lost."""
    fw = booted(bufsize=1, time_scale=1.0)
    replies(fw, numbered(1, "G4 S1"), now=0.0)
    bad = bytearray(numbered(2, "G1 X2"))
    bad[4] ^= 0x01
    fw.receive(bytes(bad) + numbered(3, "G1 X3") + numbered(4, "G1 X4"), 0.1)
    fw.tick(1.0)
    assert fw.output().decode().splitlines() == [
        "ok N1 P15 B0",
        "Error:checksum mismatch, Last Line: 1",
        "Resend: 2",
        "ok",
    ]
    kept = booted(bufsize=1, time_scale=1.0, flush_rx_on_error=False)
    replies(kept, numbered(1, "G4 S1"), now=0.0)
    kept.receive(bytes(bad) + numbered(3, "G1 X3"), 0.1)
    kept.tick(1.0)
    assert kept.output().count(b"Resend: 2") == 2  # one per line behind the bad one


def test_m112_halts_until_power_on() -> None:
    fw = booted()
    assert replies(fw, numbered(1, "M112")) == ["Error:Printer halted. kill() called!"]
    assert fw.halted
    assert replies(fw, numbered(2, "G1 X1") + b"M105\n") == []
    fw.power_on(5.0)
    assert fw.output().startswith(b"start\n")
    assert replies(fw, numbered(1, "G1 X1"), now=5.0) == ["ok N1 P15 B3"]


def test_unnumbered_m112_overtakes_the_queue() -> None:
    fw = booted(time_scale=1.0)
    replies(fw, numbered(1, "G4 S10") + numbered(2, "G1 X1"), now=0.0)
    assert replies(fw, b"M112\n", now=0.5) == ["Error:Printer halted. kill() called!"]
    assert fw.executed == ["G4 S10", "M112"]  # G1 X1 never ran


def test_boot_time_loses_input_until_start() -> None:
    fw = SimulatedMarlin(boot_time=2.0)
    fw.power_on(0.0)
    assert fw.next_wakeup() == 2.0
    fw.receive(numbered(0, "M110 N0"), 0.5)
    fw.tick(0.5)
    assert fw.output() == b""
    fw.tick(2.0)
    assert fw.output().startswith(b"start\n")
    assert fw.executed == []


@pytest.mark.parametrize(("case_insensitive", "runs"), [(False, False), (True, True)])
def test_lowercase_n_skips_the_checks(case_insensitive: bool, runs: bool) -> None:
    """``queue.cpp`` checks lines starting with 'N' only; ``GCODE_CASE_INSENSITIVE``
    then parses ``n5`` as a line number and runs the rest unchecked."""
    fw = booted(case_insensitive=case_insensitive)
    out = replies(fw, b"n5 G1 X1*0\n")
    assert ("G1 X1" in fw.executed) is runs
    assert out[-1] == "ok P15 B3"


def test_a_zero_length_move_plans_no_block() -> None:
    """``G1 Z0.3`` at the current Z has no steps: Marlin plans nothing and answers
    at once, with a full planner too (P never drops below 0)."""
    fw = booted(time_scale=1.0, planner_blocks=4)
    moves = b"".join(numbered(n, f"G1 X{50 * n} Z0.3") for n in range(1, 4))
    assert replies(fw, moves, now=0.0) == ["ok N1 P2 B3", "ok N2 P1 B3", "ok N3 P0 B3"]
    assert replies(fw, numbered(4, "G1 Z0.3 F600"), now=0.1) == ["ok N4 P0 B3"]
    assert replies(fw, numbered(5, "G1 X150 Z0.3"), now=0.2) == ["ok N5 P0 B3"]
    assert fw.moving(0.2)

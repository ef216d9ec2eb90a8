"""Tests for the Marlin host protocol core.

Scripted exchanges check what a user would see (what goes on the wire, which
events come out); property tests stream jobs through the in-memory
:class:`Link` to :class:`SimulatedMarlin` with faults and check that every job
line ran exactly once, in order, without overrunning the firmware's RX buffer.
"""

from __future__ import annotations

import random
import re
from contextlib import nullcontext
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.machine import marlin
from gateway.machine.marlin import (
    InvalidLine,
    MarlinProtocol,
    PrinterHalted,
    checksum,
    format_line,
    parse_temperatures,
)
from gateway.machine.protocol import (
    CommandDone,
    CommunicationTimeout,
    ControllerReady,
    FirmwareError,
    FirmwareMessage,
    FirmwareReset,
    LinesAcked,
    ProtocolEvent,
    ResendRequested,
    Temperatures,
    UnparsedLine,
)
from gateway.machine.sim.link import Faults, Link
from gateway.machine.sim.marlin import SimulatedMarlin

FIRMWARE_NAME = (
    b"FIRMWARE_NAME:Marlin 2.1.2 (Dec 24 2022 12:00:00) SOURCE_CODE_URL:github.com/"
    b"MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 MACHINE_TYPE:3D Printer EXTRUDER_COUNT:1\n"
)


def sent(data: bytes) -> list[str]:
    """Wire bytes -> the commands in them, checking number and checksum framing."""
    out = []
    for raw in data.split(b"\n"):
        if not raw:
            continue
        if not raw.startswith(b"N"):
            out.append(raw.decode())
            continue
        head, _, cs = raw.rpartition(b"*")
        assert int(cs) == checksum(head), raw
        out.append(head.decode())
    return out


def of(events: list[ProtocolEvent], kind: type[ProtocolEvent]) -> list[ProtocolEvent]:
    return [e for e in events if isinstance(e, kind)]


def acked(events: list[ProtocolEvent]) -> int:
    return sum(e.count for e in events if isinstance(e, LinesAcked))


def ready_core(*, advanced: bool = True, auto_report: bool = True, **kw: float) -> MarlinProtocol:
    """A core through the handshake against scripted Marlin replies (lines N0-N2 used)."""
    core = MarlinProtocol(**kw)  # type: ignore[arg-type]
    core.start(0.0)
    assert sent(core.data_to_send(0.0)) == ["N0 M110 N0"]
    core.receive(b"ok N0 P15 B3\n" if advanced else b"ok\n", 0.01)
    assert sent(core.data_to_send(0.01)) == ["N1 M115"]
    caps = b"Cap:AUTOREPORT_TEMP:1\n" if auto_report else b"Cap:AUTOREPORT_TEMP:0\n"
    ok = b"ok N1 P15 B3\n" if advanced else b"ok\n"
    events = core.receive(FIRMWARE_NAME + caps + ok, 0.02)
    if auto_report:
        assert sent(core.data_to_send(0.02)) == ["N2 M155 S2"]
        events = core.receive(b"ok N2 P15 B3\n" if advanced else b"ok\n", 0.03)
    assert of(events, ControllerReady)
    assert core.ready
    return core


def core_halted_message(core: MarlinProtocol) -> str:
    with pytest.raises(PrinterHalted) as excinfo:
        core.send_line("G1 X0")
    return str(excinfo.value)


def job(n: int, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return [
        f"G1 X{r.uniform(0, 200):.3f} Y{r.uniform(0, 200):.3f} E{0.01 * (i + 1):.2f}"
        for i in range(n)
    ]


# -- wire format ---------------------------------------------------------------


@pytest.mark.parametrize("advanced", [True, False])
def test_zero_length_moves_do_not_stall_a_job_in_real_time(advanced: bool) -> None:
    """A ``G1 Z0.3 F600`` at the current Z while the planner is full used to get an
    ``ok N.. P-1`` from the simulator (a block planned for no motion), which the
    core rightly refused to read, so the job sat until the response timeout."""
    lines = ["G21", "G90", "G1 Z0.3 F600"]
    lines += [f"G1 X{i % 50} Y{i % 7} F3000" for i in range(40)]
    lines += ["G1 Z0.3 F600", "G1 Z0.3 F600"]
    lines += [f"G1 X{i % 50} Y{i % 7} F3000" for i in range(20)]
    fw = SimulatedMarlin(time_scale=1.0, advanced_ok=advanced)
    result = Link(MarlinProtocol(response_timeout=10.0), fw).run(lines, max_seconds=60)
    assert result.completed and result.seconds < 4.0  # 2.6 s of motion
    assert all(e.waited < 2.0 for e in of(result.events, CommunicationTimeout))  # type: ignore[attr-defined]
    assert not of(result.events, UnparsedLine)
    assert [x for x in fw.executed if x.startswith("G")] == lines


def test_lines_carry_increasing_numbers_and_marlins_checksum() -> None:
    assert format_line(0, "M110 N0") == b"N0 M110 N0*125\n"  # as OctoPrint logs it
    assert checksum(b"N3 G1 X10") == 82
    core = ready_core()
    for line in ("G28", "G1 X10", "M104 S200"):
        core.send_line(line)
    assert core.data_to_send(1.0) == b"N3 G28*16\nN4 G1 X10*85\nN5 M104 S200*98\n"


@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=60)
)
def test_simulated_marlin_accepts_every_formatted_line(text: str) -> None:
    text = text.strip()
    if not text or any(c in text for c in ";\\*"):
        return
    fw = SimulatedMarlin()
    fw.power_on(0.0)
    fw.output()
    fw.receive(format_line(1, text), 0.0)
    assert not any(x.startswith((b"Error:", b"Resend:")) for x in fw.output().splitlines())
    assert fw.executed[-1] == text


def test_lines_marlin_cannot_take_are_refused_before_sending() -> None:
    core = MarlinProtocol()
    for bad in (
        "G1 X1 ; comment",
        "M117 a*b",
        "M117 \\n",
        "M117 caf\u00e9",
        "",
        "M117 " + "x" * 90,
    ):
        with pytest.raises(InvalidLine):
            core.send_line(bad)


# -- handshake -----------------------------------------------------------------


def test_handshake_reads_identity_and_turns_on_temperature_reports() -> None:
    core = MarlinProtocol()
    core.start(0.0)
    assert core.data_to_send(0.0) == b"\nN0 M110 N0*125\n"  # a newline ends any partial line
    assert not core.ready
    core.receive(b"ok N0 P15 B3\n", 0.01)
    assert core.data_to_send(0.01) == b"N1 M115*39\n"
    core.receive(FIRMWARE_NAME + b"Cap:AUTOREPORT_TEMP:1\nCap:EEPROM:1\nok N1 P15 B3\n", 0.02)
    assert sent(core.data_to_send(0.02)) == ["N2 M155 S2"]
    events = core.receive(b"ok N2 P15 B3\n", 0.03)
    (ready,) = of(events, ControllerReady)
    assert isinstance(ready, ControllerReady)
    assert (ready.firmware, ready.version) == ("marlin", "Marlin 2.1.2")
    assert ready.capabilities["AUTOREPORT_TEMP"] == "1"
    assert ready.capabilities["MACHINE_TYPE"] == "3D Printer"
    assert core.ready and core.advanced_ok and core.command_slots == 4


def test_without_auto_report_the_core_polls_m105() -> None:
    core = ready_core(advanced=False, auto_report=False, temperature_interval=2.0)
    assert not core.advanced_ok
    core.tick(0.04)
    assert sent(core.data_to_send(0.04)) == ["N2 M105"]
    events = core.receive(b"ok T:21.50 /0.00 B:20.10 /60.00 @:0 B@:0\n", 0.05)
    assert of(events, Temperatures) == [Temperatures({"T0": (21.5, 0.0), "B": (20.1, 60.0)})]
    core.tick(1.0)
    assert core.data_to_send(1.0) == b""  # not before the interval
    core.tick(2.1)
    assert sent(core.data_to_send(2.1)) == ["N3 M105"]


def test_booting_board_gets_the_handshake_again() -> None:
    """DTR resets the board on open: the bootloader eats the first M110."""
    core = MarlinProtocol(handshake_timeout=2.5)
    core.start(0.0)
    core.data_to_send(0.0)
    assert core.tick(2.0) == []
    (timeout,) = core.tick(2.6)
    assert isinstance(timeout, CommunicationTimeout)
    assert sent(core.data_to_send(2.6)) == ["N0 M110 N0"]
    events = core.receive(b"start\necho:Marlin 2.1.2\n", 2.7)
    assert not of(events, FirmwareReset)  # expected during the handshake
    assert sent(core.data_to_send(2.7)) == ["N0 M110 N0"]  # at once, not after a timeout
    core.receive(b"ok N0 P15 B3\n", 2.8)
    assert sent(core.data_to_send(2.8)) == ["N1 M115"]


def test_booting_board_through_the_link() -> None:
    core = MarlinProtocol()
    fw = SimulatedMarlin(boot_time=2.0)
    lines = job(20)
    result = Link(core, fw).run(lines)
    assert result.completed
    assert [x for x in fw.executed if x.startswith("G1")] == lines


def test_a_board_without_firmware_name_is_driven_after_the_handshake_timeout() -> None:
    """An older or vendor firmware answers M115 with a plain ok and no name: the core
    proves each answer with a numbered M105 and, after three tries or once
    handshake_timeout has passed since the first M115, streams with conservative
    settings."""
    core = MarlinProtocol(handshake_timeout=2.5)
    core.start(0.0)
    core.data_to_send(0.0)
    core.receive(b"ok\n", 0.1)
    t, ready, wire = 0.1, None, sent(core.data_to_send(0.1))
    assert wire == ["N1 M115"]
    while ready is None and t < 5.0:
        events: list[ProtocolEvent] = []
        for line in wire:
            if line.endswith("M115"):
                events += core.receive(b"echo:V1.0.4\nok\n", t)
            elif line.endswith("M105"):
                events += core.receive(b"ok T:21.0 /0.0 B:20.0 /0.0 @:0 B@:0\n", t)
        t += 0.05
        events += core.tick(t)
        ready = next((e for e in events if isinstance(e, ControllerReady)), None)
        wire = sent(core.data_to_send(t))
    assert isinstance(ready, ControllerReady) and ready.version == ""
    assert t < 3.5  # three tries or handshake_timeout, whichever comes first
    assert core.ready and not core.advanced_ok and core.command_slots == 1
    core.send_line("G28")
    wire += sent(core.data_to_send(t))
    assert [x.split(" ", 1)[1] for x in wire] == ["M105"]  # no M155: temperatures are polled
    core.receive(b"ok T:21.0 /0.0 B:20.0 /0.0 @:0 B@:0\n", t + 0.1)
    assert [x.split(" ", 1)[1] for x in sent(core.data_to_send(t + 0.1))] == ["G28"]


@pytest.mark.parametrize("advanced", [True, False])
def test_a_board_without_firmware_name_runs_a_job_through_the_link(advanced: bool) -> None:
    core = MarlinProtocol(handshake_timeout=2.5)
    fw = SimulatedMarlin(firmware_name=False, advanced_ok=advanced)
    lines = job(50)
    result = Link(core, fw).run(lines, max_seconds=30)
    assert result.completed and result.seconds < 5.0
    assert [x for x in fw.executed if x.startswith("G1")] == lines


def test_stray_ok_during_identify_is_not_taken_for_m115() -> None:
    """Two M110 went out (retry) and both were answered: the second ok is not M115's."""
    core = MarlinProtocol()
    core.start(0.0)
    core.data_to_send(0.0)
    core.receive(b"ok\n", 0.1)
    core.data_to_send(0.1)
    core.receive(b"ok\n", 0.1)  # the duplicate M110's
    core.receive(FIRMWARE_NAME + b"Cap:AUTOREPORT_TEMP:0\n", 0.2)
    events = core.receive(b"ok\n", 0.2)
    (ready,) = of(events, ControllerReady)
    assert isinstance(ready, ControllerReady) and ready.version == "Marlin 2.1.2"


# -- acknowledgements and flow control --------------------------------------------


def test_plain_ok_acknowledges_one_line_and_one_line_is_in_flight() -> None:
    core = ready_core(advanced=False)
    for line in job(5):
        core.send_line(line)
    assert len(sent(core.data_to_send(1.0))) == 1
    assert core.data_to_send(1.0) == b""
    events = core.receive(b"ok\n", 1.1)
    assert of(events, LinesAcked) == [LinesAcked(1, 1)]
    assert len(sent(core.data_to_send(1.1))) == 1


def test_advanced_ok_fills_rx_buffer_and_command_slots() -> None:
    core = ready_core(rx_buffer_size=127)
    for i in range(20):
        core.send_line(f"G1 X{i}.5 Y1")  # 16-19 bytes on the wire
    assert len(sent(core.data_to_send(1.0))) == 4  # BUFSIZE from B3, not the byte budget
    core2 = ready_core(rx_buffer_size=127)
    long_lines = job(20)  # ~40 bytes each: three would not fit in 127 bytes
    for line in long_lines:
        core2.send_line(line)
    out = core2.data_to_send(1.0)
    assert len(sent(out)) == 3 and len(out) <= 127
    assert core2.data_to_send(1.0) == b""


def test_advanced_ok_acknowledges_up_to_its_line_number() -> None:
    core = ready_core()
    for line in job(3):
        core.send_line(line)
    assert sent(core.data_to_send(1.0))[0].startswith("N3 ")
    events = core.receive(b"ok N5 P13 B1\n", 1.1)  # the oks of N3 and N4 were lost
    assert of(events, LinesAcked) == [LinesAcked(3, 3)]
    assert core.idle()


def test_console_command_gets_its_output_and_ok() -> None:
    core = ready_core()
    core.send_line("G28")
    core.send_command("M114")
    assert sent(core.data_to_send(1.0)) == ["N3 G28", "N4 M114"]
    events = core.receive(
        b"ok N3 P15 B3\nX:0.00 Y:0.00 Z:0.00 E:0.00 Count X:0 Y:0 Z:0\nok N4 P15 B3\n", 1.1
    )
    assert of(events, LinesAcked) == [LinesAcked(1, 1)]  # commands are not job progress
    assert of(events, CommandDone) == [
        CommandDone("M114", True, ("X:0.00 Y:0.00 Z:0.00 E:0.00 Count X:0 Y:0 Z:0",))
    ]
    core.send_command("M999x")
    core.data_to_send(1.2)
    events = core.receive(b'echo:Unknown command: "M999x"\nok N5 P15 B3\n', 1.3)
    (done,) = of(events, CommandDone)
    assert isinstance(done, CommandDone) and not done.ok


def test_m105_command_is_answered_by_ok_with_temperatures() -> None:
    core = ready_core()
    core.send_command("M105")
    core.data_to_send(1.0)
    events = core.receive(b"ok T:200.00 /200.00 B:60.00 /60.00 @:64 B@:0\n", 1.1)
    assert of(events, Temperatures) == [Temperatures({"T0": (200.0, 200.0), "B": (60.0, 60.0)})]
    assert of(events, CommandDone) == [
        CommandDone("M105", True, ("T:200.00 /200.00 B:60.00 /60.00 @:64 B@:0",))
    ]


def test_temperature_reports() -> None:
    core = ready_core()
    events = core.receive(b" T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n", 1.0)
    assert events == [Temperatures({"T0": (20.0, 0.0), "B": (20.0, 0.0)})]
    multi = "T:20.0 /0.0 B:21.0 /0.0 T0:20.0 /0.0 T1:19.5 /210.0 C:30.1 /35.0 @:0 B@:0 @0:0 @1:0"
    assert parse_temperatures(multi) == {
        "B": (21.0, 0.0),
        "T0": (20.0, 0.0),
        "T1": (19.5, 210.0),
        "C": (30.1, 35.0),
    }
    assert parse_temperatures("T:25.3 E:0 W:?") == {"T0": (25.3, None)}  # M109 waiting
    assert parse_temperatures("T:20.0/210.0 B:50.0/60.0") == {
        "T0": (20.0, 210.0),
        "B": (50.0, 60.0),
    }
    assert parse_temperatures("T:2#.00 /0.00") is None


# -- resends ---------------------------------------------------------------------


def test_resend_sends_the_line_once_despite_duplicate_requests() -> None:
    core = ready_core()
    lines = [f"G1 X{i}" for i in range(6)]
    for line in lines:
        core.send_line(line)
    assert sent(core.data_to_send(1.0)) == ["N3 G1 X0", "N4 G1 X1", "N5 G1 X2", "N6 G1 X3"]
    # N4 arrives corrupted; N5 and N6 were already on the wire and are refused too.
    events = core.receive(
        b"ok N3 P15 B3\nError:checksum mismatch, Last Line: 3\nResend: 4\nok\n", 1.01
    )
    assert of(events, ResendRequested) == [ResendRequested(4)]
    assert sent(core.data_to_send(1.01)) == ["N4 G1 X1"]  # alone until it is acknowledged
    duplicate = b"Error:Line Number is not Last Line Number+1, Last Line: 3\nResend: 4\nok\n"
    events = core.receive(duplicate * 2, 1.02)
    assert events == []
    assert core.data_to_send(1.02) == b""
    core.receive(b"ok N4 P15 B3\n", 1.03)
    assert core.acked == 2
    assert sent(core.data_to_send(1.03)) == ["N5 G1 X2", "N6 G1 X3", "N7 G1 X4", "N8 G1 X5"]
    assert core.resends == 3 and core.errors == 0


def test_resend_request_forms() -> None:
    for request in (b"Resend: 4\n", b"Resend:4\n", b"rs N4\n", b"rs 4\n"):
        core = ready_core()
        core.send_line("G1 X1")
        core.send_line("G1 X2")
        core.data_to_send(1.0)
        events = core.receive(b"ok N3 P15 B3\n" + request, 1.1)
        assert of(events, ResendRequested) == [ResendRequested(4)], request
        assert sent(core.data_to_send(1.1)) == ["N4 G1 X2"]


def test_plain_ok_after_resend_is_not_an_acknowledgement() -> None:
    core = ready_core(advanced=False)
    core.send_line("G1 X1")
    core.send_line("G1 X2")
    core.data_to_send(1.0)
    events = core.receive(b"Error:checksum mismatch, Last Line: 2\nResend: 3\nok\n", 1.1)
    assert acked(events) == 0
    assert sent(core.data_to_send(1.1)) == ["N3 G1 X1"]
    # The Resend line was lost: the Error line alone is enough, its ok is still skipped.
    events = core.receive(b"Error:checksum mismatch, Last Line: 2\nok\n", 1.2)
    assert acked(events) == 0
    assert sent(core.data_to_send(1.2)) == ["N3 G1 X1"]


def test_resend_of_a_line_no_longer_in_history_is_fatal() -> None:
    core = ready_core(history_size=16)
    for i in range(40):
        core.send_line(f"G1 X{i}")
    for n in range(3, 30):
        core.data_to_send(1.0)
        core.receive(b"ok N%d P15 B3\n" % n, 1.0)
    events = core.receive(b"Error:checksum mismatch, Last Line: 4\nResend: 5\nok\n", 1.1)
    (error,) = of(events, FirmwareError)
    assert isinstance(error, FirmwareError) and error.fatal and "history" in error.message
    assert not core.ready
    assert sent(core.data_to_send(1.1)) == ["N0 M110 N0"]  # resynchronising
    assert core.queued == 0 or core.queued == 1  # the job lines were dropped


def test_garbled_resend_number_is_ignored_not_guessed() -> None:
    core = ready_core()
    core.send_line("G1 X1")
    core.data_to_send(1.0)
    events = core.receive(b"Resend: 1#\n", 1.1)
    assert of(events, UnparsedLine) == [UnparsedLine("Resend: 1#")]
    assert core.data_to_send(1.1) == b""


# -- timeouts --------------------------------------------------------------------


def test_a_long_command_waits_for_busy_keepalives_then_a_numbered_m105_probes() -> None:
    core = ready_core(response_timeout=10.0)
    core.send_line("G28")
    assert sent(core.data_to_send(1.0)) == ["N3 G28"]
    assert core.tick(10.0) == []  # homing, and no keepalive seen yet: the full timeout
    events = core.receive(b"echo:busy: processing\n", 10.5)
    assert events == [FirmwareMessage("busy", "processing")]
    core.receive(b"echo:busy: processing\n", 12.5)  # every 2 s: the keepalive interval
    assert core.tick(15.4) == []  # within 1.5 keepalive intervals + 0.5 s
    (timeout,) = core.tick(16.1)
    assert isinstance(timeout, CommunicationTimeout) and "M105" in timeout.action
    assert sent(core.data_to_send(16.1)) == ["N4 M105"]
    # G28 ran but its ok was lost: the probe is accepted and answers for it.
    events = core.receive(b"ok T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n", 16.2)
    assert of(events, LinesAcked) == [LinesAcked(1, 1)]
    assert core.idle()


def test_a_lost_ok_is_probed_after_a_multiple_of_the_observed_reply_gap() -> None:
    core = ready_core(response_timeout=10.0)
    t = 1.0
    for i in range(10):  # replies every 50 ms
        core.send_line(f"G1 X{i}")
        core.data_to_send(t)
        t += 0.05
        core.receive(b"ok N%d P10 B3\n" % (i + 3), t)
    core.send_line("G1 X99")
    assert sent(core.data_to_send(t)) == ["N13 G1 X99"]
    assert core.tick(t + 0.35) == []  # its ok is lost
    (timeout,) = core.tick(t + 0.45)  # 3 x 50 ms + 0.2 s, at least 0.4 s
    assert isinstance(timeout, CommunicationTimeout)
    assert sent(core.data_to_send(t + 0.45)) == ["N14 M105"]
    events = core.receive(b"ok T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n", t + 0.5)
    assert of(events, LinesAcked) == [LinesAcked(1, 11)]


def test_a_line_error_without_line_number_or_resend_is_probed_at_once() -> None:
    """``Error: Wrong checksum`` names no line and its ``Resend`` was lost."""
    core = ready_core(response_timeout=10.0)
    core.send_line("G1 X1")
    core.send_line("G1 X2")
    core.data_to_send(1.0)
    events = core.receive(b"ok N3 P10 B3\nError: Wrong checksum\nok\n", 1.05)
    assert of(events, LinesAcked) == [LinesAcked(1, 1)]
    assert core.tick(1.2) == []
    (timeout,) = core.tick(1.35)
    assert isinstance(timeout, CommunicationTimeout) and "without Resend" in timeout.action
    assert sent(core.data_to_send(1.35)) == ["N5 M105"]
    core.receive(
        b"Error:Line Number is not Last Line Number+1, Last Line: 3\nResend: 4\nok\n", 1.4
    )
    assert sent(core.data_to_send(1.4)) == ["N4 G1 X2"]
    core.receive(b"ok N4 P10 B3\n", 1.45)
    assert sent(core.data_to_send(1.45)) == ["N5 M105"]


def test_expected_line_errors_name_the_line_to_resend() -> None:
    core = ready_core(response_timeout=10.0)
    for i in range(3):
        core.send_line(f"G1 X{i}")
    core.data_to_send(1.0)
    events = core.receive(b"Error: expected line 4 got 5\nok\n", 1.05)
    assert of(events, ResendRequested) == [ResendRequested(4)]
    assert sent(core.data_to_send(1.05)) == ["N4 G1 X1"]


def test_probe_finds_a_lost_line() -> None:
    core = ready_core(response_timeout=1.0)
    core.send_line("G1 X1")
    core.data_to_send(1.0)  # N3 never arrives intact, and its error reply is lost too
    core.tick(2.1)
    assert sent(core.data_to_send(2.1)) == ["N4 M105"]
    events = core.receive(
        b"Error:Line Number is not Last Line Number+1, Last Line: 2\nResend: 3\nok\n", 2.2
    )
    assert of(events, ResendRequested) == [ResendRequested(3)]
    assert sent(core.data_to_send(2.2)) == ["N3 G1 X1"]
    core.receive(b"ok N3 P15 B3\n", 2.3)
    assert sent(core.data_to_send(2.3)) == ["N4 M105"]  # the probe goes again, in order
    events = core.receive(b"ok T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n", 2.4)
    assert core.idle() and core.acked == 1


def test_answer_to_a_probe_is_matched_to_the_probe() -> None:
    """A poll's ``ok T:`` was lost; the probe's must not be taken for the poll's."""
    core = ready_core(advanced=False, auto_report=False, response_timeout=0.5)
    core.tick(1.0)
    assert sent(core.data_to_send(1.0)) == ["N2 M105"]
    core.tick(1.6)
    assert sent(core.data_to_send(1.6)) == ["N3 M105"]
    core.receive(b"ok T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0\n", 1.7)
    assert core.in_flight == 0
    assert core.tick(2.5) == []


# -- errors, garbage, halts ----------------------------------------------------------


def test_non_fatal_error_is_reported_against_the_job_line() -> None:
    core = ready_core()
    for line in job(3):
        core.send_line(line)
    core.data_to_send(1.0)
    events = core.receive(b"ok N3 P15 B3\nError:Some probe failure\nok N4 P15 B3\n", 1.1)
    (error,) = of(events, FirmwareError)
    assert error == FirmwareError("Some probe failure", fatal=False, job_line=2)
    assert core.errors == 1 and core.ready


@pytest.mark.parametrize(
    "reply",
    [
        b"Error:Printer halted. kill() called!\n",
        b"!! Printer halted\n",
        b"Error:MINTEMP triggered, system stopped! Heater_ID: 0\n",
    ],
)
def test_kill_is_fatal_and_stops_sending(reply: bytes) -> None:
    core = ready_core()
    for line in job(10):
        core.send_line(line)
    core.send_command("M114")
    core.data_to_send(1.0)
    events = core.receive(reply, 1.1)
    errors = of(events, FirmwareError)
    assert len(errors) == 1 and isinstance(errors[0], FirmwareError) and errors[0].fatal
    assert of(events, CommandDone) == [CommandDone("M114", False, ())]
    assert not core.ready and core.queued == 0 and core.in_flight == 0
    assert core.data_to_send(1.2) == b""
    with pytest.raises(PrinterHalted):
        core.send_line("G1 X1")
    core.send_command("M105")  # typed on the console after the kill
    assert core.tick(1.3) == [CommandDone("M105", False, (core_halted_message(core),))]
    assert core.data_to_send(1.3) == b""


@given(st.binary(max_size=300))
@settings(max_examples=200)
def test_garbage_never_raises_and_the_core_keeps_going(noise: bytes) -> None:
    core = ready_core()
    core.send_line("G1 X1")
    core.data_to_send(1.0)
    events = core.receive(noise, 1.1)
    assert all(isinstance(e, ProtocolEvent) for e in events)
    core.tick(1.2)
    core.receive(b"\n", 1.3)  # end a partial line
    if core.ready and core.in_flight:
        events = core.receive(b"ok N3 P15 B3\n", 1.4)
        assert core.acked == 1 or of(events, FirmwareError)


def test_garbage_lines_are_reported_as_unparsed() -> None:
    core = ready_core()
    events = core.receive(b"\xff\xfe\x00ok\nok N3 P1# B3\nwat\n", 1.0)
    assert len(of(events, UnparsedLine)) == 3
    assert core.ready


def test_emergency_stop_goes_first_and_unnumbered() -> None:
    core = ready_core()
    for line in job(10):
        core.send_line(line)
    core.send_command("M114")
    core.data_to_send(1.0)
    core.emergency_stop()
    assert core.data_to_send(1.0) == b"M112\n"
    assert core.queued == 0 and core.in_flight == 0
    events = core.receive(b"Error:Printer halted. kill() called!\n", 1.1)
    assert of(events, CommandDone) == [CommandDone("M114", False, ())]
    assert core.data_to_send(1.2) == b""
    # Power cycle: the board comes back and the core runs the handshake again.
    events = core.receive(b"start\n", 5.0)
    assert of(events, FirmwareReset) == [FirmwareReset("start")]
    assert sent(core.data_to_send(5.0)) == ["N0 M110 N0"]


def test_emergency_stop_reaches_a_busy_simulated_board() -> None:
    core = MarlinProtocol()
    fw = SimulatedMarlin(time_scale=1.0)
    fw.power_on(0.0)
    link = Link(core, fw)
    link.run(["G28"], max_seconds=0.5)  # homing takes 4 s
    core.emergency_stop()
    fw.receive(core.data_to_send(0.5), 0.5)
    assert fw.halted
    assert b"Printer halted" in fw.output()


def test_discard_queued_drops_job_lines_only() -> None:
    core = ready_core()
    for line in job(10):
        core.send_line(line)
    core.send_command("M114")
    assert len(sent(core.data_to_send(1.0))) == 3  # N3-N5: ~40 bytes each
    assert core.discard_queued() == 7
    core.receive(b"ok N5 P15 B3\n", 1.1)
    assert sent(core.data_to_send(1.1)) == ["N6 M114"]


def test_board_reset_mid_job() -> None:
    core = ready_core()
    for line in job(10):
        core.send_line(line)
    core.send_command("M114")
    core.data_to_send(1.0)
    core.receive(b"ok N3 P15 B3\n", 1.1)
    events = core.receive(b"start\necho:Marlin 2.1.2\n", 1.2)
    assert of(events, FirmwareReset) == [FirmwareReset("start")]
    assert of(events, CommandDone) == [CommandDone("M114", False, ())]
    assert not core.ready and core.acked == 1
    assert sent(core.data_to_send(1.2)) == ["N0 M110 N0"]
    assert core.queued == 0  # the rest of the job is not sent to a reset board


def test_unnumbered_ok_with_advanced_ok_is_reported() -> None:
    core = ready_core()
    core.send_line("G1 X1")
    core.data_to_send(1.0)
    events = core.receive(b"ok P15 B3\n", 1.1)
    (warning,) = of(events, FirmwareError)
    assert isinstance(warning, FirmwareError) and not warning.fatal
    events = core.receive(b'echo:Unknown command: "3 G1 X1"\nok P15 B3\n', 1.2)
    assert not of(events, FirmwareError)  # a refused fragment ran nothing


# -- streaming through the simulated board -------------------------------------------


def stream(
    core: MarlinProtocol,
    fw: SimulatedMarlin,
    lines: list[str],
    faults: Faults,
    fast: bool = False,
) -> None:
    result = Link(core, fw, faults=faults, fast=fast).run(lines, max_seconds=600)
    assert result.completed, (faults, fw.executed[-5:])
    assert [x for x in fw.executed if x.startswith("G1")] == lines
    assert fw.overflows == 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(st.tuples(st.integers(0, 200_000), st.integers(0, 200_000)), max_size=60),
    corrupt=st.floats(0, 0.2),
    drop=st.floats(0, 0.1),
    garble=st.floats(0, 0.1),
    seed=st.integers(0, 2**32 - 1),
    advanced=st.booleans(),
    fast=st.booleans(),
)
def test_job_runs_exactly_once_in_order_under_faults(
    points: list[tuple[int, int]],
    corrupt: float,
    drop: float,
    garble: float,
    seed: int,
    advanced: bool,
    fast: bool,
) -> None:
    lines = [
        f"G1 X{x / 1000:.3f} Y{y / 1000:.3f} E{i / 100:.2f}" for i, (x, y) in enumerate(points)
    ]
    core = MarlinProtocol(response_timeout=0.5)
    fw = SimulatedMarlin(advanced_ok=advanced)
    stream(
        core,
        fw,
        lines,
        Faults(corrupt=corrupt, drop_reply=drop, garble_reply=garble, seed=seed),
        fast,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(0, 150),
    corrupt=st.floats(0, 0.1),
    drop_ok=st.floats(0, 0.1),
    drop_resend=st.floats(0, 1.0),
    drop_resent=st.floats(0, 0.5),
    seed=st.integers(0, 2**32 - 1),
    advanced=st.booleans(),
    last_line=st.booleans(),
    fast=st.booleans(),
)
def test_exactly_once_with_lost_oks_resends_and_resent_lines(
    count: int,
    corrupt: float,
    drop_ok: float,
    drop_resend: float,
    drop_resent: float,
    seed: int,
    advanced: bool,
    last_line: bool,
    fast: bool,
) -> None:
    """The faults that used to cost a full response timeout each: with the 10 s
    default, every line still runs once, in order, and no wait reaches it."""
    if not last_line:
        drop_resend = min(drop_resend, 0.8)  # else no reply ever names the line
    faults = Faults(
        corrupt=corrupt,
        drop_ok=drop_ok,
        drop_resend=drop_resend,
        drop_resent=drop_resent,
        seed=seed,
    )
    core = MarlinProtocol(response_timeout=10.0)
    fw = SimulatedMarlin(advanced_ok=advanced, error_last_line=last_line)
    lines = job(count, seed % 1000)
    result = Link(core, fw, faults=faults, fast=fast).run(lines, max_seconds=600)
    assert result.completed
    assert [x for x in fw.executed if x.startswith("G1")] == lines
    assert fw.overflows == 0
    waits = [e.waited for e in of(result.events, CommunicationTimeout)]
    assert all(w < 5.0 for w in waits), waits  # type: ignore[attr-defined]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    bufsize=st.sampled_from([1, 2, 4, 8]),
    rx=st.sampled_from([64, 128, 256]),
    auto_report=st.booleans(),
)
def test_slow_board_with_full_planner_never_overruns(
    seed: int, bufsize: int, rx: int, auto_report: bool
) -> None:
    """Moves take time, the planner fills, G1 blocks: the RX buffer must never overflow."""
    core = MarlinProtocol(response_timeout=0.5, rx_buffer_size=rx - 1)
    fw = SimulatedMarlin(
        bufsize=bufsize,
        rx_buffer_size=rx,
        planner_blocks=4,
        time_scale=0.002,
        auto_report=auto_report,
    )
    faults = Faults(corrupt=0.1, drop_reply=0.05, garble_reply=0.05, seed=seed)
    stream(core, fw, job(40, seed), faults)


def utilisation(advanced: bool) -> float:
    r = random.Random(7)
    lines = [
        f"G1 X{r.uniform(0, 200):.3f} Y{r.uniform(0, 200):.3f} E{r.uniform(0, 1):.5f}"
        for _ in range(2000)
    ]
    assert 36 <= sum(len(format_line(9999, x)) for x in lines) / len(lines) <= 45
    result = Link(MarlinProtocol(), SimulatedMarlin(advanced_ok=advanced), baud=115200).run(lines)
    assert result.completed
    return result.bytes_to_controller / (result.seconds * 11520)


def test_advanced_ok_keeps_the_wire_busy() -> None:
    busy = utilisation(True)
    plain = utilisation(False)
    assert busy >= 0.95, busy
    assert plain < 0.8, plain


# -- the one-per-ok fast path ----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    script=st.lists(
        st.sampled_from(["line", "command", "ok", "ok", "ok", "temperature", "tick"]),
        max_size=80,
    ),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=20),
)
def test_fast_ok_does_what_receive_and_data_to_send_do(
    script: list[str], gaps: list[float]
) -> None:
    """Two cores, one answered through ``fast_ok`` whenever it applies, the other
    always through ``receive``: same bytes on the wire, same lines acknowledged,
    same commands answered, after any mix of job lines, console commands, oks,
    temperature replies and ticks."""
    cores = [ready_core(advanced=False), ready_core(advanced=False)]
    wires: list[list[bytes]] = [[], []]
    events: list[list[ProtocolEvent]] = [[], []]
    now = 1.0
    for step, action in enumerate(script):
        now += gaps[step % len(gaps)]
        for i, core in enumerate(cores):
            match action:
                case "line":
                    core.send_line(f"G1 X{step} Y{step % 7}")
                case "command":
                    core.send_command("M114")
                case "ok":
                    wire = core.fast_ok(now) if i == 0 else None
                    if wire is None:
                        events[i] += core.receive(b"ok\n", now)
                        wire = core.data_to_send(now)
                    wires[i].append(wire)
                    continue
                case "temperature":
                    events[i] += core.receive(b"ok T:200.0 /200.0 B:60.0 /60.0\n", now)
                case "tick":
                    events[i] += core.tick(now)
            wires[i].append(core.data_to_send(now))
    for i, core in enumerate(cores):
        events[i] += core.tick(now)
    assert wires[0] == wires[1]
    assert acked(events[0]) == acked(events[1]) == cores[0].acked == cores[1].acked
    assert of(events[0], CommandDone) == of(events[1], CommandDone)
    assert [type(e) for e in events[0] if not isinstance(e, LinesAcked)] == [
        type(e) for e in events[1] if not isinstance(e, LinesAcked)
    ]
    assert cores[0].queued == cores[1].queued and cores[0].in_flight == cores[1].in_flight


def test_a_plain_job_goes_through_fast_ok_and_reports_every_line() -> None:
    core = ready_core(advanced=False)
    for line in job(20):
        core.send_line(line)
    wire = sent(core.data_to_send(1.0))
    now = 1.0
    for _ in range(19):
        now += 0.003
        out = core.fast_ok(now)
        assert out is not None
        wire += sent(out)
    now += 0.003
    events = core.receive(b"ok\n", now)
    assert [w.split(" ", 1)[1] for w in wire] == job(20)
    assert acked(events) == core.acked == 20  # the fast ones are reported, summed, first
    assert isinstance(events[0], LinesAcked) and events[0].count == 19


def test_fast_ok_steps_aside_when_anything_else_is_going_on() -> None:
    core = ready_core(advanced=True)
    core.send_line("G1 X1")
    core.data_to_send(1.0)
    assert core.fast_ok(1.1) is None  # ADVANCED_OK: acknowledgements carry numbers
    core = ready_core(advanced=False)
    assert core.fast_ok(1.0) is None  # nothing in flight
    core.send_line("G1 X1")
    core.send_line("G1 X2")
    core.data_to_send(1.0)
    core.receive(b"Resend: 3\n", 1.05)
    assert core.fast_ok(1.1) is None  # a recovery is under way


NEVER = re.compile(rb"(?!)")


@settings(max_examples=200, deadline=None)
@given(
    script=st.lists(
        st.one_of(
            st.sampled_from(["line", "line", "command", "tick", "temperature", "next"]),
            st.tuples(
                st.sampled_from(["ok N{n} P{p} B{b}", "ok N{n} P{p} B{b}\r", "Resend: {n}"]),
                st.integers(-3, 60),
                st.integers(0, 16),
                st.integers(0, 8),
            ),
        ),
        max_size=80,
    ),
)
def test_the_ok_npb_pattern_does_what_the_general_reply_path_does(
    script: list[str | tuple[str, int, int, int]],
) -> None:
    """``receive`` reads ``ok N P B`` with one pattern; the same replies through
    the general path (pattern switched off) give the same bytes and events."""
    cores = [ready_core(advanced=True), ready_core(advanced=True)]
    wires: list[list[bytes]] = [[], []]
    events: list[list[ProtocolEvent]] = [[], []]
    now = 1.0
    for step, action in enumerate(script):
        now += 0.01 * (step % 5)
        for i, core in enumerate(cores):
            with patch.object(marlin, "OK_NPB", NEVER) if i else nullcontext():
                if isinstance(action, tuple):
                    form, rel, p, b = action
                    reply = form.format(n=core.acked + rel, p=p, b=b).encode() + b"\n"
                    events[i] += core.receive(reply, now)
                elif action == "next":
                    events[i] += core.receive(f"ok N{core.acked + 3} P15 B3\n".encode(), now)
                elif action == "line":
                    core.send_line(f"G1 X{step} Y{step % 7}")
                elif action == "command":
                    core.send_command("M114")
                elif action == "temperature":
                    events[i] += core.receive(b"T:200.0 /200.0 B:60.0 /60.0\n", now)
                else:
                    events[i] += core.tick(now)
                wires[i].append(core.data_to_send(now))
    assert wires[0] == wires[1]
    assert events[0] == events[1]
    assert cores[0].acked == cores[1].acked and cores[0].planned == cores[1].planned


# -- the ADVANCED_OK fast path ---------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    script=st.lists(
        st.one_of(
            st.sampled_from(["line"] * 6 + ["command", "tick", "temperature", "busy"]),
            st.just("line"),
            st.just("line"),
            st.lists(
                st.tuples(st.integers(-2, 12), st.integers(0, 16), st.integers(0, 8)),
                min_size=1,
                max_size=3,
            ),
            # The board answering the k oldest lines it was sent, as it does.
            st.tuples(st.integers(1, 4), st.integers(0, 16), st.integers(0, 3)),
            st.tuples(st.integers(1, 4), st.integers(0, 16), st.integers(0, 3)),
        ),
        max_size=80,
    ),
    gaps=st.lists(st.sampled_from([0.0, 0.003, 0.003, 0.02, 0.4]), min_size=1, max_size=10),
    crlf=st.booleans(),
)
def test_fast_npb_does_what_receive_does(
    script: list[str | list[tuple[int, int, int]] | tuple[int, int, int]],
    gaps: list[float],
    crlf: bool,
) -> None:
    """Two cores, one given each read through ``fast_npb`` whenever it takes it, the
    other always through ``receive``: same bytes on the wire, same lines acknowledged,
    same commands answered, same other events, after any mix of job lines, console
    commands, groups of ``ok N P B`` (in order or not, too low, too high), temperature
    reports, keepalives and ticks."""
    cores = [ready_core(advanced=True), ready_core(advanced=True)]
    wires: list[list[bytes]] = [[], []]
    events: list[list[ProtocolEvent]] = [[], []]
    now = 1.0
    taken = 0
    end = b"\r\n" if crlf else b"\n"
    outstanding: list[int] = []  # numbers the board was sent, oldest first
    for step, action in enumerate(script):
        now += gaps[step % len(gaps)]
        base = cores[0].acked + 2
        data = b""
        if isinstance(action, list):
            data = b"".join(b"ok N%d P%d B%d" % (base + n, p, b) + end for n, p, b in action)
        elif isinstance(action, tuple):
            count, p, b = action
            answered, outstanding = outstanding[:count], outstanding[count:]
            data = b"".join(b"ok N%d P%d B%d" % (n, p, b) + end for n in answered)
        for i, core in enumerate(cores):
            match action:
                case list() | tuple() if data:
                    if i == 0 and core.fast_npb(data, now):
                        taken += 1
                    else:
                        events[i] += core.receive(data, now)
                case "line":
                    core.send_line(f"G1 X{step} Y{step % 7}")
                case "command":
                    core.send_command("M114")
                case "temperature":
                    events[i] += core.receive(b"T:200.0 /200.0 B:60.0 /60.0\n", now)
                case "busy":
                    events[i] += core.receive(b"echo:busy: processing\n", now)
                case list() | tuple():
                    pass  # nothing was in flight to answer
                case _:
                    events[i] += core.tick(now)
            wires[i].append(core.data_to_send(now))
        outstanding += [int(w[1:].split(" ", 1)[0]) for w in sent(wires[0][-1]) if w[:1] == "N"]
    for i, core in enumerate(cores):
        events[i] += core.tick(now)
    event(f"fast_npb took {min(taken, 3)}+ reads")
    assert wires[0] == wires[1]
    assert acked(events[0]) == acked(events[1]) == cores[0].acked == cores[1].acked
    others = [[e for e in evs if not isinstance(e, LinesAcked)] for evs in events]
    assert others[0] == others[1]
    assert cores[0].planned == cores[1].planned
    assert cores[0].queued == cores[1].queued and cores[0].in_flight == cores[1].in_flight


def test_an_advanced_ok_job_goes_through_fast_npb_and_reports_every_line() -> None:
    core = ready_core(advanced=True)
    for line in job(40):
        core.send_line(line)
    now = 1.0
    wire = sent(core.data_to_send(now))
    numbers = [int(w.split(" ", 1)[0][1:]) for w in wire]
    while numbers:
        now += 0.004
        # The board answers the two oldest lines in one read.
        answered, numbers = numbers[:2], numbers[2:]
        assert core.fast_npb(b"".join(b"ok N%d P10 B2\n" % n for n in answered), now)
        out = sent(core.data_to_send(now))
        wire += out
        numbers += [int(w.split(" ", 1)[0][1:]) for w in out]
    events = core.tick(now)
    assert [w.split(" ", 1)[1] for w in wire] == job(40)
    assert acked(events) == core.acked == 40 and isinstance(events[0], LinesAcked)


def test_fast_npb_steps_aside_when_anything_else_is_going_on() -> None:
    core = ready_core(advanced=True)
    core.send_line("G1 X1")
    core.send_command("M114")
    core.send_line("G1 X2")
    core.data_to_send(1.0)  # N3 G1 X1, N4 M114, N5 G1 X2
    assert not core.fast_npb(b"ok N3 P15 B3\nok N4 P15 B3\n", 1.01)  # a command's answer
    assert not core.fast_npb(b"ok N3 P15 B3\nok N", 1.01)  # half a reply
    assert not core.fast_npb(b"ok N3 P15 B3\nT:200.0 /200.0\n", 1.01)  # something else
    assert not core.fast_npb(b"ok N9 P15 B3\n", 1.01)  # a line never sent
    assert not core.fast_npb(b"ok N3 P15 B3\n", 1.5)  # a long wait: the general path weighs it
    assert core.fast_npb(b"ok N3 P15 B3\n", 1.01)
    assert core.acked == 1

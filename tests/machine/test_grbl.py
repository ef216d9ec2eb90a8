"""GrblProtocol: handshake, character counting, real-time commands, replies,
lost-reply recovery and garbage, fed with bytes as GRBL 1.1 prints them, and
hypothesis runs against SimulatedGrbl over the faulty in-memory Link."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.machine.grbl import GrblProtocol, LinkState
from gateway.machine.grbl_codes import alarm_message, error_message
from gateway.machine.protocol import (
    Alarm,
    CommandDone,
    CommunicationTimeout,
    ControllerReady,
    FirmwareError,
    FirmwareMessage,
    FirmwareReset,
    GrblStatus,
    LinesAcked,
    ProtocolEvent,
    UnparsedLine,
)
from gateway.machine.sim.grbl import MachineState, SimulatedGrbl
from gateway.machine.sim.link import Faults, Link

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
IDLE = b"<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0>\r\n"
REALTIME = b"?!~\x18"


def ready_core(**kwargs: Any) -> GrblProtocol:
    core = GrblProtocol(**kwargs)
    core.start(0.0)
    assert core.data_to_send(0.0) == b"\x18"
    core.receive(BANNER, 0.01)
    assert core.data_to_send(0.01) == b"?"
    events = core.receive(IDLE, 0.02)
    assert core.ready and any(isinstance(e, ControllerReady) for e in events)
    return core


def split(out: bytes) -> tuple[bytes, list[bytes]]:
    """Real-time bytes at the front of an output, then the lines (without newline)."""
    i = 0
    while i < len(out) and (out[i] in REALTIME or out[i] >= 0x80):
        i += 1
    return out[:i], out[i:].split(b"\n")[:-1]


def of(events: list[ProtocolEvent], kind: type[ProtocolEvent]) -> list[ProtocolEvent]:
    return [e for e in events if isinstance(e, kind)]


def acked(events: list[ProtocolEvent]) -> int:
    return sum(e.count for e in events if isinstance(e, LinesAcked))


# -- handshake ----------------------------------------------------------------


def test_handshake_resets_grbl_and_reports_the_version() -> None:
    core = GrblProtocol()
    core.start(0.0)
    assert core.data_to_send(0.0) == b"\x18"
    assert not core.ready
    core.receive(BANNER, 0.01)
    assert not core.ready  # the banner may be a power-on one printed before our Ctrl-X
    assert core.data_to_send(0.01) == b"?"
    events = core.receive(IDLE, 0.02)
    (ready,) = of(events, ControllerReady)
    assert ready == ControllerReady(
        "grbl",
        "Grbl 1.1h",
        {
            "banner": "Grbl 1.1h ['$' for help]",
            "state": "Idle",
            "planner_blocks": "15",
            "rx_buffer": "128",
        },
    )
    assert core.ready and core.version == "Grbl 1.1h"


def test_power_on_banner_followed_by_reset_banner_is_not_a_firmware_reset() -> None:
    core = GrblProtocol()
    core.start(0.0)
    core.data_to_send(0.0)
    events = core.receive(BANNER, 0.003)  # printed at power-on
    assert core.data_to_send(0.003) == b"?"
    events += core.receive(BANNER + IDLE, 0.006)  # our Ctrl-X, then the report to '?'
    assert not of(events, FirmwareReset)
    assert core.ready


def test_grblhal_banner_and_alarm_on_boot() -> None:
    core = GrblProtocol()
    core.start(0.0)
    core.data_to_send(0.0)
    events = core.receive(
        b"GrblHAL 1.1f ['$' or '$HELP' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\n", 0.01
    )
    assert FirmwareMessage("msg", "'$H'|'$X' to unlock") in events
    core.data_to_send(0.01)
    events = core.receive(b"<Alarm|MPos:0.000,0.000,0.000|FS:0,0>\r\n", 0.02)
    (ready,) = of(events, ControllerReady)
    assert isinstance(ready, ControllerReady)
    assert ready.version == "GrblHAL 1.1f" and ready.capabilities["state"] == "Alarm"


def test_handshake_retries_when_no_banner_arrives() -> None:
    core = GrblProtocol(handshake_timeout=2.0)
    core.start(0.0)
    core.data_to_send(0.0)
    assert core.tick(1.9) == []
    events = core.tick(2.0)
    assert of(events, CommunicationTimeout)
    assert core.data_to_send(2.0) == b"\x18"
    core.receive(BANNER, 2.1)
    assert core.link_state is LinkState.CONFIRMING


def test_handshake_polls_again_and_resets_again_if_status_never_comes() -> None:
    core = GrblProtocol(handshake_timeout=1.0, status_interval=0.2)
    core.start(0.0)
    core.data_to_send(0.0)
    core.receive(BANNER, 0.01)
    assert core.data_to_send(0.01) == b"?"  # report lost on the wire
    core.tick(0.22)
    assert core.data_to_send(0.22) == b"?"
    events = core.tick(1.02)
    assert of(events, CommunicationTimeout)
    assert core.data_to_send(1.02) == b"\x18"


def test_no_lines_are_sent_before_the_handshake_completes() -> None:
    core = GrblProtocol()
    core.send_line("G0X1")
    assert core.data_to_send(0.0) == b""
    core.start(0.0)
    assert core.data_to_send(0.0) == b"\x18"
    core.receive(BANNER, 0.01)
    assert core.data_to_send(0.01) == b"?"
    core.receive(IDLE, 0.02)
    assert core.data_to_send(0.02) == b"G0X1\n"


# -- character counting -------------------------------------------------------


def test_character_counting_follows_the_interface_doc_example() -> None:
    # interface.md: lines of 25, 40, 31, 58 and 20 characters, 128-byte buffer.
    core = ready_core(rx_buffer_size=128)
    for n in (25, 40, 31, 58, 20):
        core.send_line("G" * (n - 1))
    _, lines = split(core.data_to_send(1.0))
    assert [len(x) + 1 for x in lines] == [25, 40, 31]
    core.receive(b"ok\r\n", 1.1)  # 71 + 58 = 129: still too much
    assert core.data_to_send(1.1) == b""
    core.receive(b"ok\r\n", 1.2)
    _, lines = split(core.data_to_send(1.2))
    assert [len(x) + 1 for x in lines] == [58, 20]
    assert core.rx_used == 31 + 58 + 20


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 78), min_size=1, max_size=80),
    data=st.data(),
)
def test_bytes_in_grbl_rx_buffer_never_exceed_its_size(
    lengths: list[int], data: st.DataObject
) -> None:
    core = ready_core()
    lines = deque("G" * n for n in lengths)
    waiting: deque[int] = deque()  # lengths the core has not sent yet, in order
    flight: deque[int] = deque()
    now = 1.0
    while lines or waiting or flight:
        while lines and core.wants_lines():
            text = lines.popleft()
            core.send_line(text)
            waiting.append(len(text) + 1)
        rt, sent = split(core.data_to_send(now))
        assert set(rt) <= {ord("?")}
        for line in sent:
            assert len(line) + 1 == waiting.popleft()
            flight.append(len(line) + 1)
        assert sum(flight) == core.rx_used <= 127
        if waiting:  # the next line is sent as soon as it fits
            assert sum(flight) + waiting[0] > 127
        if flight:
            k = data.draw(st.integers(1, len(flight)))
            core.receive(b"ok\r\n" * k, now)
            for _ in range(k):
                flight.popleft()
        now += 0.01
        core.tick(now)
    assert core.acked == len(lengths) and core.idle()


def test_realtime_commands_jump_the_queue_and_are_not_counted() -> None:
    core = ready_core()
    for i in range(8):
        core.send_line(f"G1X{i}" + "0" * 36)
    _, lines = split(core.data_to_send(0.05))
    assert len(lines) == 3 and core.rx_used == 123
    core.feed_hold()
    core.feed_override("+10%")
    core.spindle_override("-1%")
    core.rapid_override("25%")
    core.cycle_start()
    assert core.data_to_send(0.06) == b"!\x91\x9d\x97~"
    assert core.rx_used == 123
    core.feed_override("100%")
    core.receive(b"ok\r\n", 0.07)
    out = core.data_to_send(0.07)
    assert out.startswith(b"\x90G1X3") and core.rx_used == 123


def test_status_is_polled_every_interval_without_counting_the_question_mark() -> None:
    core = ready_core(status_interval=0.2)
    assert core.tick(0.1) == [] and core.data_to_send(0.1) == b""
    core.tick(0.22)
    core.send_line("G0X5")
    assert core.data_to_send(0.22) == b"?G0X5\n"
    assert core.rx_used == 5
    core.status_query()
    assert core.data_to_send(0.23) == b"?"


# -- replies --------------------------------------------------------------------


def test_ok_acknowledges_lines_in_order() -> None:
    core = ready_core()
    for i in range(3):
        core.send_line(f"G1X{i}")
    core.data_to_send(0.1)
    events = core.receive(b"ok\r\nok\r\n", 0.2)
    assert events == [LinesAcked(2, 2)]
    assert core.receive(b"o", 0.3) == []  # a partial line waits for its newline
    assert core.receive(b"k\r\n", 0.3) == [LinesAcked(1, 3)]
    assert core.idle()


def test_error_reply_names_the_job_line_and_the_job_goes_on() -> None:
    core = ready_core()
    for text in ("G1X1F100", "G5X1", "G1X2"):
        core.send_line(text)
    core.data_to_send(0.1)
    events = core.receive(b"ok\r\nerror:20\r\nok\r\n", 0.2)
    (error,) = of(events, FirmwareError)
    assert isinstance(error, FirmwareError)
    assert error.code == 20 and error.job_line == 2 and not error.fatal
    assert "Unsupported" in error.message and "G5X1" in error.message
    assert acked(events) == 3 and core.errors == 1 and core.idle()


def test_alarm_is_reported_with_its_meaning() -> None:
    core = ready_core()
    events = core.receive(b"ALARM:1\r\n[MSG:Reset to continue]\r\nALARM:#\r\n", 0.5)
    assert events[:2] == [
        Alarm(1, "Hard limit triggered: position likely lost, re-home the machine"),
        FirmwareMessage("msg", "Reset to continue"),
    ]
    assert isinstance(events[2], Alarm) and "unreadable" in events[2].message


def test_commands_collect_what_grbl_prints_before_their_ok() -> None:
    core = ready_core()
    core.send_line("G0X1")
    core.send_command("$$")
    core.send_command("$I")
    core.send_command("$G")
    core.send_command("$Z")
    out = core.data_to_send(0.1)
    assert out == b"G0X1\n$$\n$I\n$G\n$Z\n"
    events = core.receive(
        b"ok\r\n$0=10\r\n$1=25\r\n$10=3\r\nok\r\n[VER:1.1h.20190830:]\r\n[OPT:V,15,128]\r\nok\r\n"
        b"[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\nerror:2\r\n",
        0.2,
    )
    assert events[0] == LinesAcked(1, 1)
    assert events[1:] == [
        CommandDone("$$", True, ("$0=10", "$1=25", "$10=3")),
        CommandDone("$I", True, ("VER:1.1h.20190830:", "OPT:V,15,128")),
        CommandDone("$G", True, ("GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0",)),
        CommandDone("$Z", False, (f"error:2 {error_message(2)}",)),
    ]
    assert core.acked == 1  # commands are not job progress


def test_unlock_message_is_both_reported_and_collected() -> None:
    core = ready_core()
    core.send_command("$X")
    core.data_to_send(0.1)
    events = core.receive(b"[MSG:Caution: Unlocked]\r\nok\r\n", 0.2)
    assert events == [
        FirmwareMessage("msg", "Caution: Unlocked"),
        CommandDone("$X", True, ("Caution: Unlocked",)),
    ]


def test_push_messages_outside_commands() -> None:
    core = ready_core()
    events = core.receive(
        b"[MSG:Pgm End]\r\n[GC:G0 G54]\r\n[echo:G1X0.540Y10.4F100]\r\n[PRB:0.000,0.000,1.492:1]\r\n"
        b">G54G20:ok\r\n>G21G5:error:20\r\n$N0=G54\r\n",
        0.5,
    )
    assert events[:5] == [
        FirmwareMessage("msg", "Pgm End"),
        FirmwareMessage("feedback", "GC:G0 G54"),
        FirmwareMessage("feedback", "echo:G1X0.540Y10.4F100"),
        FirmwareMessage("feedback", "PRB:0.000,0.000,1.492:1"),
        FirmwareMessage("info", "startup line ran: G54G20"),
    ]
    assert isinstance(events[5], FirmwareError) and events[5].code == 20
    assert events[6] == FirmwareMessage("feedback", "$N0=G54")
    assert core.acked == 0  # ">...:ok" is not an ok for a streamed line


def test_status_reports_keep_the_last_work_offset_and_overrides() -> None:
    core = ready_core()
    (first,) = core.receive(b"<Run|MPos:10.000,5.000,1.000|FS:500,0|WCO:2.000,1.000,0.500>\r\n", 1)
    core.receive(b"<Run|MPos:10.000,5.000,1.000|FS:500,0|Ov:120,100,80>\r\n", 1.2)
    third = core.receive(b"<Hold:0|MPos:12.000,5.000,1.000|FS:0,0>\r\n", 1.4)[0]
    assert isinstance(first, GrblStatus) and isinstance(third, GrblStatus)
    assert first.wpos == (8.0, 4.0, 0.5)
    assert third.wco == (2.0, 1.0, 0.5) and third.wpos == (10.0, 4.0, 0.5)
    assert third.overrides == (120, 100, 80) and third.state == "Hold" and third.substate == 0
    (wpos_only,) = core.receive(b"<Idle|WPos:1.000,1.000,1.000|FS:0,0>\r\n", 1.6)
    assert isinstance(wpos_only, GrblStatus) and wpos_only.mpos == (3.0, 2.0, 1.5)
    assert core.last_status == wpos_only


# -- lines the core refuses -----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("G1X1 (what?)", None),  # '?' would trigger a status report
        ("M117 Done!", None),  # '!' would feed-hold the machine
        ("G1X1\nG1X2", None),
        ("G1 X1 ; café", None),  # bytes >= 0x80 are override commands
        ("G1X" + "1" * 78, 11),  # 81 characters: GRBL's line buffer holds 79
        ("G1 X1" + " " * 125, None),  # short for GRBL but does not fit the RX buffer
    ],
)
def test_lines_grbl_would_misread_are_refused_not_sent(line: str, code: int | None) -> None:
    core = ready_core()
    core.send_line(line)
    core.send_line("G0X0")
    assert core.data_to_send(0.1) == b"G0X0\n"
    events = core.tick(0.1)
    (error,) = of(events, FirmwareError)
    assert isinstance(error, FirmwareError)
    assert error.job_line == 1 and error.code == code and "not sent" in error.message
    assert core.acked == 1 and core.errors == 1


def test_long_lines_with_blanks_are_sent_when_grbl_can_hold_them() -> None:
    core = ready_core()
    line = "G1 " + " X1.000 " * 10  # 83 characters, 43 after GRBL drops blanks
    core.send_line(line)
    assert core.data_to_send(0.1) == line.encode() + b"\n"


def test_refused_command_is_answered_at_once() -> None:
    core = ready_core()
    core.send_command("?")
    assert core.tick(0.1) == [
        CommandDone("?", False, ("not sent: the command contains ? ! ~ or a line break, "
                                 "which GRBL acts on as real-time commands",))
    ]  # fmt: skip


def test_eeprom_writes_are_sent_alone() -> None:
    core = ready_core()
    core.send_line("G1X1F100")
    core.send_command("$10=3")
    core.send_line("G10 L20 P1 X0")
    core.send_line("G1X2")
    core.send_command("$J=G91X1F100")  # a jog is not an EEPROM write
    assert core.data_to_send(0.1) == b"G1X1F100\n"
    core.receive(b"ok\r\n", 0.2)
    assert core.data_to_send(0.2) == b"$10=3\n"
    core.receive(b"ok\r\n", 0.3)
    assert core.data_to_send(0.3) == b"G10 L20 P1 X0\n"
    assert core.data_to_send(0.31) == b""
    core.receive(b"ok\r\n", 0.4)
    assert core.data_to_send(0.4) == b"G1X2\n$J=G91X1F100\n"


# -- emergency stop and resets --------------------------------------------------


def test_emergency_stop_resets_first_and_drops_everything() -> None:
    core = ready_core()
    for i in range(10):
        core.send_line(f"G1X{i}" + "0" * 30)
    core.data_to_send(0.1)
    core.send_command("$G")
    core.feed_override("+10%")
    core.emergency_stop()
    assert core.data_to_send(0.11) == b"\x18"
    assert core.queued == 0 and core.in_flight == 0 and core.rx_used == 0 and core.idle()
    assert not core.ready
    events = core.tick(0.11)
    assert events == [CommandDone("$G", False, ("emergency stop: GRBL was reset",))]
    # GRBL still prints oks for lines it took before the reset, then ALARM:3.
    events = core.receive(
        b"ok\r\nok\r\nALARM:3\r\n" + BANNER + b"[MSG:'$H'|'$X' to unlock]\r\n", 0.12
    )
    assert acked(events) == 0 and not of(events, FirmwareReset)
    assert of(events, Alarm) == [Alarm(3, alarm_message(3))]
    assert FirmwareMessage("msg", "'$H'|'$X' to unlock") in events
    assert core.data_to_send(0.12) == b"?"
    events = core.receive(b"<Alarm|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0>\r\n", 0.13)
    assert of(events, ControllerReady) and core.ready


def test_unexpected_banner_is_a_firmware_reset_that_ends_the_job() -> None:
    core = ready_core()
    for i in range(6):
        core.send_line(f"G1X{i}" + "0" * 30)
    core.send_command("$G")
    core.data_to_send(0.1)
    events = core.receive(b"ok\r\n" + BANNER, 0.2)
    assert acked(events) == 1
    (reset,) = of(events, FirmwareReset)
    assert reset == FirmwareReset("Grbl 1.1h ['$' for help]")
    assert core.in_flight == 0 and core.queued == 1 and core.ready  # only the command stays
    assert core.discard_queued() == 0


def test_leaving_check_mode_resets_grbl_without_ending_anything() -> None:
    core = ready_core()
    core.send_command("$C")
    core.data_to_send(0.1)
    events = core.receive(b"[MSG:Disabled]\r\nok\r\n" + BANNER, 0.2)
    assert not of(events, FirmwareReset)
    assert CommandDone("$C", True, ("Disabled",)) in events


def test_discard_queued_keeps_commands_and_lines_in_flight() -> None:
    core = ready_core()
    for i in range(10):
        core.send_line(f"G1X{i}" + "0" * 30)
    core.data_to_send(0.1)
    core.send_command("$X")
    assert core.discard_queued() == 7
    assert core.in_flight == 3 and core.queued == 1


# -- lost replies ---------------------------------------------------------------


def lines_in_flight(core: GrblProtocol, count: int, now: float) -> None:
    for i in range(count):
        core.send_line(f"G1X{i}Y{i}")
    core.data_to_send(now)


def report(core: GrblProtocol, now: float, line: bytes = IDLE) -> list[ProtocolEvent]:
    core.tick(now)
    core.status_query()
    assert core.data_to_send(now).startswith(b"?")
    return core.receive(line, now + 0.005)


def test_lost_oks_are_reconciled_when_grbl_shows_empty_buffers() -> None:
    core = ready_core()
    lines_in_flight(core, 3, 0.05)  # all three oks are lost
    events = report(core, 0.3)
    assert not of(events, CommunicationTimeout) and core.in_flight == 3
    events = report(core, 0.5)
    assert acked(events) == 3
    (timeout,) = of(events, CommunicationTimeout)
    assert isinstance(timeout, CommunicationTimeout) and "3 line(s)" in timeout.action
    assert core.idle() and core.rx_used == 0


@pytest.mark.parametrize(
    "status",
    [
        b"<Run|MPos:0,0,0|Bf:15,128|FS:0,0>\r\n",
        b"<Hold:0|MPos:0,0,0|Bf:15,128|FS:0,0>\r\n",
        b"<Idle|MPos:0,0,0|Bf:15,100|FS:0,0>\r\n",  # RX buffer not empty
        b"<Idle|MPos:0,0,0|Bf:3,128|FS:0,0>\r\n",  # planner still has blocks
    ],
)
def test_no_reconciliation_unless_idle_with_empty_buffers(status: bytes) -> None:
    core = ready_core()
    lines_in_flight(core, 2, 0.05)
    for t in (0.3, 0.5, 0.7, 5.0):
        assert not of(report(core, t, status), CommunicationTimeout)
    assert core.in_flight == 2


def test_an_ok_between_reports_restarts_the_proof() -> None:
    core = ready_core()
    lines_in_flight(core, 3, 0.05)
    report(core, 0.3)
    core.receive(b"ok\r\n", 0.4)  # a late ok: GRBL was still answering
    assert not of(report(core, 0.5), CommunicationTimeout)
    events = report(core, 0.7)
    assert acked(events) == 2 and core.idle()


def test_lines_written_after_the_status_query_are_not_reconciled() -> None:
    core = ready_core()
    lines_in_flight(core, 2, 0.05)
    core.tick(0.3)
    core.send_line("G1X9")
    assert core.data_to_send(0.3) == b"?G1X9\n"  # the query went out before G1X9
    core.receive(IDLE, 0.31)
    events = report(core, 0.5)
    assert acked(events) == 2 and core.in_flight == 1


def test_a_dwell_in_flight_delays_reconciliation_beyond_its_duration() -> None:
    core = ready_core()
    core.send_line("G4 P5")
    core.data_to_send(0.05)
    report(core, 0.3)
    for t in (0.5, 2.0, 5.0, 6.2):
        assert not of(report(core, t), CommunicationTimeout)
    assert acked(report(core, 6.4)) == 1


def test_without_buffer_state_idle_must_last_the_response_timeout() -> None:
    core = ready_core(response_timeout=2.0)
    lines_in_flight(core, 2, 0.05)
    plain = b"<Idle|MPos:0.000,0.000,0.000|FS:0,0>\r\n"
    report(core, 0.3, plain)
    for t in (0.5, 1.0, 2.2):
        assert not of(report(core, t, plain), CommunicationTimeout)
    events = report(core, 2.4, plain)
    assert acked(events) == 2 and of(events, CommunicationTimeout)


def test_silence_with_lines_in_flight_is_reported_once() -> None:
    core = ready_core(response_timeout=3.0)
    lines_in_flight(core, 1, 1.0)
    assert not of(core.tick(3.9), CommunicationTimeout)
    (timeout,) = of(core.tick(4.0), CommunicationTimeout)
    assert isinstance(timeout, CommunicationTimeout) and timeout.waited == pytest.approx(3.0)
    assert not of(core.tick(5.0), CommunicationTimeout)
    assert core.in_flight == 1  # silence alone proves nothing


def test_ok_with_nothing_in_flight_is_reported_not_counted() -> None:
    core = ready_core()
    assert of(core.receive(b"ok\r\n", 0.1), UnparsedLine)
    assert core.acked == 0


# -- garbage --------------------------------------------------------------------


def test_garbage_lines_are_reported_not_raised() -> None:
    core = ready_core()
    core.send_line("G0X1")
    core.data_to_send(0.1)
    events = core.receive(b"o#\r\n\xff\xfe\x00junk\r\nerr\x00r:2\r\n\x00\r\nZZZ\r\n", 0.2)
    assert [type(e) for e in events] == [UnparsedLine] * 5
    assert core.in_flight == 1
    events = core.receive(b"error:x\r\n", 0.3)  # an unreadable code is still a reply
    assert isinstance(events[0], FirmwareError) and events[0].code is None
    assert core.in_flight == 0


def test_endless_line_without_newline_is_dropped() -> None:
    core = ready_core()
    events = core.receive(b"x" * 5000, 0.1)
    assert of(events, UnparsedLine)
    assert core.receive(b"ok\r\n", 0.2) == [UnparsedLine("ok (no line was waiting for it)")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    core = ready_core()
    lines_in_flight(core, 3, 0.05)
    now = 0.1
    for chunk in chunks:
        for event in core.receive(chunk, now) + core.tick(now):
            assert isinstance(event, ProtocolEvent)
        core.data_to_send(now)
        now += 0.05
    assert 0 <= core.rx_used <= 127


# -- against the simulated controller, wired directly ---------------------------


def pump(core: GrblProtocol, fw: SimulatedGrbl, start: float, until: float) -> list[ProtocolEvent]:
    """Run core and firmware back to back (no wire delay) every 10 ms of ``[start, until]``."""
    events: list[ProtocolEvent] = []
    now = start
    while now <= until + 1e-9:
        for _ in range(50):
            out = core.data_to_send(now)
            if out:
                fw.receive(out, now)
            fw.tick(now)
            back = fw.output()
            if back:
                events += core.receive(back, now)
            events += core.tick(now)
            if not out and not back:
                break
        now += 0.01
    return events


def connected(time_scale: float) -> tuple[GrblProtocol, SimulatedGrbl]:
    core, fw = GrblProtocol(), SimulatedGrbl(time_scale=time_scale)
    fw.power_on(0.0)
    core.start(0.0)
    pump(core, fw, 0.0, 0.1)
    assert core.ready
    return core, fw


def test_feed_hold_stops_the_stream_and_cycle_start_finishes_the_job() -> None:
    core, fw = connected(time_scale=1.0)
    lines = ["G1F600"] + [f"G1X{i}" for i in range(1, 41)]  # 0.1 s per move
    for line in lines:
        core.send_line(line)
    pump(core, fw, 0.1, 1.0)
    core.feed_hold()
    events = pump(core, fw, 1.0, 30.0)  # a long pause
    assert fw.state is MachineState.HOLD
    during = fw.executed[:]
    assert acked(events) <= 1 and not of(events, CommunicationTimeout)
    held = [e for e in events if isinstance(e, GrblStatus)][-1]
    assert held.state == "Hold" and held.substate == 0
    core.cycle_start()
    pump(core, fw, 30.0, 40.0)
    assert fw.executed == lines and len(during) < len(lines)
    assert core.idle() and core.acked == len(lines)


def test_emergency_stop_mid_job_resets_grbl_and_reconnects() -> None:
    core, fw = connected(time_scale=1.0)
    for i in range(1, 41):
        core.send_line(f"G1X{i * 10}F600")  # 1 s per move
    pump(core, fw, 0.1, 2.0)
    core.emergency_stop()
    events = pump(core, fw, 2.0, 2.5)
    assert Alarm(3, alarm_message(3)) in events  # reset while moving
    assert of(events, ControllerReady) and core.ready and core.idle()
    assert not of(events, FirmwareReset)
    assert len(fw.executed) < 40 and fw.state is MachineState.ALARM
    core.send_command("$X")
    events = pump(core, fw, 2.5, 3.0)
    assert CommandDone("$X", True, ("Caution: Unlocked",)) in events


# -- against the simulated controller over a faulty line ----------------------


@st.composite
def jobs(draw: st.DrawFn) -> list[str]:
    """G1 moves with distinct X, each line from short to 79 characters."""
    count = draw(st.integers(1, 60))
    lines = ["G21G90G1F3000"]
    for i in range(count):
        head = f"G1X{i}Y"
        length = draw(st.integers(len(head) + 1, 79))
        digits = length - len(head)
        lines.append(head + ("7" if digits == 1 else "1." + "5" * (digits - 2)))
    return lines


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=jobs(),
    drop=st.floats(0.0, 0.1),
    garble=st.floats(0.0, 0.1),
    seed=st.integers(0, 2**31),
)
def test_every_line_runs_once_in_order_despite_lost_and_garbled_replies(
    lines: list[str], drop: float, garble: float, seed: int
) -> None:
    fw = SimulatedGrbl()
    core = GrblProtocol()
    faults = Faults(drop_reply=drop, garble_reply=garble, seed=seed)
    result = Link(core, fw, faults=faults).run(lines, max_seconds=120)
    assert result.completed
    assert fw.executed == lines
    assert fw.overflows == 0
    assert core.acked == len(lines) and core.errors == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lost_replies_without_buffer_state_recover_after_the_timeout(seed: int) -> None:
    lines = ["G21G90G1F3000"] + [f"G1X{i}Y{i % 17}.25" for i in range(150)]
    fw = SimulatedGrbl(report_buffer_state=False)
    core = GrblProtocol(response_timeout=1.0)
    result = Link(core, fw, faults=Faults(drop_reply=0.05, seed=seed)).run(lines, max_seconds=300)
    assert result.completed and fw.executed == lines and fw.overflows == 0
    assert of(result.events, CommunicationTimeout)


def test_character_counting_keeps_the_wire_busy() -> None:
    lines = ["G21G90G1F6000"] + [f"G1X{i * 0.01:.2f}Y{(i % 50) * 0.02:.2f}" for i in range(2000)]
    fw = SimulatedGrbl()
    result = Link(GrblProtocol(), fw, baud=115200).run(lines)
    assert result.completed and fw.executed == lines and fw.overflows == 0
    utilisation = result.bytes_to_controller / (result.seconds * 11520)
    assert utilisation >= 0.95, utilisation

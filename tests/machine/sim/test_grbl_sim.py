"""SimulatedGrbl behaves like GRBL 1.1 where a host can notice: banner, RX buffer,
real-time bytes, planner back-pressure, holds, resets, '$' commands and errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.machine.grbl_codes import parse_status_report
from gateway.machine.protocol import GrblStatus
from gateway.machine.sim.grbl import SimulatedGrbl

BANNER = "Grbl 1.1h ['$' for help]"


def boot(**kwargs: Any) -> SimulatedGrbl:
    fw = SimulatedGrbl(**kwargs)
    fw.power_on(0.0)
    fw.output()
    return fw


def send(fw: SimulatedGrbl, data: bytes | str, now: float = 0.0) -> list[str]:
    """Bytes to GRBL; the non-empty lines it prints back."""
    fw.receive(data.encode() if isinstance(data, str) else data, now)
    fw.tick(now)
    return [line for line in fw.output().decode("latin-1").split("\r\n") if line]


def status(fw: SimulatedGrbl, now: float = 0.0) -> GrblStatus:
    (line,) = [x for x in send(fw, b"?", now) if x.startswith("<")]
    parsed = parse_status_report(line)
    assert parsed is not None, line
    return parsed


def test_power_on_prints_the_banner_with_crlf() -> None:
    fw = SimulatedGrbl()
    fw.power_on(0.0)
    assert fw.output() == b"\r\nGrbl 1.1h ['$' for help]\r\n"


def test_alarm_on_boot_locks_gcode_until_unlocked_or_homed() -> None:
    fw = SimulatedGrbl(alarm_on_boot=True)
    fw.power_on(0.0)
    assert fw.output().split(b"\r\n")[1:3] == [BANNER.encode(), b"[MSG:'$H'|'$X' to unlock]"]
    assert send(fw, "G0X1\n") == ["error:9"]
    assert status(fw).state == "Alarm"
    assert send(fw, "$X\n") == ["[MSG:Caution: Unlocked]", "ok"]
    assert send(fw, "G0X1\n") == ["ok"]
    fw = boot(alarm_on_boot=True)
    assert send(fw, "$H\n") == ["ok"]
    assert status(fw).state == "Idle" and fw.executed == ["$H"]


def test_status_report_fields_and_refresh_counters() -> None:
    fw = boot()
    first, second, third = status(fw), status(fw), status(fw)
    assert first == GrblStatus(
        "Idle", mpos=(0, 0, 0), feed=0, spindle=0, planner_free=15, rx_free=128, wco=(0, 0, 0)
    )
    assert second.overrides == (100, 100, 100) and second.wco is None
    assert third.wco is None and third.overrides is None  # WCO/Ov only now and then
    assert send(fw, "$10=0\n") == ["ok"]  # WPos, no buffer state
    (line,) = send(fw, b"?")
    assert line.startswith("<Idle|WPos:0.000,0.000,0.000|FS:0,0")


def test_realtime_bytes_are_picked_out_of_the_stream() -> None:
    fw = boot()
    out = send(fw, b"G1X1?F1\x91000\n")
    assert out[0].startswith("<Idle|") and out[1] == "ok"
    assert fw.executed == ["G1X1F1000"] and fw.realtime == [0x3F, 0x91]
    assert status(fw).overrides == (110, 100, 100)


def test_bytes_beyond_the_rx_buffer_are_lost_and_counted() -> None:
    fw = boot(time_scale=1.0, planner_blocks=2)
    moves = b"".join(b"G1X%dF60\n" % (i * 100) for i in range(1, 4))  # 100 s each
    assert send(fw, moves) == ["ok", "ok"]  # the third waits for a planner block
    assert fw.overflows == 0
    blob = b"G1X1F60" + b"0" * 150 + b"\n"
    send(fw, blob)
    assert fw.overflows == len(blob) - 128
    assert status(fw).rx_free == 0


def test_ok_comes_when_a_line_is_planned_and_lines_wait_in_rx_meanwhile() -> None:
    fw = boot(time_scale=1.0, planner_blocks=2)
    assert send(fw, "G1X1F60\nG1X2\nG1X3\nG1X4\n") == ["ok", "ok"]  # 1 s per mm
    s = status(fw)
    assert s.state == "Run" and s.planner_free == 0 and s.rx_free == 128 - len("G1X4\n")
    assert fw.next_wakeup() == pytest.approx(1.0)
    assert send(fw, b"", 1.0) == ["ok"]
    assert send(fw, b"", 2.0) == ["ok"]
    assert fw.executed == ["G1X1F60", "G1X2", "G1X3", "G1X4"]
    assert send(fw, b"", 4.0) == [] and status(fw, 4.0).state == "Idle"
    assert status(fw, 4.0).mpos == (4.0, 0.0, 0.0)


def test_feed_hold_pauses_motion_and_reading_until_cycle_start() -> None:
    fw = boot(time_scale=1.0)
    send(fw, "G1X10F60\n")  # 10 s
    s = status(fw, 2.0)
    assert s.state == "Run" and s.mpos == pytest.approx((2.0, 0.0, 0.0))
    send(fw, b"!", 2.0)
    assert send(fw, "G1X20\n", 3.0) == []  # GRBL reads nothing while held
    held = status(fw, 30.0)
    assert held.state == "Hold" and held.substate == 0
    assert held.mpos == pytest.approx((2.0, 0.0, 0.0))
    assert fw.next_wakeup() is None
    assert send(fw, b"~", 30.0) == ["ok"]
    assert status(fw, 38.0).mpos == pytest.approx((10.0, 0.0, 0.0))
    assert status(fw, 48.0).state == "Idle"


def test_soft_reset_during_motion_raises_alarm_3() -> None:
    fw = boot(time_scale=1.0)
    send(fw, "G1X10F60\n")
    out = send(fw, b"\x18G1X5\n", 1.0)
    assert out == ["ALARM:3", BANNER, "[MSG:'$H'|'$X' to unlock]", "error:9"]
    assert status(fw, 5.0).state == "Alarm"


def test_soft_reset_in_a_completed_hold_flushes_buffers_and_keeps_position() -> None:
    fw = boot(time_scale=1.0)
    send(fw, "G1X10F60\n")
    send(fw, b"!", 3.0)
    assert send(fw, "G1X20\n", 3.5) == []  # waits in the RX buffer during the hold
    assert send(fw, b"\x18", 4.0) == [BANNER]
    s = status(fw, 50.0)
    assert s.state == "Idle" and s.mpos == pytest.approx((3.0, 0.0, 0.0))
    assert s.rx_free == 128 and s.planner_free == 15 and fw.executed == ["G1X10F60"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("1G0", 1),  # a word without a letter
        ("G1X", 2),
        ("G1X1.2.3F100", 1),
        ("G1X-F100", 2),
        ("$Z", 2),
        ("$$$", 3),
        ("$999=1", 3),
        ("$100=-1", 4),
        ("$H", 5),  # homing disabled ($22=0)
        ("$0=2", 6),
        ("G1X" + "1" * 80, 11),  # longer than GRBL's 79-character line buffer
        ("G5X1", 20),
        ("M7", 20),
        ("A1", 20),
        ("G17G18", 21),
        ("G0G1X1", 24),  # gcode.c checks the axis command conflict first
        ("G1X1", 22),  # no feed rate yet
        ("G59.1", 23),
        ("G28G1X1F100", 24),
        ("G0X1X2", 25),
        ("G92", 26),
        ("N10000000G0X1", 27),
        ("G4", 28),
        ("G10L2X1", 28),
        ("G53G2X1Y1R5F100", 30),
        ("G80X1", 31),
        ("G2X10I20F100", 33),
        ("G2X10F100", 35),
        ("G0X1P5", 36),
        ("T300", 38),
        ("G1X1F-5", 4),
    ],
)
def test_parse_errors_use_grbl_codes(line: str, code: int) -> None:
    fw = boot()
    assert send(fw, line + "\n") == [f"error:{code}"]
    assert fw.executed == []


@pytest.mark.parametrize(
    "line",
    [
        "G21 G90 G1 X10.5 Y-3 F1500 S1000 M3",
        "g1x1f100 (lower case, with a comment)",
        "G2X10Y0I5J0F100",
        "G3X10Y0R-5F100",
        "G91G0X1Y1Z1",
        "G10L20P1X0Y0",
        "G92X0Y0",
        "G4P0.5",
        "G28",
        "G54G17G40G49G94G61",
        "M5M9",
        "",
        "; a comment only",
    ],
)
def test_valid_lines_are_answered_ok(line: str) -> None:
    fw = boot()
    assert send(fw, line + "\n") == ["ok"]


def test_each_end_of_line_character_ends_a_line() -> None:
    fw = boot()
    assert send(fw, "G0X1\r\n") == ["ok", "ok"]  # why hosts must send '\n' alone


def test_gcode_is_locked_while_jogging_and_a_hold_cancels_the_jog() -> None:
    fw = boot(time_scale=1.0)
    assert send(fw, "$J=G91X10F60\n") == ["ok"]
    assert status(fw, 1.0).state == "Jog"
    assert send(fw, "G0X0\n", 1.0) == ["error:9"]
    send(fw, b"!", 2.0)
    s = status(fw, 2.5)
    assert s.state == "Idle" and s.mpos == pytest.approx((2.0, 0.0, 0.0))
    assert send(fw, "$J=G1X1F100\n") == ["error:16"]


def test_system_commands_print_what_grbl_prints() -> None:
    fw = boot()
    settings = send(fw, "$$\n")
    assert settings[0] == "$0=10" and "$10=3" in settings and "$11=0.010" in settings
    assert settings[-1] == "ok"
    assert send(fw, "$I\n") == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    assert send(fw, "$G\n") == ["[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "ok"]
    params = send(fw, "$#\n")
    assert params[0] == "[G54:0.000,0.000,0.000]" and params[-2] == "[PRB:0.000,0.000,0.000:0]"
    assert send(fw, "$\n")[0].startswith("[HLP:$$")
    assert send(fw, "$N0=G20 G54\n") == ["ok"]
    assert send(fw, "$N\n") == ["$N0=G20G54", "$N1=", "ok"]
    assert send(fw, b"\x18") == [BANNER, ">G20G54:ok"]
    assert send(fw, "$G\n")[0].startswith("[GC:G0 G54 G17 G20")


def test_settings_commands_need_an_idle_machine() -> None:
    fw = boot(time_scale=1.0)
    send(fw, "G1X10F60\n")
    assert send(fw, "$$\n") == ["error:8"]
    assert send(fw, "$G\n") == ["[GC:G1 G54 G17 G21 G90 G94 M5 M9 T0 F60 S0]", "ok"]


def test_check_mode_answers_without_moving_and_resets_on_exit() -> None:
    fw = boot(time_scale=1.0)
    assert send(fw, "$C\n") == ["[MSG:Enabled]", "ok"]
    assert send(fw, "G1X100F10\n") == ["ok"]
    assert status(fw).state == "Check" and fw.executed == []
    assert send(fw, "$C\n") == ["[MSG:Disabled]", "ok", BANNER]
    assert status(fw).state == "Idle"


def test_dwell_and_program_pause_hold_their_ok() -> None:
    fw = boot(time_scale=1.0)
    assert send(fw, "G4P2\n") == []
    assert fw.next_wakeup() == pytest.approx(2.0)
    assert send(fw, b"", 2.0) == ["ok"]
    assert send(fw, "M0\n", 3.0) == []
    assert status(fw, 9.0).state == "Hold"
    assert send(fw, b"~", 9.0) == ["ok"]
    assert send(fw, "M2\n", 9.0) == ["[MSG:Pgm End]", "ok"]


def test_line_numbers_and_overrides_show_in_reports_and_timing() -> None:
    fw = boot(time_scale=1.0)
    send(fw, "N42G1X10F60\n")  # 10 s at 100 %
    send(fw, b"\x91" * 10)  # +100 %: twice as fast
    s = status(fw, 1.0)
    assert s.line_number == 42 and s.feed == 120
    assert status(fw, 5.0).mpos == pytest.approx((10.0, 0.0, 0.0))

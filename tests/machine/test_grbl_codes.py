"""GRBL 1.1 vocabulary: code tables, real-time bytes, banner and status report parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.machine.grbl_codes import (
    ALARMS,
    ERRORS,
    FEED_OVERRIDES,
    RAPID_OVERRIDES,
    SPINDLE_OVERRIDES,
    Realtime,
    alarm_message,
    error_message,
    parse_banner,
    parse_status_report,
)
from gateway.machine.protocol import GrblStatus


def test_every_grbl_1_1_error_and_alarm_code_has_a_meaning() -> None:
    assert set(ERRORS) == set(range(1, 18)) | set(range(20, 39))
    assert set(ALARMS) == set(range(1, 11))
    assert all(len(meaning) > 10 for meaning in (*ERRORS.values(), *ALARMS.values()))


@pytest.mark.parametrize(
    ("code", "words"),
    [(1, "letter"), (2, "number"), (9, "$X"), (11, "80"), (20, "Unsupported"), (22, "Feed")],
)
def test_error_meanings_say_what_went_wrong(code: int, words: str) -> None:
    assert words in error_message(code)


def test_unknown_and_unreadable_codes_are_still_explained() -> None:
    assert "Unknown error 79" in error_message(79)  # grblHAL extension
    assert "unreadable" in error_message(None)
    assert "Hard limit" in alarm_message(1)
    assert "Unknown alarm 17" in alarm_message(17)
    assert "unreadable" in alarm_message(None)


def test_realtime_bytes_match_the_grbl_1_1_command_table() -> None:
    typed = (Realtime.SOFT_RESET, Realtime.STATUS_REPORT, Realtime.FEED_HOLD, Realtime.CYCLE_START)
    assert bytes(typed) == b"\x18?!~"
    assert [FEED_OVERRIDES[k] for k in ("100%", "+10%", "-10%", "+1%", "-1%")] == list(
        range(0x90, 0x95)
    )
    assert [RAPID_OVERRIDES[k] for k in ("100%", "50%", "25%")] == [0x95, 0x96, 0x97]
    assert [SPINDLE_OVERRIDES[k] for k in ("100%", "+10%", "-10%", "+1%", "-1%")] == list(
        range(0x99, 0x9E)
    )
    assert (Realtime.SPINDLE_STOP, Realtime.FLOOD_TOGGLE, Realtime.MIST_TOGGLE) == (
        0x9E,
        0xA0,
        0xA1,
    )
    assert (Realtime.SAFETY_DOOR, Realtime.JOG_CANCEL) == (0x84, 0x85)


@pytest.mark.parametrize(
    ("line", "version"),
    [
        ("Grbl 1.1h ['$' for help]", "Grbl 1.1h"),
        ("Grbl 0.9j ['$' for help]", "Grbl 0.9j"),
        ("GrblHAL 1.1f ['$' or '$HELP' for help]", "GrblHAL 1.1f"),
        ("Grbl 3.7.8 [FluidNC v3.7.8 (wifi) '$' for help]", "Grbl 3.7.8"),
        ("Gr#l 1.1h ['$' for help]", "Grbl"),  # one byte garbled: still a reset
    ],
)
def test_welcome_banners(line: str, version: str) -> None:
    assert parse_banner(line) == version


@pytest.mark.parametrize("line", ["ok", "[MSG:Pgm End]", "Grblx", "<Idle|MPos:0,0,0>", ""])
def test_other_lines_are_not_banners(line: str) -> None:
    assert parse_banner(line) is None


def test_status_report_with_every_field() -> None:
    s = parse_status_report(
        "<Run|MPos:1.000,-2.500,3.250|Bf:12,97|Ln:99|FS:1500,8000|Pn:XYZPDHRS"
        "|WCO:0.000,1.551,5.664|Ov:110,50,90|A:SF>"
    )
    assert s == GrblStatus(
        state="Run",
        mpos=(1.0, -2.5, 3.25),
        wco=(0.0, 1.551, 5.664),
        feed=1500.0,
        spindle=8000.0,
        planner_free=12,
        rx_free=97,
        line_number=99,
        overrides=(110, 50, 90),
        pins="XYZPDHRS",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "<Idle|MPos:0.000,0.000,0.000|FS:0,0>",
            GrblStatus("Idle", mpos=(0, 0, 0), feed=0, spindle=0),
        ),
        ("<Idle|WPos:-2.5,0,11|F:500>", GrblStatus("Idle", wpos=(-2.5, 0, 11), feed=500)),
        ("<Hold:0|MPos:1,2,3>", GrblStatus("Hold", substate=0, mpos=(1, 2, 3))),
        ("<Hold:1|MPos:1,2,3>", GrblStatus("Hold", substate=1, mpos=(1, 2, 3))),
        ("<Door:1|MPos:1,2,3>", GrblStatus("Door", substate=1, mpos=(1, 2, 3))),
        ("<Alarm|MPos:0,0,0|Pn:P>", GrblStatus("Alarm", mpos=(0, 0, 0), pins="P")),
        ("<Check|MPos:0,0,0>", GrblStatus("Check", mpos=(0, 0, 0))),
        ("<Home|MPos:0,0,0>", GrblStatus("Home", mpos=(0, 0, 0))),
        ("<Jog|MPos:0,0,0>", GrblStatus("Jog", mpos=(0, 0, 0))),
        ("<Sleep|MPos:0,0,0>", GrblStatus("Sleep", mpos=(0, 0, 0))),
        # Four and six axes, fields in another order, grblHAL extras.
        ("<Run|FS:10,0|MPos:1,2,3,4>", GrblStatus("Run", mpos=(1, 2, 3, 4), feed=10, spindle=0)),
        ("<Idle|MPos:1,2,3,4,5,6|SD:3.5,x|H:1|T:0>", GrblStatus("Idle", mpos=(1, 2, 3, 4, 5, 6))),
        ("<Idle|MPos:0,0,0|FS:0,0,0>", GrblStatus("Idle", mpos=(0, 0, 0), feed=0, spindle=0)),
        ("<Idle>", GrblStatus("Idle")),
        ("<Tool|MPos:0,0,0>", GrblStatus("Tool", mpos=(0, 0, 0))),
    ],
)
def test_status_report_forms(line: str, expected: GrblStatus) -> None:
    assert parse_status_report(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "<Idle|MPos:0.000,0.0#0,0.000|FS:0,0>",  # garbled number
        "<Id#e|MPos:0,0,0>",  # garbled state
        "<Idle|MPos:0,0,0|Bf:15>",  # one Bf value
        "<Idle|MPos:0,0,0|Bf:15,1%8>",
        "<Idle|MPos:0,0,0|Ov:100,100>",
        "<Idle|MPos:0,0,0|Ln:x>",
        "<Idle|MPos:0,0,0|Pn:1>",
        "<Idle|MPos:0,0,0#FS:0,0>",
        "<Idle|MPos:0,0,nan>",
        "<Hold:x|MPos:0,0,0>",
        "<Idle|MPos:0,0,0",  # truncated
        "Idle|MPos:0,0,0>",
        "<>",
    ],
)
def test_damaged_status_reports_are_rejected(line: str) -> None:
    assert parse_status_report(line) is None


@given(st.text(max_size=120))
def test_status_parsing_never_raises(text: str) -> None:
    result = parse_status_report("<" + text + ">")
    assert result is None or isinstance(result, GrblStatus)

"""GRBL 1.1's vocabulary: error and alarm codes, real-time command bytes, and
the parsing of its welcome banner and status reports.

GRBL 1.1 prints only numbers (``error:20``, ``ALARM:1``) to save flash; the
meanings come from the tables in ``doc/markdown/interface.md`` and
``doc/csv/error_codes_en_US.csv`` / ``alarm_codes_en_US.csv`` of gnea/grbl
(1.1h adds error 17 and alarm 10), each written as a short meaning a member can
act on.  grblHAL keeps these numbers and adds higher ones, which are reported as
"unknown" with their number.  Everything here is pure; the streaming state
machine is :mod:`gateway.machine.grbl`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType
from typing import Final, Literal

from gateway.machine.protocol import GrblStatus

#: ``error:N`` replies: the line was rejected and nothing in it was executed.
ERRORS: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "Expected command letter: a G-code word has no letter",
        2: "Bad number format: a word's value is missing or malformed",
        3: "Invalid statement: '$' system command not recognised",
        4: "Negative value where a positive one is expected",
        5: "Setting disabled: homing is not enabled ($22)",
        6: "Step pulse time must be at least 3 microseconds ($0)",
        7: "EEPROM read failed: settings restored to defaults",
        8: "'$' command only allowed when the machine is idle",
        9: "G-code locked out during alarm or jog: unlock with $X or home with $H",
        10: "Soft limits need homing enabled ($22)",
        11: "Line overflow: line longer than GRBL's 80-character buffer, not executed",
        12: "Setting would exceed the maximum step rate",
        13: "Safety door open",
        14: "Build info or startup line too long for EEPROM",
        15: "Jog target exceeds machine travel: jog ignored",
        16: "Invalid jog command: no '=' or prohibited G-code",
        17: "Laser mode requires PWM output",
        20: "Unsupported or invalid G-code command",
        21: "Two commands from the same modal group in one line",
        22: "Feed rate not set (add an F word)",
        23: "G-code command needs an integer value",
        24: "Two commands in one line both need axis words",
        25: "A word is repeated in the line",
        26: "Command needs axis words but none were given",
        27: "Line number N out of range (1-9,999,999)",
        28: "Command is missing a required P or L word",
        29: "G59.1, G59.2 and G59.3 are not supported",
        30: "G53 needs G0 or G1 motion mode",
        31: "Axis words given while no motion mode is active (G80)",
        32: "Arc needs at least one axis word in the selected plane",
        33: "Motion target is invalid (impossible arc or probe target)",
        34: "Arc radius definition is invalid",
        35: "Arc needs an I, J or K offset in the selected plane",
        36: "Unused words in the line",
        37: "G43.1 tool length offset not on the configured axis",
        38: "Tool number larger than supported",
    }
)

#: ``ALARM:N`` push messages: motion stopped and G-code is locked.
ALARMS: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "Hard limit triggered: position likely lost, re-home the machine",
        2: "Soft limit: a move would exceed machine travel (position kept, unlock with $X)",
        3: "Reset while in motion: position likely lost, re-home the machine",
        4: "Probe fail: probe not in the expected state before the probe cycle",
        5: "Probe fail: probe did not make contact within the programmed travel",
        6: "Homing fail: the homing cycle was reset",
        7: "Homing fail: safety door opened during homing",
        8: "Homing fail: pull-off did not clear the limit switch (check wiring or $27)",
        9: "Homing fail: limit switch not found within search distance (check wiring)",
        10: "Homing fail: second switch of a dual axis did not trigger",
    }
)


def error_message(code: int | None) -> str:
    """The meaning of ``error:code`` (``code`` None: the number was unreadable)."""
    if code is None:
        return "Error with an unreadable code"
    return ERRORS.get(code, f"Unknown error {code} (not in GRBL 1.1's table)")


def alarm_message(code: int | None) -> str:
    """The meaning of ``ALARM:code`` (``code`` None: the number was unreadable)."""
    if code is None:
        return "Alarm with an unreadable code: motion stopped"
    return ALARMS.get(code, f"Unknown alarm {code} (not in GRBL 1.1's table): motion stopped")


class Realtime(IntEnum):
    """GRBL 1.1 real-time command bytes (commands.md, "Grbl v1.1 Realtime commands")."""

    SOFT_RESET = 0x18
    STATUS_REPORT = 0x3F  # '?'
    CYCLE_START = 0x7E  # '~'
    FEED_HOLD = 0x21  # '!'
    SAFETY_DOOR = 0x84
    JOG_CANCEL = 0x85
    FEED_100 = 0x90
    FEED_PLUS_10 = 0x91
    FEED_MINUS_10 = 0x92
    FEED_PLUS_1 = 0x93
    FEED_MINUS_1 = 0x94
    RAPID_100 = 0x95
    RAPID_50 = 0x96
    RAPID_25 = 0x97
    SPINDLE_100 = 0x99
    SPINDLE_PLUS_10 = 0x9A
    SPINDLE_MINUS_10 = 0x9B
    SPINDLE_PLUS_1 = 0x9C
    SPINDLE_MINUS_1 = 0x9D
    SPINDLE_STOP = 0x9E
    FLOOD_TOGGLE = 0xA0
    MIST_TOGGLE = 0xA1


#: Feed and spindle override steps: back to 100 %, or a relative change.
OverrideStep = Literal["100%", "+10%", "-10%", "+1%", "-1%"]
#: Rapid override levels.
RapidLevel = Literal["100%", "50%", "25%"]

FEED_OVERRIDES: Final[Mapping[OverrideStep, Realtime]] = {
    "100%": Realtime.FEED_100,
    "+10%": Realtime.FEED_PLUS_10,
    "-10%": Realtime.FEED_MINUS_10,
    "+1%": Realtime.FEED_PLUS_1,
    "-1%": Realtime.FEED_MINUS_1,
}
SPINDLE_OVERRIDES: Final[Mapping[OverrideStep, Realtime]] = {
    "100%": Realtime.SPINDLE_100,
    "+10%": Realtime.SPINDLE_PLUS_10,
    "-10%": Realtime.SPINDLE_MINUS_10,
    "+1%": Realtime.SPINDLE_PLUS_1,
    "-1%": Realtime.SPINDLE_MINUS_1,
}
RAPID_OVERRIDES: Final[Mapping[RapidLevel, Realtime]] = {
    "100%": Realtime.RAPID_100,
    "50%": Realtime.RAPID_50,
    "25%": Realtime.RAPID_25,
}


#: Machine states of a status report (interface doc); "Tool" is grblHAL's tool change.
MACHINE_STATES: Final = frozenset(
    {"Idle", "Run", "Hold", "Jog", "Alarm", "Door", "Check", "Home", "Sleep", "Tool"}
)


def parse_banner(text: str) -> str | None:
    """``"Grbl 1.1h ['$' for help]"`` -> ``"Grbl 1.1h"`` (also grblHAL, FluidNC);
    None if ``text`` is not a welcome banner."""
    head, _, rest = text.partition(" ")
    version = rest.split(" ", 1)[0]
    if head.startswith("Grbl") and version[:1].isdigit():
        return f"{head} {version}"
    if "for help]" in text or (head.startswith("Grbl") and "[" in rest):
        return "Grbl"  # a banner with one byte garbled is still a reset
    return None


def _numbers(value: str) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value.split(","))
    except ValueError:
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _ints(value: str, count: int) -> tuple[int, ...] | None:
    parts = value.split(",")
    if len(parts) != count or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def parse_status_report(text: str) -> GrblStatus | None:
    """Parse ``<Idle|MPos:0.000,0.000,0.000|FS:0,0|...>`` (interface doc,
    "Real-time Status Reports"); None if it is not a well-formed report.

    Fields may come in any order or not at all; unknown fields (grblHAL's
    ``SD:``, ``H:``, the accessory field ``A:``) are skipped.  Only what this
    report carries is filled in: :class:`GrblProtocol` adds the last known
    ``WCO:`` and ``Ov:`` and derives the missing position.
    """
    if len(text) < 3 or text[0] != "<" or text[-1] != ">":
        return None
    fields = text[1:-1].split("|")
    state, colon, sub = fields[0].partition(":")
    if state not in MACHINE_STATES or (colon and not sub.isdigit()):
        return None
    substate = int(sub) if colon else None
    mpos = wpos = wco = None
    feed = spindle = None
    planner_free = rx_free = line_number = None
    overrides: tuple[int, int, int] | None = None
    pins = ""
    for field_ in fields[1:]:
        key, colon, value = field_.partition(":")
        if key in ("MPos", "WPos", "WCO", "FS", "F"):
            numbers = _numbers(value)
            if numbers is None:
                return None
            if key == "MPos":
                mpos = numbers
            elif key == "WPos":
                wpos = numbers
            elif key == "WCO":
                wco = numbers
            elif key == "F" and len(numbers) == 1:
                feed = numbers[0]
            elif key == "FS" and len(numbers) >= 2:
                feed, spindle = numbers[0], numbers[1]
            else:
                return None
        elif key == "Bf":
            bf = _ints(value, 2)
            if bf is None:
                return None
            planner_free, rx_free = bf
        elif key == "Ln":
            if not value.isdigit():
                return None
            line_number = int(value)
        elif key == "Ov":
            ov = _ints(value, 3)
            if ov is None:
                return None
            overrides = (ov[0], ov[1], ov[2])
        elif key == "Pn":
            if not value.isalpha():
                return None
            pins = value
        elif not colon:
            return None  # a field without "type:" is damage, not an extension
    return GrblStatus(
        state=state,
        substate=substate,
        mpos=mpos,
        wpos=wpos,
        wco=wco,
        feed=feed,
        spindle=spindle,
        planner_free=planner_free,
        rx_free=rx_free,
        line_number=line_number,
        overrides=overrides,
        pins=pins,
    )

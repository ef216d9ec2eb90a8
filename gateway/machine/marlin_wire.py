"""What crosses Marlin's serial line, as text: host lines framed, replies parsed.

Pure functions, no state: :class:`~gateway.machine.marlin.MarlinProtocol` frames
each line with :func:`format_line` and sorts each reply with :func:`classify`,
then reads its fields with the parsers here.  The reply forms are those of
Marlin 2.1 (``ok``/``ok N<n> P<p> B<b>`` from ``ok_to_send``, ``Error:``/
``Resend:`` from ``gcode_line_error`` and ``flush_and_request_resend``,
``echo:busy: processing`` from ``host_keepalive``, ``T:.. /.. B:.. /..`` from
``print_heater_states``, ``FIRMWARE_NAME:`` and ``Cap:`` from ``M115``), plus
the line-error wordings of other firmwares (``Error: Wrong checksum``,
``Error: expected line 12 got 13``) and RepRap's ``rs N<n>``.
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "Reply",
    "checksum",
    "classify",
    "digits",
    "format_line",
    "is_fatal",
    "line_error",
    "parse_cap",
    "parse_firmware_name",
    "parse_ok",
    "parse_resend",
    "parse_temperatures",
]

_FIELD = re.compile(r" (?=[A-Z][A-Z_]+:)")
_LINE_ERRORS = ("checksum mismatch", "Line Number is not", "No Checksum", "No Line Number")
# Line errors worded differently by other firmwares, matched in lower case.
_LINE_ERROR_WORDS = ("checksum", "line number", "expected line")
_EXPECTED_LINE = re.compile(r"expected line:? *(\d+)", re.IGNORECASE)
_FATAL_ERRORS = ("Printer halted", "kill() called", "system stopped", "Printer stopped")


class Reply(enum.IntEnum):
    """The kinds of line Marlin sends, in the order :func:`classify` tests them."""

    OK = 0  # "ok" alone
    OK_FIELDS = 1  # "ok N12 P15 B3", "ok T:20.0 /0.0 ..." (M105)
    RESEND = 2  # "Resend: 12", "rs N12"
    ERROR = 3  # "Error:...", "!!"
    ECHO = 4  # "echo:..." (busy keepalives included)
    TEMPERATURES = 5  # an auto-report or a heating wait's report
    BUSY = 6  # "busy: processing" without echo: (older builds)
    START = 7  # the board (re)started
    WAIT = 8  # idle, nothing in the queue (older builds)
    FIRMWARE_NAME = 9
    CAP = 10
    INFO = 11  # "// action:..." and other comments
    OTHER = 12  # anything else: garbage or output of a console command


def classify(text: str) -> Reply:
    """Sort one stripped reply line (the common ``ok`` forms first)."""
    if text == "ok":
        return Reply.OK
    if text.startswith("ok"):
        return Reply.OK_FIELDS
    if text.startswith(("Resend:", "rs ")):
        return Reply.RESEND
    if text.startswith(("Error:", "!!")):
        return Reply.ERROR
    if text.startswith("echo:"):
        return Reply.ECHO
    if text[:2] in ("T:", "B:") or text[:3] == "T0:":
        return Reply.TEMPERATURES
    if text.startswith("busy:"):
        return Reply.BUSY
    if text == "start":
        return Reply.START
    if text == "wait":
        return Reply.WAIT
    if text.startswith("FIRMWARE_NAME:"):
        return Reply.FIRMWARE_NAME
    if text.startswith("Cap:"):
        return Reply.CAP
    if text.startswith("//"):
        return Reply.INFO
    return Reply.OTHER


def checksum(data: bytes) -> int:
    """Marlin's line checksum: the XOR of every byte."""
    value = 0
    for b in data:
        value ^= b
    return value


def format_line(n: int, line: str) -> bytes:
    """``N<n> <line>*<checksum>\\n`` as bytes."""
    head = f"N{n} {line}".encode("ascii")
    return b"%b*%d\n" % (head, checksum(head))


def digits(text: str) -> int | None:
    """A non-negative decimal number, nothing else (no sign, blank or underscore)."""
    return int(text) if text.isascii() and text.isdigit() else None


def parse_ok(body: str) -> tuple[int, int, int] | None:
    """The words after ``ok `` of an ``ok N<n> P<p> B<b>`` (each may be missing:
    -1); None if any word is something else."""
    n = p = b = -1
    for token in body.split():
        key = token[0]
        value = token[1:]
        if not (value.isascii() and value.isdigit()):
            return None
        if key == "N":
            n = int(value)
        elif key == "P":
            p = int(value)
        elif key == "B":
            b = int(value)
        else:
            return None
    return n, p, b


def parse_temperatures(text: str) -> dict[str, tuple[float, float | None]] | None:
    """Parse ``T:20.00 /0.00 B:20.00 /0.00 @:0 B@:0`` (also ``T0:``/``T1:``, ``C:``,
    ``T:20.0/0.0`` and the ``E:0 W:?`` of a heating wait); None if malformed.

    ``T`` is the active hotend: it is reported as ``T0`` unless Marlin lists
    the hotends itself (``T0:``, ``T1:`` ...).
    """
    readings: dict[str, tuple[float, float | None]] = {}
    tokens = text.split()
    i, count = 0, len(tokens)
    while i < count:
        name, sep, value = tokens[i].partition(":")
        i += 1
        if not sep or not name:
            return None
        if "@" in name or name in ("E", "W"):
            continue  # heater power, and the extruder/residency of M109
        if not (name.isascii() and name.isalnum()):
            return None
        actual, slash, target = value.partition("/")
        if not slash and i < count and tokens[i].startswith("/"):
            slash, target = "/", tokens[i][1:]
            i += 1
        try:
            readings[name] = (float(actual), float(target) if slash else None)
        except ValueError:
            return None
    if not readings:
        return None
    active = readings.pop("T", None)
    if active is not None and "T0" not in readings:
        readings = {"T0": active, **readings}
    return readings


def parse_resend(text: str) -> int | None:
    """``Resend: 12`` / ``Resend:12`` / ``rs N12`` -> 12."""
    value = text[7:] if text.startswith("Resend:") else text[3:]
    value = value.strip()
    if value[:1] == "N":
        value = value[1:]
    return digits(value)


def line_error(body: str) -> tuple[bool, int | None]:
    """Is the text after ``Error:`` a refused line, and which line was the last
    accepted (``Last Line: L``; ``expected line L+1``), when it says."""
    lower = body.lower()
    if not (
        body.startswith(_LINE_ERRORS)
        or "Last Line" in body
        or any(word in lower for word in _LINE_ERROR_WORDS)
    ):
        return False, None
    last = digits(body.rpartition("Last Line:")[2].strip())
    if last is None and (expected := _EXPECTED_LINE.search(body)) is not None:
        last = int(expected.group(1)) - 1
    return True, last


def is_fatal(text: str, body: str) -> bool:
    """``!!`` or a kill/halt message: the firmware stopped and needs a reset."""
    return text.startswith("!!") or any(marker in body for marker in _FATAL_ERRORS)


def parse_firmware_name(text: str) -> tuple[str, dict[str, str]]:
    """``FIRMWARE_NAME:Marlin 2.1.2 (date) SOURCE_CODE_URL:... UUID:...``."""
    name, *fields = _FIELD.split(text[len("FIRMWARE_NAME:") :])
    name = name.strip()
    if name.endswith(")") and " (" in name:
        name = name[: name.rindex(" (")]  # build date
    info = {}
    for item in fields:
        key, _, value = item.partition(":")
        info[key] = value.strip()
    return name, info


def parse_cap(text: str) -> tuple[str, str]:
    """``Cap:AUTOREPORT_TEMP:1`` -> ("AUTOREPORT_TEMP", "1")."""
    key, _, value = text[4:].partition(":")
    return key.strip(), value.strip()

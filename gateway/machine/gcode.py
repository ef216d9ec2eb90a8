"""G-code preparation: validate an uploaded file and clean it for streaming.

Pure functions, no I/O beyond the two files :func:`prepare_file` is given.  A
prepared file holds one command per line, ``\\n``-terminated, plain ASCII,
without comments, line numbers or checksums (the protocol core adds its own),
with whitespace runs collapsed to one space.

What cleaning does to one line (:func:`clean_line`):

* ``;`` starts a comment to the end of the line; ``( … )`` is a comment (GRBL
  and LinuxCNC style, several per line, not nested, an unclosed ``(`` is an
  error).  Comments never reach the controller, so non-ASCII text in them
  (object names, ``°`` in slicer settings) is accepted.
* A leading ``N<number>`` and a trailing ``*<checksum>`` are dropped; any
  other ``*`` is an error (Marlin would take it for a checksum).
* A line holding only ``%`` (the ISO 6983 program delimiter that CNC
  post-processors write) is dropped.
* For Marlin, the text argument of message and file-name commands
  (``M117 Hello  World``, ``M118``, ``M23 file.gco`` …) is kept verbatim:
  case, inner spacing and parentheses included (a tab becomes a space); ``;``
  still starts a comment.

What makes a line invalid (:class:`GcodeError`, with the line number):

* a control byte anywhere (below 0x20 except tab, 0x7F, or a carriage return
  in the middle of a line): the file is binary or corrupted;
* a non-ASCII byte in the part that would be sent;
* for GRBL, ``?``, ``!`` or ``~`` in the part that would be sent: GRBL acts on
  those bytes the moment they arrive (status, feed hold, cycle start), before
  the line is parsed (GRBL 1.1 interface docs, "Real-time commands");
* text that is not G-code: the first word must be a letter followed by a
  number (``G1``, ``M104``, ``T0``, ``X10``; ``Tx``/``Tc``/``T?`` for Marlin
  MMU), or, for GRBL, a ``$`` system command;
* a line longer than ``max_line_length`` after cleaning, or longer than
  :data:`MAX_SOURCE_LINE` before;
* a file without a single command after cleaning.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.machine.errors import MachineError

Firmware = Literal["marlin", "grbl"]

__all__ = [
    "MAX_SOURCE_LINE",
    "Firmware",
    "GcodeError",
    "PreparedFile",
    "clean_line",
    "prepare_file",
]

# Longest line, comments included, read from an uploaded file (bytes): keeps
# memory bounded on a binary file with no line breaks.
MAX_SOURCE_LINE = 1024 * 1024

_REEXPORT = "re-export the file from your slicer as plain ASCII G-code"
_UNCLOSED = "has a '(' comment that is never closed; add the ')' or remove the comment"

# Commands whose argument is free text (Marlin G-code reference: M0/M1 prompt,
# M16 printer check, M23/M28/M30/M32/M33/M928 SD file names, M117 LCD message,
# M118 serial echo).
_TEXT_COMMANDS = frozenset(
    {"M0", "M1", "M16", "M23", "M28", "M30", "M32", "M33", "M117", "M118", "M928"}
)
_TEXT_COMMAND = re.compile(r"([Mm]0*(\d+))(?![\d.])[ \t]*(.*)", re.DOTALL)
_LINE_NUMBER = re.compile(r"(?:[Nn][ \t]*\d+[ \t]*)+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CHECKSUM_TAIL = re.compile(r"[ \t]*\*[ \t]*\d+[ \t]*$")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_NUMBER_START = frozenset("0123456789+-.")
_MMU_TOOL = frozenset("xXcC?")
_WRITE_BATCH = 4096
_READ_BUFFER = 256 * 1024  # bytes


class GcodeError(MachineError):
    """A line of an uploaded file cannot be sent to the controller.

    ``line_no`` is the 1-based line of the original file (``None`` when the
    problem is not tied to one line, or :func:`clean_line` was called alone);
    ``reason`` says what is wrong and what to do about it.
    """

    def __init__(self, line_no: int | None, reason: str) -> None:
        self.line_no = line_no
        self.reason = reason
        super().__init__(reason if line_no is None else f"line {line_no}: {reason}")

    def __reduce__(self) -> tuple[type[GcodeError], tuple[int | None, str]]:
        return (GcodeError, (self.line_no, self.reason))


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """What :func:`prepare_file` wrote."""

    lines: int  # cleaned command lines in the prepared file
    bytes: int  # size of the prepared file, newlines included
    source_lines: int  # lines of the original file


def clean_line(raw: str, *, firmware: Firmware = "marlin") -> str:
    """Return ``raw`` without comments, line number and checksum, whitespace
    collapsed, or ``""`` for a blank or comment-only line.

    Raises :class:`GcodeError` (``line_no`` ``None``) for the rejections listed
    in the module docstring, except the length and empty-file checks, which
    belong to a whole file (:func:`prepare_file`).
    """
    s = raw.strip(" \t\r\n")
    if not s.isprintable():
        _check_controls(s)
    if not s or s[0] == ";":
        return ""
    grbl = firmware == "grbl"
    numbered = False
    if s[0] in "(Nn":
        s, numbered = _strip_head(s)
        if not s:
            return ""
    if s[0] in "Mm" and not grbl:
        text = _text_command(s, numbered)
        if text is not None:
            return text
    messy = False
    if "(" in s or ")" in s:
        s = _drop_comments(s)
        messy = True
    else:
        cut = s.find(";")
        if cut >= 0:
            s = s[:cut].rstrip(" \t")
    if "*" in s and s.lstrip(" \t")[:1] != "$":
        s = _drop_checksum(s)
        messy = True
    if not s.isascii():
        _reject_non_ascii(s)
    # The only whitespace left is space and tab: control bytes and
    # non-ASCII characters were rejected above.
    out = " ".join(s.split()) if messy or "  " in s or "\t" in s else s
    if not out or out == "%":
        return ""
    if not (out[0] in _LETTERS and out[1:2] in _NUMBER_START):
        _check_first_word(out, grbl)
    if grbl and ("?" in out or "!" in out or "~" in out):
        char = "?" if "?" in out else "!" if "!" in out else "~"
        raise GcodeError(
            None,
            f"contains {char!r}, which GRBL takes as a real-time command (status report, "
            "feed hold or cycle start) the moment it arrives; remove it from the file",
        )
    return out


def prepare_file(src: Path, dst: Path, *, firmware: Firmware, max_line_length: int) -> PreparedFile:
    """Clean ``src`` into ``dst`` line by line, in constant memory.

    Accepts LF and CRLF line endings and a UTF-8 byte-order mark.  On the first
    invalid line, raises :class:`GcodeError` with that line's number and
    removes ``dst``; an unreadable ``src`` raises :class:`OSError`.
    ``max_line_length`` applies to the cleaned text, before the line number and
    checksum the protocol adds.
    """
    if firmware not in ("marlin", "grbl"):
        raise ValueError(f"unknown firmware {firmware!r}; use 'marlin' or 'grbl'")
    line_no = 0
    lines = 0
    size = 0
    batch: list[str] = []
    try:
        with src.open("rb", buffering=_READ_BUFFER) as fin, dst.open("wb") as fout:
            for raw in iter(functools.partial(fin.readline, MAX_SOURCE_LINE), b""):
                line_no += 1
                if len(raw) == MAX_SOURCE_LINE and not raw.endswith(b"\n"):
                    raise GcodeError(
                        line_no,
                        f"is longer than {MAX_SOURCE_LINE // 1024} KiB, so this is not a "
                        f"G-code text file (or it has old Mac line endings); {_REEXPORT}",
                    )
                if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    # latin-1 maps each byte to one code point, so a rejected
                    # character is reported as the byte that is in the file.
                    out = clean_line(raw.decode("latin-1"), firmware=firmware)
                except GcodeError as err:
                    raise GcodeError(line_no, err.reason) from None
                if not out:
                    continue
                if len(out) > max_line_length:
                    raise GcodeError(
                        line_no,
                        f"is {len(out)} characters long without comments, more than the "
                        f"{max_line_length} the controller accepts; shorten it (for example "
                        "a long M117 message) or split the move",
                    )
                batch.append(out)
                lines += 1
                size += len(out) + 1
                if len(batch) >= _WRITE_BATCH:
                    fout.write(("\n".join(batch) + "\n").encode("ascii"))
                    batch.clear()
            if batch:
                fout.write(("\n".join(batch) + "\n").encode("ascii"))
        if lines == 0:
            raise GcodeError(
                None,
                "the file holds no G-code commands (only comments or blank lines); "
                "upload the sliced .gcode file, not the model or project file",
            )
    except BaseException:
        with contextlib.suppress(OSError):
            dst.unlink(missing_ok=True)
        raise
    return PreparedFile(lines=lines, bytes=size, source_lines=line_no)


def _strip_head(s: str) -> tuple[str, bool]:
    """Drop leading ``( … )`` comments and ``N`` line numbers, so that
    ``(setup) N10 M117 Hi`` is recognised as a text command; also say
    whether there was a line number."""
    numbered = False
    while s[:1] in ("(", "N", "n"):
        if s[0] == "(":
            end = s.find(")")
            if end < 0:
                raise GcodeError(None, _UNCLOSED)
            s = s[end + 1 :].lstrip(" \t")
            continue
        match = _LINE_NUMBER.match(s)
        if match is None:
            break
        s = s[match.end() :]
        numbered = True
    return s, numbered


def _check_controls(s: str) -> None:
    """Reject control bytes; other unprintable characters (non-ASCII) are
    checked later, and only where they would be sent."""
    match = _CONTROL.search(s)
    if match is None:
        return
    code = ord(match.group())
    if code in (0x0A, 0x0D):
        raise GcodeError(
            None,
            f"has a line break (byte 0x{code:02X}) in the middle of the line; "
            "save the file with LF or CRLF line endings",
        )
    raise GcodeError(
        None,
        f"contains a control byte (0x{code:02X}): the file is binary or damaged; {_REEXPORT}",
    )


def _reject_non_ascii(s: str) -> None:
    char = next(c for c in s if not c.isascii())
    code = ord(char)
    what = f"byte 0x{code:02X}" if code < 0x100 else f"character U+{code:04X}"
    raise GcodeError(None, f"contains a non-ASCII character ({what}); {_REEXPORT}")


def _text_command(s: str, numbered: bool) -> str | None:
    """Clean a Marlin command with a free-text argument, or return ``None``
    if ``s`` is not one."""
    match = _TEXT_COMMAND.match(s)
    if match is None or f"M{int(match.group(2))}" not in _TEXT_COMMANDS:
        return None
    command, text = match.group(1), match.group(3)
    cut = text.find(";")
    if cut >= 0:
        text = text[:cut]
    if numbered:
        # Only a numbered line carries a checksum; in plain text a "*5" is text.
        text = _CHECKSUM_TAIL.sub("", text)
    text = text.rstrip(" \t").replace("\t", " ")
    out = f"{command} {text}" if text else command
    if not out.isascii():
        _reject_non_ascii(out)
    return out


def _drop_comments(s: str) -> str:
    """Remove ``( … )`` and ``;`` comments, whichever comes first, left to
    right: a ``;`` inside parentheses belongs to that comment (GRBL 1.1
    ``protocol.c``, Marlin ``PAREN_COMMENTS``)."""
    parts: list[str] = []
    pos = 0
    while True:
        semicolon = s.find(";", pos)
        opening = s.find("(", pos)
        code_end = len(s) if semicolon < 0 else semicolon
        if 0 <= opening < code_end:
            code_end = opening
        if s.find(")", pos, code_end) >= 0:
            raise GcodeError(None, "has a ')' without an opening '('; fix or remove the comment")
        parts.append(s[pos:code_end])
        if code_end != opening:
            return " ".join(parts)
        closing = s.find(")", opening + 1)
        if closing < 0:
            raise GcodeError(None, _UNCLOSED)
        pos = closing + 1


def _drop_checksum(s: str) -> str:
    star = s.find("*")
    if s[star + 1 :].strip().isdigit():
        return s[:star]
    raise GcodeError(
        None,
        "has a '*' that is not part of a trailing checksum (*<number>); remove it",
    )


def _check_first_word(out: str, grbl: bool) -> None:
    first = out[0]
    if first == "$":
        if grbl:
            return
        raise GcodeError(
            None,
            "starts with '$', a GRBL system command, but this machine runs Marlin; "
            "use a file made for this machine",
        )
    if first in _LETTERS:
        nxt = out[1:2]
        if nxt == " ":
            nxt = out[2:3]
        if nxt and (nxt in _NUMBER_START or (not grbl and first in "Tt" and nxt in _MMU_TOOL)):
            return
    shown = out if len(out) <= 40 else out[:37] + "..."
    raise GcodeError(
        None,
        f"is not G-code ({shown!r}): a command starts with a letter and a number, "
        "such as G1 or M104; check that you uploaded a G-code file",
    )

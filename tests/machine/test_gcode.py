"""Tests of G-code cleaning and validation (gateway/machine/gcode.py)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.machine.errors import MachineError
from gateway.machine.gcode import (
    MAX_SOURCE_LINE,
    Firmware,
    GcodeError,
    PreparedFile,
    clean_line,
    prepare_file,
)


def _rejection(raw: str, firmware: Firmware = "marlin") -> str:
    with pytest.raises(GcodeError) as info:
        clean_line(raw, firmware=firmware)
    assert info.value.line_no is None
    return info.value.reason


def _prepare(
    tmp_path: Path, content: bytes, firmware: Firmware = "marlin", limit: int = 96
) -> PreparedFile:
    src = tmp_path / "in.gcode"
    src.write_bytes(content)
    return prepare_file(src, tmp_path / "out.gcode", firmware=firmware, max_line_length=limit)


def _prepare_error(
    tmp_path: Path, content: bytes, firmware: Firmware = "marlin", limit: int = 96
) -> GcodeError:
    with pytest.raises(GcodeError) as info:
        _prepare(tmp_path, content, firmware, limit)
    assert not (tmp_path / "out.gcode").exists(), "a rejected file leaves no prepared copy"
    return info.value


# --- cleaning ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("G1 X10 Y20", "G1 X10 Y20"),
        ("G1 X10 Y20 ; move to the corner", "G1 X10 Y20"),
        ("G1 X10;no space", "G1 X10"),
        ("; only a comment", ""),
        (";TYPE:WALL-OUTER", ""),
        ("", ""),
        ("   \t  ", ""),
        ("\r\n", ""),
        ("G1 X1 (GRBL comment)", "G1 X1"),
        ("G1 (one) X1 (two) Y2 (three)", "G1 X1 Y2"),
        ("(header comment)", ""),
        ("(a) (b)", ""),
        ("G0(no)X1(spaces)Y2", "G0 X1 Y2"),
        ("G1 X1 (paren) ; then semicolon", "G1 X1"),
        ("G1 X1 (a ; semicolon inside parentheses) Y2", "G1 X1 Y2"),
        ("G1 X1 ; (unclosed inside a ; comment", "G1 X1"),
        ("G1 X1 ; smile :)", "G1 X1"),
        ("  G1   X1\t\tY2  ", "G1 X1 Y2"),
        ("G1\tX1", "G1 X1"),
        ("G1 X1 Y2\r\n", "G1 X1 Y2"),
        ("G1 X1 Y2\n", "G1 X1 Y2"),
        ("N10 G1 X1", "G1 X1"),
        ("N10 G1 X1*91", "G1 X1"),
        ("N10 G1 X1 *91", "G1 X1"),
        ("n7 g1 x1", "g1 x1"),
        ("N10G1 X1", "G1 X1"),
        ("N10", ""),
        ("N1 N2 G28", "G28"),
        ("G1 X1*91", "G1 X1"),
        ("(setup) N10 G1 X1", "G1 X1"),
        ("%", ""),
        ("% (program start)", ""),
        ("g1 x1 y2", "g1 x1 y2"),
        ("G 1 X 10", "G 1 X 10"),
        ("X10 Y10", "X10 Y10"),
        ("T0", "T0"),
        ("S1000", "S1000"),
        ("F3000", "F3000"),
        ("M104 S200 ; hot end", "M104 S200"),
        ("G1 X-1.5 Y+2 Z.3", "G1 X-1.5 Y+2 Z.3"),
        ("G1 X1 ; comment with non-ASCII: 25°C, Bücher.stl", "G1 X1"),
    ],
)
def test_clean_line(raw: str, cleaned: str) -> None:
    assert clean_line(raw) == cleaned
    assert clean_line(cleaned) == cleaned


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("M117 Hello World", "M117 Hello World"),
        ("M117 Hello  World", "M117 Hello  World"),
        ("M117 hello (not a comment)", "M117 hello (not a comment)"),
        ("M117 Printing... ; but this is a comment", "M117 Printing..."),
        ("M117   leading spaces go", "M117 leading spaces go"),
        ("M117 trailing spaces go   ", "M117 trailing spaces go"),
        ("M117 a\tb", "M117 a b"),
        ("M117Hello", "M117 Hello"),
        ("M117", "M117"),
        ("M117 ;nothing", "M117"),
        ("M118 E1 Hello host", "M118 E1 Hello host"),
        ("M23 MyFile.gco", "M23 MyFile.gco"),
        ("M0 Click to resume", "M0 Click to resume"),
        ("N12 M117 Done*47", "M117 Done"),
        ("M117 5*5 is 25", "M117 5*5 is 25"),
        ("(status) M117 Layer  1", "M117 Layer  1"),
        ("m117 MiXeD Case", "m117 MiXeD Case"),
    ],
)
def test_text_commands_keep_their_text(raw: str, cleaned: str) -> None:
    assert clean_line(raw) == cleaned
    assert clean_line(cleaned) == cleaned


def test_text_commands_are_marlin_only() -> None:
    # GRBL has no M117; on GRBL the usual rules apply to the whole line.
    assert clean_line("M117 a  (b)", firmware="grbl") == "M117 a"
    # M1170 and M11 are not text commands.
    assert clean_line("M11  X1  (c)") == "M11 X1"


def test_grbl_system_commands() -> None:
    assert clean_line("$H", firmware="grbl") == "$H"
    assert clean_line("$J=G91 X10  F100 ; jog", firmware="grbl") == "$J=G91 X10 F100"
    assert clean_line("$RST=*", firmware="grbl") == "$RST=*"
    assert clean_line("$$", firmware="grbl") == "$$"
    assert "GRBL system command" in _rejection("$H", "marlin")


def test_marlin_mmu_tool_changes() -> None:
    assert clean_line("Tx") == "Tx"
    assert clean_line("T?") == "T?"
    assert "not G-code" in _rejection("Tx", "grbl")


# --- rejections of single lines ---------------------------------------------


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
def test_unclosed_parenthesis(firmware: Firmware) -> None:
    assert "never closed" in _rejection("G1 X1 (forgot to close", firmware)
    assert "never closed" in _rejection("(header", firmware)


def test_stray_closing_parenthesis() -> None:
    assert "without an opening" in _rejection("G1 X1 )")


@pytest.mark.parametrize("raw", ["<html>", "12abc", "hello world", "G", "}", "@pause", "-5"])
def test_not_gcode(raw: str) -> None:
    assert "not G-code" in _rejection(raw)


def test_not_gcode_message_is_shortened() -> None:
    reason = _rejection("<" + "x" * 200)
    assert len(reason) < 200


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"])
def test_control_bytes(char: str) -> None:
    reason = _rejection(f"G1 X1{char}Y2")
    assert f"0x{ord(char):02X}" in reason
    assert "control" in reason
    # also inside a comment: a control byte means a binary or damaged file
    assert "control" in _rejection(f"G1 X1 ; {char}")


def test_line_break_in_the_middle() -> None:
    assert "0x0D" in _rejection("G1 X1\rG1 X2")
    assert "0x0A" in _rejection("G1 X1\nG1 X2")


def test_tab_is_whitespace_not_a_control_byte() -> None:
    assert clean_line("\tG1\tX1\t") == "G1 X1"


@pytest.mark.parametrize("raw", ["G1 X1 ; 20°C", "(Bücher) G1 X1"])
def test_non_ascii_in_comments_is_accepted(raw: str) -> None:
    assert clean_line(raw) == "G1 X1"


def test_non_ascii_in_the_command() -> None:
    reason = _rejection("M104 S200 é")
    assert "non-ASCII" in reason and "0xE9" in reason
    assert "non-ASCII" in _rejection("M117 Grüße")
    assert "non-ASCII" in _rejection("G1 X1\u00a0Y2")  # no-break space is not whitespace here
    assert "U+20AC" in _rejection("G1 X1 €")


@pytest.mark.parametrize("char", ["?", "!", "~"])
def test_grbl_real_time_characters(char: str) -> None:
    reason = _rejection(f"G1 X1 Y2{char}", "grbl")
    assert "real-time" in reason and repr(char) in reason
    # harmless in a comment, which is never sent, and on Marlin
    assert clean_line(f"G1 X1 ; {char}", firmware="grbl") == "G1 X1"
    assert clean_line(f"G1 X1 ({char})", firmware="grbl") == "G1 X1"
    assert clean_line(f"M117 Hi{char}") == f"M117 Hi{char}"


@pytest.mark.parametrize("raw", ["G1 X1*a", "G1 X1 * Y2", "G1 X1*", "G1 *5 X1"])
def test_star_that_is_not_a_checksum(raw: str) -> None:
    assert "'*'" in _rejection(raw)


def test_error_message_and_base_class() -> None:
    err = GcodeError(1234, "contains a non-ASCII character (byte 0xC3)")
    assert str(err) == "line 1234: contains a non-ASCII character (byte 0xC3)"
    assert isinstance(err, MachineError)
    assert str(GcodeError(None, "reason")) == "reason"


# --- files ------------------------------------------------------------------


def test_prepare_file(tmp_path: Path) -> None:
    content = (
        b"; generated by a slicer\n"
        b"M104 S200 ; heat\n"
        b"\n"
        b"G28\n"
        b"G1 X10 Y10 F3000 ; move\n"
        b"M117 Printing  now\n"
        b"(done)\n"
    )
    prepared = _prepare(tmp_path, content)
    out = (tmp_path / "out.gcode").read_bytes()
    assert out == b"M104 S200\nG28\nG1 X10 Y10 F3000\nM117 Printing  now\n"
    assert prepared == PreparedFile(lines=4, bytes=len(out), source_lines=7)


def test_prepare_file_crlf_bom_and_no_final_newline(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbfG28\r\nG1 X1 ; c\r\nG1 X2"
    prepared = _prepare(tmp_path, content)
    assert (tmp_path / "out.gcode").read_bytes() == b"G28\nG1 X1\nG1 X2\n"
    assert prepared.lines == 3 and prepared.source_lines == 3


def test_a_bom_after_the_start_is_rejected(tmp_path: Path) -> None:
    err = _prepare_error(tmp_path, b"G28\n\xef\xbb\xbfG1 X1\n")
    assert err.line_no == 2 and "0xEF" in err.reason


def test_non_ascii_byte_reported_with_line_number(tmp_path: Path) -> None:
    content = b"G28\n" * 1233 + "M117 Café\n".encode()
    err = _prepare_error(tmp_path, content)
    assert err.line_no == 1234
    assert str(err) == (
        "line 1234: contains a non-ASCII character (byte 0xC3); "
        "re-export the file from your slicer as plain ASCII G-code"
    )


def test_latin1_byte_reported_as_is(tmp_path: Path) -> None:
    err = _prepare_error(tmp_path, b"G28\nM117 caf\xe9\n")
    assert err.line_no == 2 and "0xE9" in err.reason


def test_non_ascii_comment_in_file_is_accepted(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, "; Bücher.stl, 25°C\nG28 ; Ω\n".encode())
    assert prepared.lines == 1


@pytest.mark.parametrize(
    ("line", "firmware", "words"),
    [
        (b"G1 X1 \x00", "marlin", "control byte (0x00)"),
        (b"G1 X1 (never closed", "marlin", "never closed"),
        (b"<html>", "marlin", "not G-code"),
        (b"12abc", "grbl", "not G-code"),
        (b"G1 X1 ~", "grbl", "real-time"),
        (b"$H", "marlin", "GRBL system command"),
        (b"G1 X1*x", "marlin", "checksum"),
    ],
)
def test_file_rejections_name_the_line(
    tmp_path: Path, line: bytes, firmware: Firmware, words: str
) -> None:
    content = b"; header\nG28\n\n" + line + b"\nG1 X2\n"
    err = _prepare_error(tmp_path, content, firmware)
    assert err.line_no == 4
    assert words in err.reason
    assert str(err).startswith("line 4: ")


def test_line_too_long(tmp_path: Path) -> None:
    long_line = b"M117 " + b"x" * 100
    err = _prepare_error(tmp_path, b"G28\n" + long_line + b"\n", limit=96)
    assert err.line_no == 2
    assert "105 characters" in err.reason and "96" in err.reason
    # the limit applies after cleaning: comments do not count
    _prepare(tmp_path, b"G1 X1 ; " + b"c" * 200 + b"\n", limit=20)
    _prepare(tmp_path, b"G1   X1\n", limit=5)


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", b"; only comments\n(and these)\n\n", b"\xef\xbb\xbf", b"%\n%\n"]
)
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    err = _prepare_error(tmp_path, content)
    assert err.line_no is None
    assert "no G-code commands" in str(err)


def test_binary_file_without_line_breaks(tmp_path: Path) -> None:
    err = _prepare_error(tmp_path, b"G28\n" + b"\x89PNG" * (MAX_SOURCE_LINE // 2))
    assert err.line_no == 2
    assert "not a G-code text file" in err.reason


def test_missing_source_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        prepare_file(
            tmp_path / "nope.gcode", tmp_path / "out", firmware="marlin", max_line_length=96
        )
    assert not (tmp_path / "out").exists()


def test_large_file_streams_in_constant_memory(tmp_path: Path) -> None:
    src = tmp_path / "big.gcode"
    lines = 200_000
    with src.open("w") as fh:
        fh.write("; big file\nG28\nM83\n")
        for i in range(lines):
            fh.write(f"G1 X{i % 200}.{i % 1000:03d} Y{(i * 7) % 200}.5 E0.0123 ; seg {i}\n")
    size = src.stat().st_size
    tracemalloc.start()
    try:
        prepared = prepare_file(src, tmp_path / "out", firmware="marlin", max_line_length=96)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prepared.lines == lines + 2
    assert prepared.source_lines == lines + 3
    assert prepared.bytes == (tmp_path / "out").stat().st_size
    # Reading and writing buffers only: a small, fixed fraction of the file.
    assert peak < max(size // 8, 4 * 2**20), f"peak {peak} bytes for a {size}-byte file"


# --- properties -------------------------------------------------------------

_printable_ascii = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))
_gcode_like = st.lists(
    st.one_of(
        st.sampled_from(["G1", "G0", "M117", "M104", "N10", "X1.5", "Y-2", "E.3", "F3000"]),
        st.sampled_from([" ", "  ", "\t", ";", "(", ")", "*", "*12", "%", "$", "?", "é"]),
        _printable_ascii,
    ),
    max_size=8,
).map("".join)

_DOCUMENTED = (
    "never closed",
    "without an opening",
    "not G-code",
    "real-time",
    "'*'",
    "GRBL system command",
    "non-ASCII",
)


@given(_gcode_like, st.sampled_from(["marlin", "grbl"]))
def test_cleaning_is_idempotent(raw: str, firmware: Firmware) -> None:
    try:
        once = clean_line(raw, firmware=firmware)
    except GcodeError:
        return
    assert clean_line(once, firmware=firmware) == once


@given(_printable_ascii, st.sampled_from(["marlin", "grbl"]))
def test_printable_ascii_never_fails_for_other_reasons(raw: str, firmware: Firmware) -> None:
    try:
        cleaned = clean_line(raw, firmware=firmware)
    except GcodeError as err:
        assert any(words in err.reason for words in _DOCUMENTED), err.reason
        return
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned or cleaned.upper().startswith("M")
    assert cleaned.isascii() and cleaned.isprintable()


@given(_gcode_like)
def test_cleaned_output_is_safe_to_send(raw: str) -> None:
    for firmware in ("marlin", "grbl"):
        try:
            cleaned = clean_line(raw, firmware=firmware)
        except GcodeError:
            continue
        assert cleaned.isascii() and cleaned.isprintable()
        assert "\n" not in cleaned and "\r" not in cleaned
        if firmware == "grbl":
            assert not set("?!~") & set(cleaned)
            assert ";" not in cleaned and "(" not in cleaned

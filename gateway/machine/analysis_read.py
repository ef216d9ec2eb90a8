"""Reading G-code for the analysis' hot loop: blocks of lines, their signatures.

The text arrives in blocks of whole lines, as Latin-1 bytes (:func:`file_blocks`
cuts a file where ``readline`` would, :func:`line_blocks` joins lines).  Two
C-level passes over each block do most of the reading (:func:`lines_of`): one
(:data:`_SIGNATURE`) turns ``G1 X12.5 Y3 E.02`` into its *signature*
``G9 X99.9 Y9 E.99``, the other (:data:`_DIGITS_ONLY`, points deleted, letters
blanked) into its digits ``1 125 3 02``.  What a signature means
(:func:`reading_of`: a plain move and how to read its numbers, a blank line, or
the general path) is worked out once per file and remembered by the loop in
:mod:`gateway.machine.analysis_loop`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = [
    "BLANK",
    "GENERAL",
    "NUMBERS",
    "PLAIN",
    "SIGNATURES",
    "XY",
    "XYE",
    "Reading",
    "file_blocks",
    "line_blocks",
    "lines_of",
    "reading_of",
]

_DIGITS = b"0123456789.+-"
_BLOCK = 32 * 1024  # bytes read at a time: a few hundred lines, little memory
_BATCH = 500  # lines joined into one block
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark
_AXIS_LETTERS = b"XYZEF"


def _table(keep: bytes, other: bytes) -> bytes:
    table = bytearray(other * 256)
    for byte in keep:
        table[byte] = byte
    return bytes(table)


def _signature_table() -> bytes:
    """Signature: each digit a "9"; the letters a plain move may have, signs,
    points, spaces and the comment mark kept; any other printable ASCII
    character a "#", anything else (control, non-ASCII) a "!"."""
    table = bytearray(_table(b"GXYZEF.+- ;\n", b"#"))
    for byte in b"0123456789":
        table[byte] = ord("9")
    for byte in (*range(0x20), *range(0x7F, 0x100)):
        if byte != ord("\n"):
            table[byte] = ord("!")
    return bytes(table)


_SIGNATURE = _signature_table()
# Numbers without their points: digits and signs kept (and the comment mark,
# to cut at), everything else a space.
_DIGITS_ONLY = _table(b"0123456789+-;\n", b" ")
# Numbers as written, for the lines read with float().
NUMBERS = _table(_DIGITS, b" ")
# What a line's signature says: read X Y E or X Y as integers; read with
# float() (kind of plain move known); a blank line; the general path.
XYE, XY, PLAIN, BLANK, GENERAL = range(5)
# (what, where a comment starts or 0, X, Y and E divisors, plain-move kind)
Reading = tuple[int, int, float, float, float, "tuple[int, int, int, int, int, int] | None"]
SIGNATURES = 4096  # signatures remembered per file


def _plain_move(letters: list[bytes]) -> tuple[int, int, int, int, int, int] | None:
    """The kind of plain move with these axis words (each of X, Y, Z, E, F at
    most once, any order): the number of words with the G, then the index of
    the X, Y, Z, E and F word among them, 0 for none; None for no such move."""
    if not letters or len(set(letters)) != len(letters):
        return None
    where = [0] * len(_AXIS_LETTERS)
    for i, letter in enumerate(letters):
        axis = _AXIS_LETTERS.find(letter)
        if len(letter) != 1 or axis < 0:
            return None
        where[axis] = i + 1
    return (len(letters) + 1, where[0], where[1], where[2], where[3], where[4])


def line_blocks(lines: Iterable[str]) -> Iterator[bytes | str]:
    """Lines as the analysis loop takes them: ASCII lines joined into blocks,
    any other line (non-ASCII, or holding a line break) alone, as text."""
    batch: list[str] = []
    for line in lines:
        body = line[:-1] if line[-1:] == "\n" else line
        if body.isascii() and "\n" not in body:
            batch.append(body)
            if len(batch) < _BATCH:
                continue
            yield "\n".join(batch).encode("ascii")
        else:
            if batch:
                yield "\n".join(batch).encode("ascii")
            yield line
        batch = []
    if batch:
        yield "\n".join(batch).encode("ascii")


def file_blocks(fh: BinaryIO, max_line: int) -> Iterator[bytes | str]:
    """A binary file as blocks for the analysis loop, cut where
    ``fh.readline(max_line)`` would cut it: lines end at ``\n``, a line longer
    than ``max_line`` comes in pieces of that size (as text, for the general
    path), and a UTF-8 byte-order mark before the first line is skipped."""
    yield fh.readline(max_line).removeprefix(_BOM).decode("latin-1")
    tail = b""
    while data := fh.read(_BLOCK):
        if tail:
            data = tail + data
        cut = data.rfind(b"\n") + 1
        if cut:
            if cut > max_line:  # it may hold a line longer than max_line
                yield from _pieces(data[:cut], max_line)
            else:
                yield data[:cut]
            tail = data[cut:]
        else:
            tail = data
        while len(tail) >= max_line:
            yield tail[:max_line].decode("latin-1")
            tail = tail[max_line:]
    if tail:
        yield tail


def _pieces(text: bytes, max_line: int) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find(b"\n", start) + 1 or len(text)
        for piece in range(start, end, max_line):
            yield text[piece : min(piece + max_line, end)].decode("latin-1")
        start = end


def lines_of(chunk: bytes | str) -> Iterator[tuple[bytes, bytes, bytes | str]]:
    """Each line of a block with its signature and its digits."""
    if type(chunk) is str:  # a piece of a line, for the general path
        return iter(((b"!", b"", chunk),))
    assert isinstance(chunk, bytes)
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n")  # clean_line strips it too
    if chunk[-1:] == b"\n":
        chunk = chunk[:-1]
    signatures = chunk.translate(_SIGNATURE).split(b"\n")
    digits = chunk.translate(_DIGITS_ONLY, b".").split(b"\n")
    return zip(signatures, digits, chunk.split(b"\n"), strict=True)


GENERAL_READING: Reading = (GENERAL, 0, 0.0, 0.0, 0.0, None)
BLANK_READING: Reading = (BLANK, 0, 0.0, 0.0, 0.0, None)


def reading_of(signature: bytes) -> Reading:
    """How to read the lines of one signature (see :data:`_SIGNATURE`).

    A plain move is ``G0``/``G1`` and some of X, Y, Z, E, F, each once,
    single spaces apart, each with a number of digits, a sign and a point
    (perhaps with a comment of printable text).  ``G X Y E`` and ``G X Y``
    with unsigned numbers of at most 15 digits are read as integers over a
    power of ten: both exactly representable, so their quotient is the
    correctly rounded number, as float() gives.  Anything that is not a plain
    move goes the general way, so nothing here decides what a line means.
    """
    code, semi, comment = signature.partition(b";")
    if b"!" in comment:  # clean_line rejects a control byte even in a comment
        return GENERAL_READING
    code = code.rstrip(b" ")
    if not code:  # spaces, perhaps a comment
        return BLANK_READING
    words = code.split(b" ")
    if words[0] != b"G9":
        return GENERAL_READING
    letters = [word[:1] for word in words[1:]]
    numbers = [word[1:] for word in words[1:]]
    kind = _plain_move(letters)
    if kind is None or any(number.strip(b"9.+-") for number in numbers):
        return GENERAL_READING
    cut = len(code) if semi else 0  # the comment, cut from the numbers
    unsigned = all(
        number.count(b".") <= 1 and 0 < number.count(b"9") <= 15 and number.strip(b"9.") == b""
        for number in numbers
    )
    if unsigned and letters in ([b"X", b"Y", b"E"], [b"X", b"Y"]):
        places = [float(10 ** len(number.partition(b".")[2])) for number in numbers]
        if semi:  # where the comment starts once the points are gone
            cut -= code.count(b".")
        if len(places) == 3:
            return (XYE, cut, places[0], places[1], places[2], kind)
        return (XY, cut, places[0], places[1], 1.0, kind)
    return (PLAIN, cut, 0.0, 0.0, 0.0, kind)

"""RDM6300: the pure framing decoder, and the reader over a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.access.errors import AccessError
from gateway.access.readers.base import RejectedFrame
from gateway.access.readers.rdm6300 import Rdm6300Decoder, Rdm6300Reader, resolve_port
from gateway.backoff import Backoff


def frame(uid: str) -> bytes:
    """What the module sends for a tag: STX, 10 hex chars, XOR checksum, ETX."""
    data = bytes.fromhex(uid)
    checksum = 0
    for value in data:
        checksum ^= value
    return b"\x02" + uid.upper().encode() + f"{checksum:02X}".encode() + b"\x03"


def uids(events: list[str | RejectedFrame]) -> list[str]:
    return [e for e in events if isinstance(e, str)]


def rejections(events: list[str | RejectedFrame]) -> list[str]:
    return [e.reason for e in events if isinstance(e, RejectedFrame)]


# -- the pure decoder -------------------------------------------------------------------


def test_known_frame() -> None:
    # 10 00 86 F4 44: checksum 0x26 (a forum post's worked example).
    raw = bytes.fromhex("02 31 30 30 30 38 36 46 34 34 34 32 36 03")
    assert raw == frame("100086F444")
    assert Rdm6300Decoder().feed(raw) == ["100086F444"]


def test_lowercase_hex_is_uppercased() -> None:
    raw = b"\x02" + b"100086f44426" + b"\x03"
    assert Rdm6300Decoder().feed(raw) == ["100086F444"]


def test_bad_checksum() -> None:
    raw = bytearray(frame("100086F444"))
    raw[12] = ord("7")
    assert Rdm6300Decoder().feed(bytes(raw)) == [RejectedFrame("checksum mismatch")]


def test_garbage_outside_frames_is_one_rejection_per_run() -> None:
    events = Rdm6300Decoder().feed(b"\xff\x00hello" + frame("0102030405") + b"\r\n")
    assert uids(events) == ["0102030405"]
    assert rejections(events) == ["bytes outside a frame", "bytes outside a frame"]


def test_new_stx_restarts_the_frame() -> None:
    events = Rdm6300Decoder().feed(b"\x02" + b"10008" + frame("0102030405"))
    assert events == [RejectedFrame("frame cut short by a new STX"), "0102030405"]


def test_bad_hex_and_long_and_short_frames() -> None:
    decoder = Rdm6300Decoder()
    assert rejections(decoder.feed(b"\x0210008G\x03")) == ["non-hex byte in a frame"]
    assert rejections(decoder.feed(b"\x02" + b"1" * 13 + b"\x03")) == [
        "frame longer than 12 characters"
    ]
    assert rejections(decoder.feed(b"\x0212345\x03")) == [
        "5 characters between STX and ETX, expected 12"
    ]
    assert decoder.feed(frame("AABBCCDDEE")) == ["AABBCCDDEE"]


def test_rejection_reasons_never_quote_the_frame() -> None:
    decoder = Rdm6300Decoder()
    raw = bytearray(frame("100086F444"))
    raw[12] = ord("0")
    for reason in rejections(decoder.feed(bytes(raw) + b"\x02100086F444\x02")):
        assert "100086" not in reason and "F444" not in reason


tag_uids = st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper())
# Garbage never contains STX (which would, rightly, start a frame).
garbage = st.binary(max_size=20).map(lambda b: b.replace(b"\x02", b""))


@given(
    st.lists(st.tuples(garbage, tag_uids), min_size=1, max_size=6),
    st.lists(st.integers(0, 200), max_size=10),
)
def test_frames_among_garbage_split_anywhere(
    stream: list[tuple[bytes, str]], cuts: list[int]
) -> None:
    raw = b"".join(junk + frame(uid) for junk, uid in stream)
    decoder = Rdm6300Decoder()
    events: list[str | RejectedFrame] = []
    start = 0
    for cut in [*sorted({min(c, len(raw)) for c in cuts}), len(raw)]:
        events += decoder.feed(raw[start:cut])
        start = cut
    assert uids(events) == [uid for _, uid in stream]
    assert len(rejections(events)) == sum(1 for junk, _ in stream if junk)


@given(tag_uids, st.integers(1, 12), st.integers(0, 255))
def test_any_corrupted_character_is_rejected(uid: str, index: int, replacement: int) -> None:
    raw = bytearray(frame(uid))
    if raw[index] == replacement or (
        chr(replacement) in "0123456789abcdef" and chr(replacement).upper() == chr(raw[index])
    ):
        return  # not a corruption
    raw[index] = replacement
    events = Rdm6300Decoder().feed(bytes(raw) + frame("0000000000"))
    # The corrupted frame is rejected and the decoder resynchronises for the next one.
    assert uids(events) == ["0000000000"]
    assert rejections(events)


# -- the reader on a pseudo-terminal ---------------------------------------------------


class Pty:
    """A pseudo-terminal pair: the test writes into ``master``, the reader opens ``path``."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        os.close(self._slave)
        os.close(self.master)


@pytest.fixture
def pty_pair() -> Iterator[Pty]:
    pair = Pty()
    yield pair
    with contextlib.suppress(OSError):  # the test closed it
        pair.close()


async def test_reader_over_a_pty(pty_pair: Pty) -> None:
    async with Rdm6300Reader("laser", port=pty_pair.path) as reader:
        reads = aiter(reader.reads())
        pty_pair.write(b"\x00\xff" + frame("100086F444"))
        async with asyncio.timeout(2):
            read = await anext(reads)
        assert (read.uid, read.reader) == ("100086F444", "laser")
        # The module repeats while the tag is held: reported once.
        half = frame("0102030405")
        pty_pair.write(frame("100086F444") * 3 + half[:6])
        await asyncio.sleep(0.05)
        pty_pair.write(half[6:])
        async with asyncio.timeout(2):
            read = await anext(reads)
        assert read.uid == "0102030405"
        assert reader.rejected == 1  # the two bytes before the first frame


async def test_reader_reopens_after_unplug(tmp_path: Path) -> None:
    # A by-id style symlink that points at whichever pty is "plugged in".
    first = Pty()
    link = tmp_path / "usb-RDM6300-if00-port0"
    link.symlink_to(first.path)
    backoff = Backoff(initial=0.02, maximum=0.1, jitter=0.0)
    async with Rdm6300Reader("door", port=str(tmp_path / "usb-RDM*"), backoff=backoff) as reader:
        reads = aiter(reader.reads())
        first.write(frame("AAAAAAAAAA"))
        async with asyncio.timeout(2):
            assert (await anext(reads)).uid == "AAAAAAAAAA"

        first.close()  # unplugged
        next_read = asyncio.ensure_future(anext(reads))
        await asyncio.sleep(0.2)  # it tries, and fails, to reopen
        assert not next_read.done()

        second = Pty()  # plugged in again, as another device
        link.unlink()
        link.symlink_to(second.path)
        try:
            async with asyncio.timeout(3):
                while reader.reconnects == 0:
                    await asyncio.sleep(0.01)
            second.write(frame("BBBBBBBBBB"))
            async with asyncio.timeout(2):
                assert (await next_read).uid == "BBBBBBBBBB"
        finally:
            await reader.close()
            second.close()


async def test_close_ends_reads(pty_pair: Pty) -> None:
    reader = Rdm6300Reader("r", port=pty_pair.path)
    await reader.open()
    got: list[str] = []

    async def collect() -> None:
        async for read in reader.reads():
            got.append(read.uid)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.05)
    await reader.close()
    async with asyncio.timeout(2):
        await task
    assert got == []


async def test_missing_port_is_an_access_error(tmp_path: Path) -> None:
    with pytest.raises(AccessError, match="could not open"):
        await Rdm6300Reader("r", port=str(tmp_path / "ttyUSB9")).open()
    with pytest.raises(AccessError, match="serial/by-id"):
        await Rdm6300Reader("r", port=str(tmp_path / "usb-*")).open()


def test_resolve_port(tmp_path: Path) -> None:
    assert resolve_port("/dev/ttyAMA0") == "/dev/ttyAMA0"
    (tmp_path / "usb-a").touch()
    assert resolve_port(str(tmp_path / "usb-*")) == str(tmp_path / "usb-a")
    (tmp_path / "usb-b").touch()
    with pytest.raises(AccessError, match="exactly one"):
        resolve_port(str(tmp_path / "usb-*"))

"""Wiegand: the pure decoder (timing, parity, lengths) and the reader on MockFactory pins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Literal

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from gateway.access.errors import AccessError
from gateway.access.readers.base import RejectedFrame
from gateway.access.readers.wiegand import (
    WiegandDecoder,
    WiegandFrame,
    WiegandReader,
    wiegand_bits,
)

BIT_INTERVAL = 0.002  # 2 ms between pulses, as most readers send


def decode(
    bits: Iterable[int], decoder: WiegandDecoder | None = None, start: float = 100.0
) -> list[WiegandFrame | RejectedFrame]:
    """Feed ``bits`` 2 ms apart, then poll after the frame gap; everything that came out."""
    decoder = decoder or WiegandDecoder()
    out: list[WiegandFrame | RejectedFrame] = []
    t = start
    for bit in bits:
        result = decoder.feed(bit, t)
        if result is not None:
            out.append(result)
        t += BIT_INTERVAL
    result = decoder.poll(t + 0.05)
    if result is not None:
        out.append(result)
    return out


# -- the pure decoder -------------------------------------------------------------------


def test_26_bit_frame() -> None:
    # Facility 0xD4, card 0x1B81: the worked example from a reader manual.
    bits = [int(b) for b in "1" + "110101000001101110000001" + "0"]
    assert wiegand_bits(0xD41B81, 26) == bits
    [frame] = decode(bits)
    assert isinstance(frame, WiegandFrame)
    assert (frame.bits, frame.facility, frame.card, frame.uid) == (26, 0xD4, 0x1B81, "D41B81")


def test_34_bit_frame() -> None:
    bits = [int(b) for b in "1" + "10001001110101000001101110000001" + "1"]
    assert wiegand_bits(0x89D41B81, 34) == bits
    [frame] = decode(bits)
    assert isinstance(frame, WiegandFrame)
    assert (frame.bits, frame.facility, frame.card, frame.uid) == (34, None, 0x89D41B81, "89D41B81")


def test_uid_keeps_leading_zeros() -> None:
    [frame] = decode(wiegand_bits(0x00002A, 26))
    assert isinstance(frame, WiegandFrame) and frame.uid == "00002A"
    [frame] = decode(wiegand_bits(0x1, 34))
    assert isinstance(frame, WiegandFrame) and frame.uid == "00000001"


@pytest.mark.parametrize("flip", [0, 5, 12, 13, 20, 25])
def test_parity_failures(flip: int) -> None:
    bits = wiegand_bits(0xD41B81, 26)
    bits[flip] ^= 1
    [rejected] = decode(bits)
    assert isinstance(rejected, RejectedFrame) and "parity" in rejected.reason


@pytest.mark.parametrize("length", [1, 4, 8, 25, 27, 33, 35, 40])
def test_wrong_lengths(length: int) -> None:
    [rejected] = decode([1, 0] * (length // 2) + [1] * (length % 2))
    assert isinstance(rejected, RejectedFrame)
    assert rejected.reason.startswith(f"{length}-bit frame")


def test_format_restriction() -> None:
    decoder = WiegandDecoder(formats=(26,))
    [rejected] = decode(wiegand_bits(0x89D41B81, 34), decoder)
    assert isinstance(rejected, RejectedFrame) and "expected 26" in rejected.reason
    [frame] = decode(wiegand_bits(0xD41B81, 26), decoder, start=200.0)
    assert isinstance(frame, WiegandFrame)
    with pytest.raises(ValueError, match="unsupported"):
        WiegandDecoder(formats=(26, 37))


def test_noise_spike_spoils_the_frame() -> None:
    decoder = WiegandDecoder()
    bits = wiegand_bits(0xD41B81, 26)
    out = []
    t = 10.0
    for i, bit in enumerate(bits):
        out.append(decoder.feed(bit, t))
        if i == 10:
            # A spike 20 µs after a real pulse: e.g. D0 and D1 both pulled low.
            out.append(decoder.feed(1 - bit, t + 20e-6))
        t += BIT_INTERVAL
    out.append(decoder.poll(t + 0.05))
    [rejected] = [r for r in out if r is not None]
    assert isinstance(rejected, RejectedFrame) and "noise" in rejected.reason
    # The next frame is clean again.
    [frame] = decode(wiegand_bits(0xD41B81, 26), decoder, start=t + 1)
    assert isinstance(frame, WiegandFrame)


def test_a_lone_spike_before_a_frame_is_a_short_frame() -> None:
    decoder = WiegandDecoder()
    assert decoder.feed(0, 1.0) is None
    # 100 ms later the real frame: the spike is completed (and rejected) first.
    results = decode(wiegand_bits(0xD41B81, 26), decoder, start=1.1)
    assert isinstance(results[0], RejectedFrame) and results[0].reason.startswith("1-bit")
    assert isinstance(results[1], WiegandFrame)


def test_gap_mid_frame_discards_the_partial_frame() -> None:
    decoder = WiegandDecoder()
    bits = wiegand_bits(0xD41B81, 26)
    t = 5.0
    for bit in bits[:13]:
        assert decoder.feed(bit, t) is None
        t += BIT_INTERVAL
    # The reader stalls for 30 ms (longer than the 25 ms frame gap)...
    t += 0.030
    first = decoder.feed(bits[13], t)
    assert isinstance(first, RejectedFrame) and first.reason.startswith("13-bit")
    t += BIT_INTERVAL
    for bit in bits[14:]:
        assert decoder.feed(bit, t) is None
        t += BIT_INTERVAL
    rest = decoder.poll(t + 0.03)
    assert isinstance(rest, RejectedFrame) and rest.reason.startswith("13-bit")


def test_frame_gap_and_deadline() -> None:
    decoder = WiegandDecoder(frame_gap=0.025)
    assert decoder.deadline() is None
    t = 1.0
    for bit in wiegand_bits(0x123456, 26):
        decoder.feed(bit, t)
        t += BIT_INTERVAL
    last = t - BIT_INTERVAL
    assert decoder.deadline() == pytest.approx(last + 0.025)
    assert decoder.poll(last + 0.020) is None  # a slow reader may still send a bit
    frame = decoder.poll(last + 0.025)
    assert isinstance(frame, WiegandFrame) and frame.uid == "123456"
    assert decoder.deadline() is None
    assert decoder.poll(last + 1.0) is None


def test_back_to_back_frames_complete_on_the_next_bit() -> None:
    decoder = WiegandDecoder()
    out = []
    t = 0.0
    for data in (0x111111, 0x222222, 0x333333):
        for bit in wiegand_bits(data, 26):
            out.append(decoder.feed(bit, t))
            t += BIT_INTERVAL
        t += 0.1  # nobody polled in between
    out.append(decoder.poll(t))
    frames = [r for r in out if r is not None]
    assert [f.uid for f in frames if isinstance(f, WiegandFrame)] == ["111111", "222222", "333333"]


def test_endless_noise_is_one_rejection() -> None:
    decoder = WiegandDecoder()
    out = [decoder.feed(i % 2, i * 0.001) for i in range(500)]
    out.append(decoder.poll(1.0))
    [rejected] = [r for r in out if r is not None]
    assert isinstance(rejected, RejectedFrame) and rejected.reason.startswith("500-bit")


def test_encoder_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        wiegand_bits(1 << 24, 26)


formats: st.SearchStrategy[Literal[26, 34]] = st.sampled_from([26, 34])


@given(st.data())
def test_any_valid_frame_decodes_to_its_card_number(data: st.DataObject) -> None:
    bits = data.draw(formats)
    value = data.draw(st.integers(0, (1 << (bits - 2)) - 1))
    gaps = data.draw(st.lists(st.floats(0.0002, 0.020), min_size=bits - 1, max_size=bits - 1))
    decoder = WiegandDecoder()
    t = 50.0
    out = []
    for bit, gap in zip(wiegand_bits(value, bits), [*gaps, 0.0], strict=True):
        out.append(decoder.feed(bit, t))
        t += gap
    out.append(decoder.poll(t + 0.025))
    [frame] = [r for r in out if r is not None]
    assert isinstance(frame, WiegandFrame)
    assert frame.data == value and frame.bits == bits
    if bits == 26:
        assert (frame.facility, frame.card) == (value >> 16, value & 0xFFFF)
    else:
        assert frame.card == value
    assert int(frame.uid, 16) == value and len(frame.uid) == (bits - 2) // 4


@given(st.data())
def test_any_single_bit_flip_is_rejected(data: st.DataObject) -> None:
    bits = data.draw(formats)
    value = data.draw(st.integers(0, (1 << (bits - 2)) - 1))
    frame = wiegand_bits(value, bits)
    flip = data.draw(st.integers(0, bits - 1))
    frame[flip] ^= 1
    [result] = decode(frame)
    assert isinstance(result, RejectedFrame) and "parity" in result.reason


# -- the reader, through MockFactory pins with real timing ---------------------------------


def send(factory: MockFactory, bits: list[int], d0: int = 5, d1: int = 6) -> None:
    """What a reader does: a ~80 µs low pulse on D0 (0) or D1 (1), every ~2 ms."""
    lines = {0: factory.pin(d0), 1: factory.pin(d1)}
    for bit in bits:
        line = lines[bit]
        line.drive_low()
        time.sleep(80e-6)
        line.drive_high()
        time.sleep(BIT_INTERVAL)
    time.sleep(0.05)  # the lines stay idle between frames


async def test_reader_decodes_pulses_from_another_thread() -> None:
    factory = MockFactory()
    async with WiegandReader("door", d0_pin=5, d1_pin=6, pin_factory=factory) as reader:
        reads = aiter(reader.reads())
        sender = asyncio.create_task(asyncio.to_thread(send, factory, wiegand_bits(0xD41B81, 26)))
        async with asyncio.timeout(2):
            read = await anext(reads)
        await sender
        assert (read.uid, read.reader) == ("D41B81", "door")
        assert read.at <= time.monotonic()

        # A 34-bit card, then garbage: the garbage is counted, never raised.
        await asyncio.to_thread(send, factory, wiegand_bits(0x89D41B81, 34))
        async with asyncio.timeout(2):
            read = await anext(reads)
        assert read.uid == "89D41B81"
        bad = wiegand_bits(0x123456, 26)
        bad[3] ^= 1
        await asyncio.to_thread(send, factory, bad)
        await asyncio.to_thread(send, factory, wiegand_bits(0x654321, 26))
        async with asyncio.timeout(2):
            read = await anext(reads)
        assert read.uid == "654321"
        assert reader.rejected == 1


async def test_reader_suppresses_a_held_card() -> None:
    factory = MockFactory()
    async with WiegandReader(
        "door", d0_pin=5, d1_pin=6, pin_factory=factory, repeat_suppress=0.5
    ) as reader:
        got: list[str] = []

        async def collect() -> None:
            async for read in reader.reads():
                got.append(read.uid)

        collector = asyncio.create_task(collect())

        def hold_then_other() -> None:
            for _ in range(3):  # the card is held: the reader repeats it
                send(factory, wiegand_bits(0xABCDEF, 26))
                time.sleep(0.03)
            send(factory, wiegand_bits(0x000001, 26))

        await asyncio.to_thread(hold_then_other)
        await asyncio.sleep(0.1)
        await reader.close()
        async with asyncio.timeout(2):
            await collector
        assert got == ["ABCDEF", "000001"]


async def test_reader_26_only_rejects_34() -> None:
    factory = MockFactory()
    async with WiegandReader("r", d0_pin=5, d1_pin=6, bits=26, pin_factory=factory) as reader:
        reads = aiter(reader.reads())
        await asyncio.to_thread(send, factory, wiegand_bits(0x89D41B81, 34))
        await asyncio.to_thread(send, factory, wiegand_bits(0x00BEEF, 26))
        async with asyncio.timeout(2):
            read = await anext(reads)
        assert read.uid == "00BEEF"
        assert reader.rejected == 1


async def test_reader_pin_clash_and_same_pins() -> None:
    factory = MockFactory()
    led = LED(6, pin_factory=factory)
    with pytest.raises(AccessError, match="GPIO6"):
        await WiegandReader("r", d0_pin=5, d1_pin=6, pin_factory=factory).open()
    led.close()
    # D0 was released again when D1 failed.
    async with WiegandReader("r", d0_pin=5, d1_pin=6, pin_factory=factory):
        pass
    with pytest.raises(AccessError, match="different"):
        WiegandReader("r", d0_pin=5, d1_pin=5, pin_factory=factory)

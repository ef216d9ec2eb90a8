"""The simulated reader, and through it what every reader shares: normalising,
rejection counting, repeat suppression and the end of reads() on close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.access.readers.base import BadgeRead, normalise_uid
from gateway.access.readers.simulated import SimulatedReader


async def collect(reader: SimulatedReader) -> list[BadgeRead]:
    return [read async for read in reader.reads()]


async def test_present_reads_normalised() -> None:
    async with SimulatedReader() as reader:
        reads = aiter(reader.reads())
        reader.present("04:a1:b2:c3")
        async with asyncio.timeout(1):
            read = await anext(reads)
        assert (read.uid, read.reader) == ("04A1B2C3", "sim")
        assert reader.history == ["04:a1:b2:c3"]


async def test_garbage_is_counted_not_raised() -> None:
    reader = SimulatedReader(repeat_suppress=0)
    async with reader:
        task = asyncio.create_task(collect(reader))
        for text in ("not a card", "", "04A1B2C3", "12 34 zz", "0x12", "A" * 33, "BEEF"):
            reader.present(text)
        await asyncio.sleep(0.01)
    async with asyncio.timeout(1):
        reads = await task
    assert [r.uid for r in reads] == ["04A1B2C3", "BEEF"]
    assert reader.rejected == 5
    assert len(reader.history) == 7


async def test_held_card_reads_once() -> None:
    reader = SimulatedReader(repeat_suppress=0.2)
    async with reader:
        task = asyncio.create_task(collect(reader))
        for _ in range(5):  # held: repeats every 50 ms, each within 0.2 s of the last
            reader.present("04A1B2C3")
            await asyncio.sleep(0.05)
        reader.present("0BADCAFE")  # another card in between is its own read
        await asyncio.sleep(0.3)  # taken away for longer than repeat_suppress
        reader.present("04A1B2C3")
        await asyncio.sleep(0.01)
    async with asyncio.timeout(1):
        reads = await task
    assert [r.uid for r in reads] == ["04A1B2C3", "0BADCAFE", "04A1B2C3"]
    assert reads[0].at < reads[1].at < reads[2].at


async def test_close_ends_reads() -> None:
    reader = SimulatedReader()
    await reader.open()
    task = asyncio.create_task(collect(reader))
    await asyncio.sleep(0)
    await reader.close()
    async with asyncio.timeout(1):
        assert await task == []


async def test_logs_never_carry_the_uid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reader = SimulatedReader(repeat_suppress=0)
    async with reader:
        task = asyncio.create_task(collect(reader))
        reader.present("04A1B2C3")
        reader.present("04A1B2ZZ")
        await asyncio.sleep(0.01)
    await task
    assert any("rejected a frame" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert "04A1B2" not in record.getMessage().upper()


@pytest.mark.parametrize(
    ("text", "uid"),
    [
        ("04a1b2c3", "04A1B2C3"),
        (" 04-A1-B2-C3 ", "04A1B2C3"),
        ("04 A1 B2 C3", "04A1B2C3"),
        ("", None),
        ("04A1G2", None),
        ("0x04A1", None),
        ("A" * 32, "A" * 32),
        ("A" * 33, None),
    ],
)
def test_normalise_uid(text: str, uid: str | None) -> None:
    assert normalise_uid(text) == uid

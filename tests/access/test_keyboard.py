"""Keyboard-emulating USB readers: the keystroke decoder, and the reader's evdev edge."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.access.errors import AccessError
from gateway.access.readers.base import RejectedFrame
from gateway.access.readers.keyboard import (
    KEY_DOWN,
    KEY_HOLD,
    KEY_UP,
    KeyboardReader,
    KeystrokeDecoder,
)
from gateway.backoff import Backoff

KEY_INTERVAL = 0.008  # USB readers type a key every few milliseconds


def keys_for(text: str) -> list[str]:
    names = {c: f"KEY_{c}" for c in "0123456789ABCDEF"}
    return [names[c] for c in text] + ["KEY_ENTER"]


def typed(
    decoder: KeystrokeDecoder, keycodes: Iterable[str], start: float = 0.0, with_up: bool = True
) -> list[str | RejectedFrame]:
    """Press (and release) each key in turn, as evdev reports it."""
    out: list[str | RejectedFrame | None] = []
    t = start
    for keycode in keycodes:
        out.append(decoder.feed(keycode, t, KEY_DOWN))
        if with_up:
            out.append(decoder.feed(keycode, t + 0.002, KEY_UP))
        t += KEY_INTERVAL
    return [r for r in out if r is not None]


def test_hex_uid() -> None:
    assert typed(KeystrokeDecoder(), keys_for("04A1B2C3")) == ["04A1B2C3"]


def test_key_up_and_hold_are_ignored() -> None:
    decoder = KeystrokeDecoder()
    assert decoder.feed("KEY_0", 0.0, KEY_DOWN) is None
    assert decoder.feed("KEY_0", 0.001, KEY_HOLD) is None  # auto-repeat is not a second 0
    assert decoder.feed("KEY_0", 0.002, KEY_UP) is None
    assert decoder.feed("KEY_4", 0.003) is None  # key-down is the default
    assert decoder.feed("KEY_ENTER", 0.004, KEY_UP) is None  # only a key-down ends the UID
    assert decoder.feed("KEY_KPENTER", 0.005) == "04"


def test_shift_is_ignored_and_keypad_digits_count() -> None:
    keys = ["KEY_LEFTSHIFT", "KEY_A", "KEY_KP1", "KEY_RIGHTSHIFT", "KEY_F", "KEY_KP9", "KEY_ENTER"]
    assert typed(KeystrokeDecoder(), keys) == ["A1F9"]


def test_non_hex_key_spoils_the_whole_uid() -> None:
    decoder = KeystrokeDecoder()
    keys = ["KEY_0", "KEY_4", "KEY_G", "KEY_1", "KEY_2", "KEY_ENTER"]
    [rejected] = typed(decoder, keys)
    assert isinstance(rejected, RejectedFrame) and "unexpected key" in rejected.reason
    # Not "12": the tail after the bad key is not a UID.
    assert typed(decoder, keys_for("0A"), start=1.0) == ["0A"]


def test_timeout_between_keys_abandons_the_partial_uid() -> None:
    decoder = KeystrokeDecoder(key_timeout=0.5)
    assert typed(decoder, ["KEY_0", "KEY_4", "KEY_A"]) == []  # Enter lost
    results = typed(decoder, keys_for("BEEF"), start=2.0)
    assert isinstance(results[0], RejectedFrame) and "abandoned" in results[0].reason
    assert results[1:] == ["BEEF"]


def test_a_slow_but_steady_reader_is_fine() -> None:
    decoder = KeystrokeDecoder(key_timeout=0.5)
    out = [decoder.feed(k, i * 0.4) for i, k in enumerate(keys_for("1234"))]
    assert [r for r in out if r is not None] == ["1234"]


def test_enter_alone_and_overlong() -> None:
    decoder = KeystrokeDecoder()
    [empty] = typed(decoder, ["KEY_ENTER"])
    assert isinstance(empty, RejectedFrame)
    [long] = typed(decoder, keys_for("A" * 40), start=1.0)
    assert isinstance(long, RejectedFrame) and "more than" in long.reason


def test_decimal_format() -> None:
    decoder = KeystrokeDecoder("decimal")
    # The number printed on the fob, 10 digits: the last four bytes of the EM4100 tag.
    assert typed(decoder, keys_for("0008844356")) == ["0086F444"]
    assert typed(decoder, keys_for("4294967295"), start=1.0) == ["FFFFFFFF"]
    assert typed(decoder, keys_for("4294967296"), start=2.0) == ["0100000000"]
    [rejected] = typed(decoder, keys_for("12A4"), start=3.0)
    assert isinstance(rejected, RejectedFrame) and "decimal" in rejected.reason


# -- the reader's edge: python-evdev ----------------------------------------------------


def test_missing_evdev_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # import evdev -> ImportError

    async def open_reader() -> None:
        await KeyboardReader("kbd", device="RFID Reader").open()

    with pytest.raises(AccessError, match="pip install evdev"):
        asyncio.run(open_reader())


# A stand-in for python-evdev, covering only the documented calls the reader makes:
# list_devices(), InputDevice(path) with .name/.grab()/.ungrab()/.close()/.async_read(),
# ecodes.EV_KEY / ecodes.KEY, and events with .type/.code/.value/.timestamp().

EV_KEY, EV_SYN, EV_MSC = 1, 0, 4
CODES = {11: "KEY_0", 2: "KEY_1", 5: "KEY_4", 30: "KEY_A", 48: "KEY_B", 28: "KEY_ENTER"}
CODES_BY_NAME = {name: code for code, name in CODES.items()}


@dataclass
class FakeEvent:
    type: int
    code: int
    value: int
    t: float

    def timestamp(self) -> float:
        return self.t


class FakeInputDevice:
    devices: dict[str, str] = {}
    opened: list[FakeInputDevice] = []

    def __init__(self, path: str) -> None:
        if path not in self.devices:
            raise FileNotFoundError(2, "No such file or directory", path)
        self.path = path
        self.name = self.devices[path]
        self.grabbed = False
        self.closed = False
        self._buffered: list[list[FakeEvent] | OSError] = []
        self._waiting: asyncio.Future[Iterator[FakeEvent]] | None = None
        FakeInputDevice.opened.append(self)

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        self.closed = True

    def async_read(self) -> asyncio.Future[Iterator[FakeEvent]]:
        future: asyncio.Future[Iterator[FakeEvent]] = asyncio.get_running_loop().create_future()
        self._waiting = future
        if self._buffered:
            self._deliver(self._buffered.pop(0))
        return future

    def _deliver(self, batch: list[FakeEvent] | OSError) -> None:
        future = self._waiting
        if future is None or future.done():
            self._buffered.append(batch)
            return
        self._waiting = None
        if isinstance(batch, OSError):
            future.set_exception(batch)
        else:
            future.set_result(iter(batch))

    def unplug(self) -> None:
        self._deliver(OSError(19, "No such device"))

    def type_text(self, text: str, start: float = 0.0) -> None:
        """Key down and up per character, with the SYN/MSC noise a real keyboard sends."""
        batch: list[FakeEvent] = []
        t = start
        for name in keys_for(text):
            code = CODES_BY_NAME[name]
            batch += [
                FakeEvent(EV_MSC, 4, 458791, t),
                FakeEvent(EV_KEY, code, 1, t),
                FakeEvent(EV_SYN, 0, 0, t),
                FakeEvent(EV_KEY, code, 0, t + 0.002),
            ]
            t += KEY_INTERVAL
        self._deliver(batch)


@pytest.fixture
def fake_evdev(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("evdev")
    module.InputDevice = FakeInputDevice  # type: ignore[attr-defined]
    module.list_devices = lambda: sorted(FakeInputDevice.devices)  # type: ignore[attr-defined]
    module.ecodes = types.SimpleNamespace(EV_KEY=EV_KEY, KEY=CODES)  # type: ignore[attr-defined]
    FakeInputDevice.devices = {
        "/dev/input/event0": "AT Translated Set 2 keyboard",
        "/dev/input/event5": "Sycreader RFID Technology Co., Ltd SYC ID&IC USB Reader",
    }
    FakeInputDevice.opened = []
    monkeypatch.setitem(sys.modules, "evdev", module)
    return module


def grabbed() -> list[FakeInputDevice]:
    return [d for d in FakeInputDevice.opened if d.grabbed]


def reader_device() -> FakeInputDevice:
    [device] = grabbed()
    return device


async def test_reader_by_name_grabs_and_reads(fake_evdev: Any) -> None:
    name = "Sycreader RFID Technology Co., Ltd SYC ID&IC USB Reader"
    async with KeyboardReader("desk", device=name) as reader:
        device = reader_device()
        assert device.path == "/dev/input/event5"
        assert all(d.closed for d in FakeInputDevice.opened if d is not device)
        reads = aiter(reader.reads())
        device.type_text("04AB")
        async with asyncio.timeout(2):
            read = await anext(reads)
        assert (read.uid, read.reader) == ("04AB", "desk")
    assert device.closed and not device.grabbed


async def test_reader_by_path_decimal(fake_evdev: Any) -> None:
    async with KeyboardReader("desk", device="/dev/input/event5", format="decimal") as reader:
        reads = aiter(reader.reads())
        reader_device().type_text("0001")
        async with asyncio.timeout(2):
            assert (await anext(reads)).uid == "00000001"


async def test_reader_unknown_name_lists_devices(fake_evdev: Any) -> None:
    with pytest.raises(AccessError, match="AT Translated Set 2 keyboard"):
        await KeyboardReader("desk", device="Some Other Reader").open()


async def test_close_ends_reads(fake_evdev: Any) -> None:
    reader = KeyboardReader("desk", device="/dev/input/event5")
    await reader.open()

    async def collect() -> list[str]:
        return [read.uid async for read in reader.reads()]

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.01)
    await reader.close()
    async with asyncio.timeout(2):
        assert await task == []


async def test_unplugged_reader_is_found_again(fake_evdev: Any) -> None:
    reader = KeyboardReader(
        "desk", device="/dev/input/event5", backoff=Backoff(initial=0.01, jitter=0.0)
    )
    async with reader:
        reads = aiter(reader.reads())
        first = reader_device()
        del FakeInputDevice.devices["/dev/input/event5"]
        first.unplug()
        next_read = asyncio.ensure_future(anext(reads))
        await asyncio.sleep(0.1)
        assert not next_read.done() and first.closed
        FakeInputDevice.devices["/dev/input/event5"] = "USB Reader"
        async with asyncio.timeout(2):
            while not grabbed():
                await asyncio.sleep(0.01)
        assert reader_device() is not first
        reader_device().type_text("B0")
        async with asyncio.timeout(2):
            assert (await next_read).uid == "B0"

"""Interlocks on MockFactory pins: the switch moves, the loop hears about it."""

from __future__ import annotations

import asyncio
import threading

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from gateway.access.errors import AccessError
from gateway.access.interlocks import Interlock, InterlockChange, InterlockConfig


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


async def next_change(lid: Interlock) -> InterlockChange:
    async with asyncio.timeout(2):
        return await anext(aiter(lid.changes()))


async def test_lid_with_pull_up_opens_high(factory: MockFactory) -> None:
    # Normally-closed switch to ground, internal pull-up: lid shut = low, lid up = high.
    cfg = InterlockConfig(name="lid", pin=5, kind="lid")
    pin = factory.pin(5)
    async with Interlock(cfg, pin_factory=factory) as lid:
        pin.drive_low()  # lid shut
        assert not lid.tripped
        change = await next_change(lid)
        assert (change.name, change.kind, change.tripped) == ("lid", "lid", False)
        pin.drive_high()  # lid up
        change = await next_change(lid)
        assert (change.name, change.kind, change.tripped) == ("lid", "lid", True)
        assert lid.tripped


async def test_starts_tripped_when_the_wire_is_broken(factory: MockFactory) -> None:
    # Nothing drives the pin: the pull-up reads high, which is "open".
    cfg = InterlockConfig(name="door", pin=6, kind="door")
    async with Interlock(cfg, pin_factory=factory) as door:
        assert door.tripped


@pytest.mark.parametrize(
    ("pull_up", "open_means", "open_level"),
    [
        (True, "active_high", "high"),
        (True, "active_low", "low"),
        (False, "active_high", "high"),
        (False, "active_low", "low"),
        (None, "active_high", "high"),
        (None, "active_low", "low"),
    ],
)
async def test_open_means(
    factory: MockFactory, pull_up: bool | None, open_means: str, open_level: str
) -> None:
    cfg = InterlockConfig.model_validate(
        {"name": "estop", "pin": 13, "kind": "estop", "pull_up": pull_up, "open_means": open_means}
    )
    pin = factory.pin(13)
    async with Interlock(cfg, pin_factory=factory) as estop:
        drive_open = pin.drive_high if open_level == "high" else pin.drive_low
        drive_closed = pin.drive_low if open_level == "high" else pin.drive_high
        drive_closed()
        assert not estop.tripped
        drive_open()
        assert estop.tripped
        changes = []
        async with asyncio.timeout(2):
            async for change in estop.changes():
                changes.append(change.tripped)
                if change.tripped:
                    break
        assert changes[-1] is True


async def test_changes_from_gpiozero_thread_reach_the_loop(factory: MockFactory) -> None:
    cfg = InterlockConfig(name="lid", pin=5)
    pin = factory.pin(5)
    async with Interlock(cfg, pin_factory=factory) as lid:
        pin.drive_low()  # opening applied the pull-up (lid up); shut it
        assert not (await next_change(lid)).tripped
        loop_thread = threading.get_ident()
        seen_on: list[int] = []

        def flip() -> None:
            for _ in range(3):
                pin.drive_high()
                pin.drive_low()

        flipper = threading.Thread(target=flip)
        flipper.start()
        flipper.join()
        tripped = []
        async with asyncio.timeout(2):
            async for change in lid.changes():
                seen_on.append(threading.get_ident())
                tripped.append(change.tripped)
                if len(tripped) == 6:
                    break
        assert tripped == [True, False] * 3
        assert set(seen_on) == {loop_thread}


async def test_changes_end_when_closed(factory: MockFactory) -> None:
    lid = Interlock(InterlockConfig(name="lid", pin=5), pin_factory=factory)
    await lid.open()

    async def collect() -> list[InterlockChange]:
        return [change async for change in lid.changes()]

    task = asyncio.create_task(collect())
    await asyncio.sleep(0)
    await lid.close()
    async with asyncio.timeout(2):
        assert await task == []
    with pytest.raises(AccessError, match="not open"):
        _ = lid.tripped


async def test_pin_clash(factory: MockFactory) -> None:
    async with Interlock(InterlockConfig(name="lid", pin=5), pin_factory=factory):
        with pytest.raises(AccessError, match="door"):
            await Interlock(InterlockConfig(name="door", pin=5), pin_factory=factory).open()


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        InterlockConfig.model_validate({"name": "lid", "pin": 5, "kind": "window"})
    with pytest.raises(ValidationError):
        InterlockConfig.model_validate({"name": "lid", "pin": 5, "colour": "red"})

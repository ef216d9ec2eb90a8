"""Relay, lights and buzzer on MockFactory pins: what the pins saw, and when."""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
import time
import types

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from gateway.access.errors import AccessError
from gateway.access.outputs import (
    Buzzer,
    Indicator,
    IndicatorKind,
    Outputs,
    OutputsConfig,
    Relay,
)
from gateway.access.pins import make_pin_factory


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


def states(factory: MockFactory, pin: int) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def level(factory: MockFactory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


def test_mock_pin_factory() -> None:
    assert isinstance(make_pin_factory("mock"), MockFactory)


def test_lgpio_not_installed_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", None)  # import -> ImportError
    with pytest.raises(AccessError, match=r"could not open the GPIO chip.*'pi' extra"):
        make_pin_factory("lgpio")


def test_lgpio_chip_failure_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_chip() -> None:
        raise OSError(13, "Permission denied", "/dev/gpiochip0")

    fake = types.ModuleType("gpiozero.pins.lgpio")
    fake.LGPIOFactory = no_chip  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", fake)
    with pytest.raises(AccessError, match=r"could not open the GPIO chip: .*gpio group"):
        make_pin_factory("lgpio")


def test_relay_is_off_at_power_on(factory: MockFactory) -> None:
    relay = Relay(17, pin_factory=factory)
    assert not relay.is_on
    assert states(factory, 17) == [False]  # never went high, not even briefly
    relay.on()
    assert relay.is_on and level(factory, 17)
    relay.off()
    assert not relay.is_on and not level(factory, 17)
    relay.close()


def test_active_low_relay_off_means_pin_high(factory: MockFactory) -> None:
    relay = Relay(17, active_high=False, pin_factory=factory)
    assert not relay.is_on
    assert level(factory, 17)  # off: driven high
    assert False not in states(factory, 17)[1:]  # was never driven low (on) during set-up
    relay.on()
    assert not level(factory, 17)
    relay.close()
    assert level(factory, 17) or factory.pin(17).function == "input"
    assert states(factory, 17)[-1] is True  # the last thing driven was "off"


def test_close_turns_the_relay_off_first(factory: MockFactory) -> None:
    relay = Relay(17, pin_factory=factory)
    relay.on()
    relay.close()
    assert states(factory, 17)[-1] is False
    assert relay.closed and not relay.is_on
    relay.close()  # twice is fine
    relay.off()  # a closed relay is off; off() is harmless
    with pytest.raises(AccessError, match="closed"):
        relay.on()


def test_dropping_the_relay_turns_it_off(factory: MockFactory) -> None:
    relay = Relay(17, pin_factory=factory)
    relay.on()
    del relay
    gc.collect()
    assert states(factory, 17)[-1] is False
    Relay(17, pin_factory=factory).close()  # and the pin is free again


def test_pin_clash_is_an_access_error(factory: MockFactory) -> None:
    relay = Relay(17, pin_factory=factory)
    with pytest.raises(AccessError, match="GPIO17"):
        Relay(17, pin_factory=factory)
    relay.close()


def test_indicator_steady_patterns(factory: MockFactory) -> None:
    lights = Indicator(22, 27, 23, pin_factory=factory)
    lights.show("locked")
    assert (level(factory, 22), level(factory, 27), level(factory, 23)) == (False, True, False)
    lights.show("authorised")
    assert (level(factory, 22), level(factory, 27), level(factory, 23)) == (True, False, False)
    lights.show("off")
    assert (level(factory, 22), level(factory, 27), level(factory, 23)) == (False, False, False)
    lights.close()


def test_in_use_blinks_green(factory: MockFactory) -> None:
    lights = Indicator(22, 27, pin_factory=factory)
    factory.pin(22).clear_states()
    lights.show("in_use")
    time.sleep(0.7)
    seen = states(factory, 22)
    assert seen[:3] == [False, True, False]  # on for half a second, then off
    assert not level(factory, 27)
    lights.close()


def test_lockout_blinks_red_and_amber(factory: MockFactory) -> None:
    lights = Indicator(22, 27, 23, pin_factory=factory)
    lights.show("lockout")
    time.sleep(0.7)
    for pin in (27, 23):
        assert states(factory, pin)[:3] == [False, True, False]
    assert states(factory, 22) == [False]
    lights.close()


def shown(lights: Indicator) -> IndicatorKind:
    return lights.kind


def test_denied_is_a_moment_then_back(factory: MockFactory) -> None:
    lights = Indicator(22, 27, pin_factory=factory, denied_seconds=0.3)
    lights.show("authorised")
    lights.show("denied")
    assert shown(lights) == "denied"
    time.sleep(0.25)
    assert states(factory, 27).count(True) >= 2  # red flashing fast
    assert not level(factory, 22)
    time.sleep(0.25)
    assert shown(lights) == "authorised"
    assert level(factory, 22) and not level(factory, 27)
    lights.close()


def test_show_during_denied_wins(factory: MockFactory) -> None:
    lights = Indicator(22, 27, pin_factory=factory, denied_seconds=0.2)
    lights.show("locked")
    lights.show("denied")
    lights.show("in_use")
    time.sleep(0.3)
    assert lights.kind == "in_use"
    lights.close()


def on_durations(factory: MockFactory, pin: int) -> list[float]:
    """How long each high period lasted, from MockPin.states."""
    history = factory.pin(pin).states
    return [nxt.timestamp for cur, nxt in itertools.pairwise(history) if cur.state]


async def test_buzzer_patterns(factory: MockFactory) -> None:
    buzzer = Buzzer(18, pin_factory=factory)
    await buzzer.play("granted")
    assert states(factory, 18) == [False, True, False, True, False]
    assert all(0.07 < d < 0.2 for d in on_durations(factory, 18))

    factory.pin(18).clear_states()
    await buzzer.play("denied")
    assert states(factory, 18) == [False, True, False]
    assert 0.55 < on_durations(factory, 18)[0] < 0.8

    factory.pin(18).clear_states()
    await buzzer.play("induction")
    short, long, short2 = on_durations(factory, 18)
    assert long > 2 * short and long > 2 * short2
    buzzer.close()


async def test_buzzer_cancelled_is_silent(factory: MockFactory) -> None:
    buzzer = Buzzer(18, pin_factory=factory)
    task = asyncio.create_task(buzzer.play("warning"))
    await asyncio.sleep(0.05)
    assert level(factory, 18)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not level(factory, 18)
    buzzer.close()


async def test_buzzer_patterns_do_not_overlap(factory: MockFactory) -> None:
    buzzer = Buzzer(18, pin_factory=factory)
    await asyncio.gather(buzzer.play("granted"), buzzer.play("granted"))
    assert states(factory, 18) == [False] + [True, False] * 4
    buzzer.close()


async def test_outputs_from_config(factory: MockFactory) -> None:
    outputs = Outputs.from_config(OutputsConfig(relay_active_high=False), factory)
    assert outputs.indicator is not None and outputs.buzzer is not None
    assert level(factory, 17)  # active-low relay, off
    outputs.relay.on()
    outputs.show("authorised")
    await outputs.play("granted")
    outputs.close()
    assert states(factory, 17)[-1] is True  # off again
    assert not level(factory, 22)


async def test_outputs_optional_devices(factory: MockFactory) -> None:
    cfg = OutputsConfig(green_led=None, red_led=None, amber_led=None, buzzer=None)
    outputs = Outputs.from_config(cfg, factory)
    assert outputs.indicator is None and outputs.buzzer is None
    outputs.show("denied")  # nothing fitted: nothing happens
    await outputs.play("denied")
    outputs.close()


def test_outputs_need_a_relay(factory: MockFactory) -> None:
    with pytest.raises(AccessError, match="relay_pin"):
        Outputs.from_config(OutputsConfig(relay_pin=None), factory)


def test_outputs_clash_releases_the_relay(factory: MockFactory) -> None:
    with pytest.raises(AccessError, match="GPIO17"):
        Outputs.from_config(OutputsConfig(relay_pin=17, buzzer=17), factory)
    Relay(17, pin_factory=factory).close()  # the relay pin was released again


def test_outputs_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        OutputsConfig(relay_pin=40)
    with pytest.raises(ValidationError):
        OutputsConfig.model_validate({"relay": 17})
    cfg = OutputsConfig()
    with pytest.raises(ValidationError):
        cfg.relay_pin = 5

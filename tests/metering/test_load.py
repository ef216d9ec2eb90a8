"""The simulated machine's power draw (what every meter twin reports)."""

from __future__ import annotations

import pytest

from gateway.metering.config import SimulatedLoadConfig
from gateway.metering.meters.load import EnergyCounter, SimulatedLoad


def test_idle_heating_holding_and_moving() -> None:
    load = SimulatedLoad(SimulatedLoadConfig())
    assert load.power_w() == pytest.approx(8.0)
    load.observe("idle", {"B": (25.0, 60.0)})  # bed heating at full power
    assert load.power_w() == pytest.approx(8.0 + 220.0)
    load.observe("idle", {"B": (59.5, 60.0)})  # at temperature: holding duty
    assert load.power_w() == pytest.approx(8.0 + 220.0 * 0.35)
    load.observe("printing", {"B": (60.0, 60.0), "T0": (150.0, 210.0)})
    assert load.power_w() == pytest.approx(8.0 + 77.0 + 40.0 + 40.0)
    load.observe("idle", {"B": (60.0, 0.0), "T0": (200.0, None)})  # heaters off, cooling
    assert load.power_w() == pytest.approx(8.0)


def test_energy_counter_is_the_exact_integral() -> None:
    c = EnergyCounter()
    c.set_power(360.0, 0.0)
    c.set_power(720.0, 10.0)  # 1 Wh so far
    assert c.advance(15.0) == pytest.approx(2.0)
    c.reset(15.0)
    assert c.advance(20.0) == pytest.approx(1.0)

"""The power a simulated machine draws, following what the machine reports.

Used by every meter twin so that, in simulation, a job's kWh look like a real
one's: a base load (board, PSU, fans), each heater with a target at full power
while it heats and at ``holding_duty`` once within 2 °C, and the motors while a
job runs.  The model is pure: :meth:`SimulatedLoad.observe` takes the machine's
status, :meth:`SimulatedLoad.power_w` answers.  :class:`EnergyCounter` keeps
the exact integral of that piecewise-constant power, which tests compare with
what the gateway measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.metering.config import SimulatedLoadConfig

#: Machine states in which the motors draw power.
MOVING = frozenset({"printing", "running", "homing", "jog"})


@dataclass
class SimulatedLoad:
    config: SimulatedLoadConfig
    state: str = "idle"
    temperatures: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    extra_w: float = 0.0  # a test's fixed addition (a lamp left on)

    def observe(self, state: str, temperatures: dict[str, tuple[float, float | None]]) -> None:
        self.state = state
        self.temperatures = dict(temperatures)

    def power_w(self) -> float:
        c = self.config
        power = c.idle_w + self.extra_w
        for name, (actual, target) in self.temperatures.items():
            heater = c.heater_w.get(name)
            if heater is None or not target or target <= 0:
                continue
            duty = 1.0 if actual < target - 2.0 else c.holding_duty
            power += heater * duty
        if self.state in MOVING:
            power += c.motion_w
        return power


@dataclass
class EnergyCounter:
    """The exact energy of a power that changes only when told (Wh, float)."""

    power_w: float = 0.0
    energy_wh: float = 0.0
    since: float | None = None

    def advance(self, now: float) -> float:
        if self.since is not None and now > self.since:
            self.energy_wh += self.power_w * (now - self.since) / 3600.0
        self.since = now if self.since is None else max(self.since, now)
        return self.energy_wh

    def set_power(self, power_w: float, now: float) -> None:
        self.advance(now)
        self.power_w = power_w

    def reset(self, now: float) -> None:
        self.advance(now)
        self.energy_wh = 0.0

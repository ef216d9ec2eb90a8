"""Configuration of the metering capability (the ``[metering]`` section).

Example::

    [metering]
    enabled = true
    meter = "pzem"            # simulated | pzem | shelly_http | shelly_mqtt | tasmota
    port = "/dev/ttyUSB0"
    sample_interval = 2.0

    [metering.prices]
    per_busy_minute = 0.05
    per_kwh = 0.40
    per_gram = 0.03
    minimum_charge = 0.50
    free_minutes = { trainer = 600 }
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.metering.pricing import PriceRules
from gateway.metering.usage import BusySource, grams_per_mm

MeterKind = Literal["simulated", "pzem", "shelly_http", "shelly_mqtt", "tasmota"]


class MaterialConfig(BaseModel):
    """The filament the machine runs, to turn millimetres into grams."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    diameter_mm: float = Field(default=1.75, gt=0, le=5)
    density_g_cm3: float = Field(default=1.24, gt=0, le=25, description="PLA 1.24, PETG 1.27")

    @property
    def grams_per_mm(self) -> float:
        return grams_per_mm(self.diameter_mm, self.density_g_cm3)


class SimulatedLoadConfig(BaseModel):
    """The power the simulated machine draws, for the twins (``make run``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    idle_w: float = Field(default=8.0, ge=0)
    motion_w: float = Field(default=40.0, ge=0)
    heater_w: dict[str, float] = Field(
        default_factory=lambda: {"T0": 40.0, "T": 40.0, "B": 220.0},
        description="Heater name (as the firmware reports it) to its power at full duty",
    )
    holding_duty: float = Field(default=0.35, ge=0, le=1, description="Duty at temperature")
    voltage: float = Field(default=230.0, gt=0)


class MeteringConfig(BaseModel):
    """Which energy meter to read, how often, and the prices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    meter: MeterKind = "simulated"
    port: str = Field(default="/dev/ttyUSB0", description="PZEM-004T: its USB-serial adapter")
    address: int = Field(default=1, ge=1, le=247, description="PZEM-004T Modbus address")
    url: str = Field(default="", description="Shelly over HTTP: http://<address>")
    switch_id: int = Field(default=0, ge=0, le=15, description="Shelly switch channel")
    topic: str = Field(default="", description="Shelly MQTT prefix or Tasmota topic")
    sample_interval: float = Field(default=2.0, ge=0.05, le=300)
    read_timeout: float = Field(default=1.0, gt=0, le=30)
    max_gap: float = Field(default=30.0, gt=0, description="Seconds without a sample: estimated")
    max_power_w: float = Field(default=3680.0, gt=0, description="Readings above are rejected")
    busy_source: BusySource = "jobs"
    busy_threshold_w: float = Field(default=50.0, ge=0)
    material: MaterialConfig = MaterialConfig()
    prices: PriceRules = PriceRules()
    simulated_load: SimulatedLoadConfig = SimulatedLoadConfig()

    @model_validator(mode="after")
    def _meter_needs(self) -> MeteringConfig:
        if self.meter == "shelly_http" and not self.url.startswith(("http://", "https://")):
            raise ValueError("meter = 'shelly_http' needs url = 'http://<the Shelly's address>'")
        if self.meter in ("shelly_mqtt", "tasmota") and not self.topic:
            raise ValueError(f"meter = {self.meter!r} needs topic (the device's MQTT topic)")
        return self

"""Typed configuration, read once at start-up and passed down as frozen models.

Sources, later ones winning: the defaults here, the TOML file given to
``gateway run --config FILE``, then ``GATEWAY_<SECTION>__<KEY>`` environment
variables (for example ``GATEWAY_WEB__PORT=8081``).  Unknown keys are errors, so
a typo in the file stops start-up with the key's name instead of being ignored.
Nothing deeper in the code reads files or the environment.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.access.config import AccessConfig
from gateway.camera.config import CameraConfig
from gateway.ledger.config import LedgerConfig
from gateway.machine.resume_config import ResumeConfig
from gateway.metering.config import MeteringConfig
from gateway.slicer.config import SlicerConfig
from gateway.telemetry.config import TelemetryConfig
from gateway.web.site import SiteConfig


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and why."""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MachineConfig(Section):
    """What machine this gateway sits beside."""

    id: str = Field(
        default="machine-1",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Short id used in MQTT topics and records",
    )
    name: str = Field(default="Machine", min_length=1, max_length=80)
    kind: Literal["printer", "laser", "cnc"] = "printer"
    firmware: Literal["marlin", "grbl"] = "marlin"


class SerialConfig(Section):
    """The controller's serial port and protocol limits."""

    port: str = Field(
        default="/dev/ttyACM0", description="Device path, or a glob such as /dev/serial/by-id/usb-*"
    )
    baud: int = Field(default=115200, gt=0, le=4_000_000)
    rx_buffer_size: int = Field(
        default=127,
        ge=16,
        le=4096,
        description="Controller's serial RX buffer in bytes (GRBL: 127)",
    )
    max_line_length: int = Field(
        default=96, ge=16, le=255, description="Longest G-code line the firmware accepts"
    )
    response_timeout: float = Field(
        default=10.0, gt=0, description="Seconds without a reply before recovery"
    )
    status_interval: float = Field(
        default=0.2, gt=0, description="GRBL status poll / Marlin temperature interval"
    )
    reconnect_max_delay: float = Field(default=30.0, gt=0)


#: Longest line each firmware accepts by default: Marlin's MAX_CMD_SIZE is 96;
#: GRBL 1.1's LINE_BUFFER_SIZE is 80 (79 characters after it drops spaces).
DEFAULT_LINE_LENGTH = {"marlin": 96, "grbl": 80}


def line_limit(serial: SerialConfig, firmware: str) -> int:
    return serial.max_line_length or DEFAULT_LINE_LENGTH[firmware]


class JobsConfig(Section):
    """Uploads and job records."""

    max_upload_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    history_limit: int = Field(default=1000, gt=0)
    cancel_gcode: list[str] | None = Field(
        default=None,
        description="Lines sent after a cancel; default turns heaters/spindle off per firmware",
    )


class StorageConfig(Section):
    state_dir: Path = Path("/var/lib/gateway")

    @property
    def database(self) -> Path:
        return self.state_dir / "gateway.db"

    @property
    def files_dir(self) -> Path:
        return self.state_dir / "files"


class WebConfig(Section):
    """The HTTP API, the touchscreen (kiosk) UI and the admin pages."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    kiosk_addresses: tuple[str, ...] = Field(
        default=("127.0.0.1", "::1"),
        description="Client addresses (or networks) treated as the machine's own touchscreen",
    )
    auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Refused tokens per client address per minute before it gets 429",
    )

    @field_validator("kiosk_addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for a in value:
            try:
                ipaddress.ip_network(a, strict=False)
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address or network") from None
        return value


class SimulationConfig(Section):
    """Run on simulated hardware (``make run``, tests)."""

    enabled: bool = False
    baud: int = Field(default=115200, gt=0)
    error_rate: float = Field(
        default=0.0, ge=0.0, le=0.5, description="Probability per line of a corrupted byte"
    )
    time_scale: float = Field(
        default=0.0, ge=0.0, description="Motion time factor; 0 executes moves instantly"
    )
    executed_log: Path | None = Field(
        default=None,
        description="Append each command the simulated controller executes to this file "
        "(tests of a daemon in another process read it)",
    )


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class GatewayConfig(BaseSettings):
    """The whole configuration.  Build it with :func:`load_config`."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    machine: MachineConfig = MachineConfig()
    serial: SerialConfig = SerialConfig()
    jobs: JobsConfig = JobsConfig()
    resume: ResumeConfig = ResumeConfig()
    storage: StorageConfig = StorageConfig()
    web: WebConfig = WebConfig()
    simulation: SimulationConfig = SimulationConfig()
    access: AccessConfig = AccessConfig(enabled=False)
    telemetry: TelemetryConfig = TelemetryConfig()
    camera: CameraConfig = CameraConfig()
    metering: MeteringConfig = MeteringConfig()
    ledger: LedgerConfig = LedgerConfig()
    slicer: SlicerConfig = SlicerConfig()
    logging: LoggingConfig = LoggingConfig()
    site: SiteConfig = SiteConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return (env_settings, init_settings)


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against config/gateway.example.toml)"
        given = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "missing") else f" (got {given!r})"
        lines.append(f"  {key}: {msg}{shown}")
    return "\n".join(lines)


#: Paths in the file that are taken relative to the file's folder when not absolute.
_RELATIVE_PATHS = (
    ("storage", "state_dir"),
    ("access", "site_secret_file"),
    ("access", "source", "path"),
)


def _resolve_relative(data: dict[str, Any], base: Path) -> None:
    for keys in _RELATIVE_PATHS:
        node: Any = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            value = Path(node[keys[-1]]).expanduser()
            if not value.is_absolute():
                node[keys[-1]] = str((base / value).resolve())


def load_config(path: Path | str | None = None, **overrides: Any) -> GatewayConfig:
    """Read ``path`` (TOML), apply ``GATEWAY_*`` environment overrides, validate.

    Relative paths (state dir, access list file, site secret file) are taken
    relative to the config file.
    Raises :class:`ConfigError` naming every bad key.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as err:
            raise ConfigError(f"config file {p} does not exist") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {p} is not valid TOML: {err}") from err
        _resolve_relative(data, p.parent)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return GatewayConfig(**data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from err

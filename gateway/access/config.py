"""Configuration of the access capability: the ``[access]`` section.

Example (TOML)::

    [access]
    gpio = "lgpio"
    site_secret_file = "/etc/gateway/site-secret"

    [[access.readers]]
    type = "wiegand"
    d0_pin = 5
    d1_pin = 6

    [access.outputs]
    relay_pin = 17

    [[access.interlocks]]
    name = "lid"
    pin = 23

    [access.source]
    type = "http"
    url = "https://members.example.org/api/access-list"
    poll_interval = 300

    [access.rules]
    badge_out = "after_job"
    remote_start = "with_session"   # or "never"; "always" drops the presence rule

The site secret is the HMAC key badge UIDs are hashed with; it is the same on
every gateway of a site and never leaves it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gateway.access.errors import AccessError
from gateway.access.interlocks import InterlockConfig
from gateway.access.outputs import OutputsConfig
from gateway.access.pins import PinFactoryKind
from gateway.access.policy_config import PolicyConfig
from gateway.access.readers.config import ReaderConfig, WiegandReaderConfig

MIN_SECRET_BYTES = 16


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


RemoteStart = Literal["with_session", "never", "always"]


class MachineRules(_Section):
    """When sessions end and what happens to the relay then (times in seconds)."""

    badge_out: Literal["after_job", "immediately"] = Field(
        default="after_job",
        description="after_job: never cut power mid-job on badge-out, idle or max session",
    )
    grace_period: float = Field(
        default=10.0, ge=0, le=600, description="Relay stays on after a session ends with no job"
    )
    idle_timeout: float = Field(
        default=900.0, gt=0, description="Session ends after this long without a job"
    )
    max_session: float = Field(default=8 * 3600.0, gt=0)
    trainer_window: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="After a trainer's badge, an uninducted "
        "member's badge within this time is inducted",
    )
    denied_rate_limit: int = Field(
        default=5,
        ge=1,
        description="Refusals per denied_window before badges are refused without being evaluated",
    )
    denied_window: float = Field(default=60.0, gt=0)
    remote_start: RemoteStart = Field(
        default="with_session",
        description="Starting or resuming a job from outside the kiosk (web API, MQTT): "
        "with_session needs a member badged in at the machine; never allows it only on "
        "the touchscreen; always allows it with nobody present (unsafe, logged at start-up)",
    )


#: Default cap on an access list, compressed or not (5,000 members take about 1 MB).
DEFAULT_LIST_MAX_BYTES = 8 * 1024 * 1024

_MaxBytes = Annotated[
    int,
    Field(
        ge=1024,
        le=128 * 1024 * 1024,
        description="Largest access list accepted, before and after decompression; a "
        "larger one is refused (the last good list keeps working)",
    ),
]


class FileSourceConfig(_Section):
    """An access list file, re-read when its modification time changes."""

    type: Literal["file"] = "file"
    path: Path
    check_interval: float = Field(default=5.0, gt=0)
    max_bytes: _MaxBytes = DEFAULT_LIST_MAX_BYTES


class HttpSourceConfig(_Section):
    """An access list polled over HTTP(S) with ETag / If-None-Match."""

    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://\S+$")
    poll_interval: float = Field(default=300.0, ge=5)
    token: SecretStr | None = Field(default=None, description="Sent as a Bearer token")
    timeout: float = Field(default=20.0, gt=0)
    max_bytes: _MaxBytes = DEFAULT_LIST_MAX_BYTES


class MqttSourceConfig(_Section):
    """An access list published retained on MQTT, delivered by the telemetry capability."""

    type: Literal["mqtt"] = "mqtt"
    max_bytes: _MaxBytes = DEFAULT_LIST_MAX_BYTES


AccessSourceConfig = Annotated[
    FileSourceConfig | HttpSourceConfig | MqttSourceConfig, Field(discriminator="type")
]


class AccessConfig(_Section):
    """Badge access control for the machine."""

    enabled: bool = True
    gpio: PinFactoryKind = "lgpio"
    site_secret_file: Path | None = None
    site_secret: SecretStr | None = None
    readers: list[ReaderConfig] = Field(default_factory=list)
    outputs: OutputsConfig = OutputsConfig()
    interlocks: list[InterlockConfig] = Field(default_factory=list)
    source: AccessSourceConfig = FileSourceConfig(path=Path("/var/lib/gateway/access-list.json"))
    rules: MachineRules = MachineRules()
    policy: PolicyConfig = PolicyConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.enabled:
            return self
        if (self.site_secret_file is None) == (self.site_secret is None):
            raise ValueError(
                "set exactly one of site_secret_file (preferred) or site_secret: the key "
                "badge UIDs are hashed with, the same on every gateway of the site"
            )
        if (
            self.site_secret is not None
            and len(self.site_secret.get_secret_value().encode()) < MIN_SECRET_BYTES
        ):
            raise ValueError(f"site_secret must be at least {MIN_SECRET_BYTES} bytes long")
        if not self.readers:
            raise ValueError("access is enabled but no [[access.readers]] is configured")
        for what, names in (
            ("reader", [r.name for r in self.readers]),
            ("interlock", [i.name for i in self.interlocks]),
        ):
            twice = sorted(n for n, c in Counter(names).items() if c > 1)
            if twice:
                raise ValueError(f"two {what}s are named {twice[0]!r}; names must be unique")
        pins: list[tuple[str, int]] = [
            (f"outputs.{key}", pin)
            for key in ("relay_pin", "green_led", "red_led", "amber_led", "buzzer")
            if (pin := getattr(self.outputs, key)) is not None
        ]
        pins += [(f"interlock {i.name!r}", i.pin) for i in self.interlocks]
        for r in self.readers:
            if isinstance(r, WiegandReaderConfig):
                pins += [(f"reader {r.name!r} d0", r.d0_pin), (f"reader {r.name!r} d1", r.d1_pin)]
        seen: dict[int, str] = {}
        for owner, pin in pins:
            if pin in seen:
                raise ValueError(f"GPIO{pin} is used by both {seen[pin]} and {owner}")
            seen[pin] = owner
        return self

    @property
    def simulated_readers(self) -> list[str]:
        return [r.name for r in self.readers if r.type == "simulated"]


class SiteSecretError(AccessError):
    """The site secret cannot be read or is too short."""


def load_site_secret(cfg: AccessConfig) -> bytes:
    """The HMAC key: ``site_secret``, or the stripped contents of ``site_secret_file``.

    Blocking (reads a file): call it from a thread or at start-up.
    """
    if cfg.site_secret is not None:
        return cfg.site_secret.get_secret_value().encode()
    if cfg.site_secret_file is None:
        raise SiteSecretError("no site secret is configured (access.site_secret_file)")
    try:
        secret = cfg.site_secret_file.read_bytes().strip()
    except OSError as err:
        raise SiteSecretError(
            f"cannot read the site secret {cfg.site_secret_file}: {err.strerror}; "
            "check the path and that the gateway user may read it (chmod 640)"
        ) from err
    if len(secret) < MIN_SECRET_BYTES:
        raise SiteSecretError(
            f"the site secret in {cfg.site_secret_file} is shorter than {MIN_SECRET_BYTES} "
            "bytes; generate one with `openssl rand -hex 32`"
        )
    return secret

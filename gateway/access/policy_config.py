"""Configuration of the access policy a space runs: the ``[access.policy]`` section.

Example (TOML)::

    [access.policy]
    default_level = "independent"      # the level of a plain "user" induction
    supervision_window = 1800          # s: a supervisor's badge counts this long
    supervision_grace = 120            # s: after the supervisor leaves, then the session ends
    lone_working = true                # "this machine needs two members in the space"
    nearby_gateways = ["laser-2"]      # their presence counts for supervision
    booking_grace = 900                # s: an unused booking is released after this

    [[access.policy.levels]]           # lowest first
    name = "supervised"
    supervised = true
    [[access.policy.levels]]
    name = "independent"
    [[access.policy.levels]]
    name = "trainer"

    [access.policy.expiry]
    rule = "disuse"                    # never | duration | date | disuse
    days = 180
    warn_days = 14

    [access.policy.grants]
    webhook = "https://members.example.org/api/inductions"

Contradictions (a supervised level with no unsupervised level above it, a
default level that is not defined, an expiry rule without its number) are
refused when the configuration is loaded, naming the entry to fix.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelConfig(_Section):
    """One induction level; ``supervised`` levels need a higher-level member present."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    supervised: bool = False


class ExpiryConfig(_Section):
    """When an induction on this machine lapses.

    ``duration``: ``days`` after the induction; ``date``: on ``date`` for everyone
    inducted before it; ``disuse``: after ``days`` without a session on this machine.
    """

    rule: Literal["never", "duration", "date", "disuse"] = "never"
    days: int | None = Field(default=None, ge=1, le=36500)
    date: dt.date | None = None
    warn_days: int = Field(default=14, ge=0, le=365)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.rule in ("duration", "disuse") and self.days is None:
            raise ValueError(f"access.policy.expiry: rule {self.rule!r} needs days = <number>")
        if self.rule == "date" and self.date is None:
            raise ValueError("access.policy.expiry: rule 'date' needs date = YYYY-MM-DD")
        return self


class GrantsConfig(_Section):
    """Where inductions granted at the machine are pushed (MQTT always, via telemetry)."""

    webhook: str | None = Field(default=None, pattern=r"^https?://\S+$")
    token: SecretStr | None = Field(default=None, description="Sent as a Bearer token")
    timeout: float = Field(default=10.0, gt=0)
    retry_max: float = Field(default=600.0, ge=1)
    resend_interval: float = Field(
        default=3600.0, ge=10, description="Re-announce unconfirmed grants over MQTT this often"
    )


DEFAULT_LEVELS = (
    LevelConfig(name="supervised", supervised=True),
    LevelConfig(name="independent"),
    LevelConfig(name="trainer"),
)


class PolicyConfig(_Section):
    levels: tuple[LevelConfig, ...] = DEFAULT_LEVELS
    default_level: str = "independent"
    supervision_window: float = Field(default=1800.0, gt=0, le=24 * 3600)
    supervision_grace: float = Field(default=120.0, ge=0, le=3600)
    lone_working: bool = False
    space_presence: float = Field(
        default=12 * 3600.0, gt=0, description="How long a door reader's 'in' counts, in s"
    )
    nearby_gateways: tuple[str, ...] = ()
    booking_grace: float = Field(default=900.0, ge=0, le=24 * 3600)
    expiry: ExpiryConfig = ExpiryConfig()
    grants: GrantsConfig = GrantsConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.levels:
            raise ValueError("access.policy.levels: define at least one level")
        names = [lv.name for lv in self.levels]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"access.policy.levels[{i}]: level {name!r} is defined twice")
        for i, lv in enumerate(self.levels):
            if lv.supervised and not any(not h.supervised for h in self.levels[i + 1 :]):
                raise ValueError(
                    f"access.policy.levels[{i}]: level {lv.name!r} needs supervision but no "
                    "higher level without supervision is defined, so nobody could supervise it; "
                    "add one above it (e.g. 'independent') or set supervised = false"
                )
        if self.default_level not in names:
            raise ValueError(
                f"access.policy.default_level: {self.default_level!r} is not one of the "
                f"levels {names}"
            )
        return self

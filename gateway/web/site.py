"""``[site]``: facts about the makerspace itself that every screen shares.

Only the time zone for now: members read dates in the space's local time (an
access list's "valid until 2021-12-31" must not read as 2022-01-01 on a
screen), whatever zone the Pi or an admin's laptop is set to.
"""

from __future__ import annotations

import zoneinfo

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SiteConfig(BaseModel):
    """The space's own settings, shown on the touchscreen and the admin page."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str | None = Field(
        default=None,
        description=(
            "IANA time zone the space's dates are shown in, e.g. Europe/London; "
            "unset: the zone of the screen showing the page"
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone name; use one like Europe/London "
                "(see `timedatectl list-timezones`)"
            ) from None
        return value

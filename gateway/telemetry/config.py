"""Configuration of the MQTT telemetry capability (the ``[telemetry]`` section)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: A topic level may not contain wildcards; a prefix or topic has no empty levels.
_WILDCARDS = re.compile(r"[+#\x00]")


def _check_topic(value: str, what: str) -> str:
    if not value or value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(f"{what} needs non-empty levels without a leading or trailing '/'")
    if _WILDCARDS.search(value):
        raise ValueError(f"{what} may not contain the MQTT wildcards '+' or '#'")
    return value


class TelemetryConfig(BaseModel):
    """Where to publish the machine's state and events, and how to log in.

    ``prefix`` may contain ``{machine_id}``, replaced with the machine's id when
    the service starts.  ``client_id`` defaults to ``gateway-<machine id>``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = Field(default=False, description="Use TLS (usually with port 8883)")
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the broker")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="Private key of cert_file")
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    prefix: str = "gateway/{machine_id}"
    keepalive: int = Field(default=30, ge=5, le=3600, description="Seconds between pings")
    telemetry_interval: float = Field(
        default=10.0, ge=0, description="Seconds between telemetry samples; 0 turns them off"
    )
    home_assistant: bool = Field(default=True, description="Publish Home Assistant discovery")
    discovery_prefix: str = "homeassistant"
    outbox_max_events: int = Field(default=100_000, ge=10, le=10_000_000)
    outbox_max_age: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    access_list_topic: str | None = Field(
        default=None, description="Retained topic the space publishes its access list on"
    )

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        return _check_topic(value, "prefix")

    @field_validator("discovery_prefix")
    @classmethod
    def _valid_discovery_prefix(cls, value: str) -> str:
        return _check_topic(value, "discovery_prefix")

    @field_validator("access_list_topic")
    @classmethod
    def _valid_access_list_topic(cls, value: str | None) -> str | None:
        return None if value is None else _check_topic(value, "access_list_topic")

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> TelemetryConfig:
        if not self.tls:
            for name in ("ca_file", "cert_file", "key_file"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is set but tls is false; set tls = true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together; set both or neither")
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self

    def topic_prefix(self, machine_id: str) -> str:
        """The prefix with ``{machine_id}`` filled in."""
        return _check_topic(self.prefix.replace("{machine_id}", machine_id), "prefix")

    def resolved_client_id(self, machine_id: str) -> str:
        return self.client_id or f"gateway-{machine_id}"

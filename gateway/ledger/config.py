"""Configuration of the usage ledger (the ``[ledger]`` section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr


class WebhookConfig(BaseModel):
    """An optional HTTP endpoint of the space's membership system that imports usage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: HttpUrl | None = Field(default=None, description="POSTed each ledger record as JSON")
    secret: SecretStr | None = Field(
        default=None, description="Sent as 'Authorization: Bearer <secret>'"
    )
    timeout: float = Field(default=10.0, gt=0, le=120)
    max_delay: float = Field(default=300.0, gt=0, description="Longest wait between retries")


class LedgerConfig(BaseModel):
    """The tamper-evident record of closed sessions and jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    key_file: str = Field(
        default="ledger-ed25519.pem",
        description="Signing key, relative to the state folder; made at first start",
    )
    webhook: WebhookConfig = WebhookConfig()

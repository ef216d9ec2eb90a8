"""The [telemetry] config section: defaults and the mistakes it refuses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.telemetry.config import TelemetryConfig


def test_defaults() -> None:
    config = TelemetryConfig()
    assert config.enabled is False
    assert (config.host, config.port, config.keepalive) == ("localhost", 1883, 30)
    assert config.topic_prefix("laser-1") == "gateway/laser-1"
    assert config.resolved_client_id("laser-1") == "gateway-laser-1"
    assert config.outbox_max_age == timedelta(days=7)
    assert config.outbox_max_events == 100_000
    assert config.access_list_topic is None


def test_values_from_toml_types() -> None:
    config = TelemetryConfig.model_validate(
        {
            "outbox_max_age": 3600,
            "password": "s3cret",
            "username": "laser-1",
            "prefix": "space/{machine_id}/gw",
        }
    )
    assert config.outbox_max_age == timedelta(hours=1)
    assert config.password is not None and config.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.topic_prefix("m1") == "space/m1/gw"


@pytest.mark.parametrize(
    "values",
    [
        {"prefix": "gateway/#"},
        {"prefix": "/gateway"},
        {"access_list_topic": "space/+/list"},
        {"ca_file": Path("/etc/ca.pem")},
        {"tls": True, "cert_file": Path("/etc/c.pem")},
        {"password": "x"},
        {"port": 0},
        {"hostname": "typo"},
    ],
)
def test_mistakes_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TelemetryConfig.model_validate(values)


def test_config_is_frozen() -> None:
    config = TelemetryConfig()
    with pytest.raises(ValidationError):
        config.port = 1

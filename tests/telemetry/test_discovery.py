"""Home Assistant discovery configs (pure)."""

from __future__ import annotations

import json

from gateway.telemetry.discovery import discovery_messages
from gateway.telemetry.payloads import Topics


def test_one_retained_config_per_entity_with_device_and_availability() -> None:
    messages = discovery_messages(
        discovery_prefix="homeassistant",
        topics=Topics("gateway/m1"),
        machine_id="m1",
        machine_name="Prusa MK4",
        version="1.2.3",
    )
    topics = [t for t, _ in messages]
    assert len(topics) == len(set(topics))
    expected = {
        "homeassistant/sensor/m1/state/config",
        "homeassistant/sensor/m1/job_progress/config",
        "homeassistant/sensor/m1/job_eta/config",
        "homeassistant/sensor/m1/job_file/config",
        "homeassistant/sensor/m1/nozzle_temperature/config",
        "homeassistant/sensor/m1/bed_temperature/config",
        "homeassistant/binary_sensor/m1/session_active/config",
        "homeassistant/sensor/m1/member/config",
        "homeassistant/binary_sensor/m1/lockout/config",
    }
    assert set(topics) == expected
    unique_ids = set()
    for _, payload in messages:
        json.dumps(payload)
        assert payload["state_topic"] == "gateway/m1/state"
        assert payload["availability_topic"] == "gateway/m1/status"
        assert payload["payload_not_available"] == "offline"
        assert payload["device"]["name"] == "Prusa MK4"
        assert payload["device"]["sw_version"] == "1.2.3"
        assert "value_json" in payload["value_template"]
        unique_ids.add(payload["unique_id"])
    assert len(unique_ids) == len(messages)

"""Home Assistant MQTT discovery: one retained config message per entity.

Topics are ``<discovery prefix>/<component>/<machine id>/<object>/config``
(https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery).  Every
entity reads the gateway's retained ``state`` topic through a template and is
available while ``status`` is ``online``, so Home Assistant greys the machine
out when the gateway's last will fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.telemetry.payloads import Topics


@dataclass(frozen=True, slots=True)
class Entity:
    component: str  # sensor | binary_sensor
    object_id: str
    name: str
    template: str
    extra: tuple[tuple[str, Any], ...] = ()


_BINARY = (("payload_on", "ON"), ("payload_off", "OFF"))

ENTITIES: tuple[Entity, ...] = (
    Entity("sensor", "state", "State", "{{ value_json.state }}", (("icon", "mdi:state-machine"),)),
    Entity(
        "sensor",
        "job_progress",
        "Job progress",
        "{{ value_json.job.progress if value_json.job else None }}",
        (
            ("unit_of_measurement", "%"),
            ("state_class", "measurement"),
            ("icon", "mdi:progress-clock"),
        ),
    ),
    Entity(
        "sensor",
        "job_eta",
        "Job time remaining",
        "{{ value_json.job.eta_seconds if value_json.job else None }}",
        (("device_class", "duration"), ("unit_of_measurement", "s")),
    ),
    Entity(
        "sensor",
        "job_file",
        "Job file",
        "{{ value_json.job.file if value_json.job else '' }}",
        (("icon", "mdi:file-cog"),),
    ),
    Entity(
        "sensor",
        "nozzle_temperature",
        "Nozzle temperature",
        "{{ value_json.nozzle_temperature }}",
        (
            ("device_class", "temperature"),
            ("unit_of_measurement", "°C"),
            ("state_class", "measurement"),
        ),
    ),
    Entity(
        "sensor",
        "bed_temperature",
        "Bed temperature",
        "{{ value_json.bed_temperature }}",
        (
            ("device_class", "temperature"),
            ("unit_of_measurement", "°C"),
            ("state_class", "measurement"),
        ),
    ),
    Entity(
        "binary_sensor",
        "session_active",
        "Session active",
        "{{ 'ON' if value_json.session.active else 'OFF' }}",
        (*_BINARY, ("device_class", "occupancy")),
    ),
    Entity(
        "sensor",
        "member",
        "Member",
        "{{ value_json.session.member or '' }}",
        (("icon", "mdi:account-hard-hat"),),
    ),
    Entity(
        "binary_sensor",
        "lockout",
        "Lockout",
        "{{ 'ON' if value_json.lockout.active else 'OFF' }}",
        (
            *_BINARY,
            ("device_class", "problem"),
            ("json_attributes_template", "{{ {'reason': value_json.lockout.reason} | tojson }}"),
        ),
    ),
)


def discovery_messages(
    *,
    discovery_prefix: str,
    topics: Topics,
    machine_id: str,
    machine_name: str,
    version: str,
) -> list[tuple[str, dict[str, Any]]]:
    """``(topic, config payload)`` for every entity, to publish retained."""
    device = {
        "identifiers": [f"makerspace_gateway_{machine_id}"],
        "name": machine_name,
        "manufacturer": "Makerspace gateway",
        "model": "Machine gateway",
        "sw_version": version,
    }
    messages: list[tuple[str, dict[str, Any]]] = []
    for entity in ENTITIES:
        payload: dict[str, Any] = {
            "name": entity.name,
            "has_entity_name": True,
            "unique_id": f"{machine_id}_{entity.object_id}",
            "state_topic": topics.state,
            "value_template": entity.template,
            "availability_topic": topics.status,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        payload.update(entity.extra)
        if "json_attributes_template" in payload:
            payload["json_attributes_topic"] = topics.state
        topic = f"{discovery_prefix}/{entity.component}/{machine_id}/{entity.object_id}/config"
        messages.append((topic, payload))
    return messages

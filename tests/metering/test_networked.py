"""Shelly Gen2+ over HTTP (loopback twin) and MQTT, Tasmota over MQTT (real Mosquitto)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.metering.errors import MeterError
from gateway.metering.meters.networked import (
    MqttMeter,
    ShellyHttpMeter,
    parse_shelly_status,
    parse_tasmota_sensor,
)
from gateway.metering.meters.networked_twins import MqttMeterTwin, ShellyHttpTwin
from gateway.telemetry.config import TelemetryConfig


def test_parses_the_documented_payloads() -> None:
    shelly = parse_shelly_status(
        b'{"id":0,"apower":87.4,"voltage":231.0,"aenergy":{"total":1234.5}}'
    )
    assert shelly.power_w == 87.4 and shelly.energy_wh == 1234.5 and shelly.voltage_v == 231.0
    tasmota = parse_tasmota_sensor(
        b'{"Time":"2026-11-30T04:00:00","ENERGY":{"Total":12.345,"Power":150,"Voltage":230}}'
    )
    assert tasmota.power_w == 150 and tasmota.energy_wh == pytest.approx(12345.0)


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_garbage_is_a_bad_reply_never_a_crash(payload: bytes) -> None:
    for parse in (parse_shelly_status, parse_tasmota_sensor):
        try:
            parse(payload)
        except MeterError as err:
            assert err.reason == "bad_reply"


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'{"apower": "87"}', b'{"apower": 1, "aenergy": {"total": NaN}}', b'{"ENERGY": 5}'],
)
def test_malformed_shapes_are_refused(payload: bytes) -> None:
    with pytest.raises(MeterError):
        parse_shelly_status(payload)
    with pytest.raises(MeterError):
        parse_tasmota_sensor(payload)


async def test_shelly_http_against_its_twin() -> None:
    async with ShellyHttpTwin() as twin:
        twin.set_extra_power(92.0)
        meter = ShellyHttpMeter(twin.url, timeout=1.0)
        async with meter:
            r = await meter.read()
            assert r.power_w == pytest.approx(100.0)
            assert r.energy_wh is not None and r.energy_wh >= 0
            twin.fail_next = 1
            with pytest.raises(MeterError) as err:
                await meter.read()
            assert err.value.reason == "http"
            twin.unplugged = True
            with pytest.raises(MeterError):
                await meter.read()
            twin.unplugged = False
            assert (await meter.read()).power_w == pytest.approx(100.0)
        assert twin.requests[0] == "/rpc/Switch.GetStatus?id=0"


@pytest.mark.parametrize("kind", ["shelly", "tasmota"])
async def test_mqtt_meters_against_a_real_broker(kind: str, broker: Any) -> None:
    twin = MqttMeterTwin(kind, "plug-7", host=broker.host, port=broker.port, interval=0.1)
    twin.set_extra_power(492.0)
    parse = parse_shelly_status if kind == "shelly" else parse_tasmota_sensor
    meter = MqttMeter(
        kind=kind,
        topic=twin.mqtt_topic,
        parse=parse,
        broker=TelemetryConfig(host=broker.host, port=broker.port, keepalive=5),
        client_id=f"meter-{kind}",
        max_age=0.5,
    )
    async with meter:
        with pytest.raises(MeterError) as nothing_yet:
            await meter.read()
        assert nothing_yet.value.reason == "no_data"
        async with twin:
            await _readings(meter, twin)


async def _readings(meter: MqttMeter, twin: MqttMeterTwin) -> None:
    async with asyncio.timeout(10):
        while meter.latest is None:
            await asyncio.sleep(0.05)
    r = await meter.read()
    assert r.power_w == pytest.approx(500.0)
    await twin.send_raw(b"not json at all")
    async with asyncio.timeout(5):
        while meter.bad_messages == 0:
            await asyncio.sleep(0.05)
    assert (await meter.read()).power_w == pytest.approx(500.0)
    twin.silent = True  # the plug drops off the network
    await asyncio.sleep(0.8)
    with pytest.raises(MeterError) as err:
        await meter.read()
    assert err.value.reason == "no_data"

"""Zeroconf advertising: the records, when the daemon advertises, and a real
registration found by a real browser, both on the loopback interface only."""

from __future__ import annotations

import asyncio
import contextlib

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncZeroconf

from gateway.config import load_config
from gateway.daemon import build
from gateway.slicer.advertise import (
    HTTP,
    OCTOPRINT,
    Advertiser,
    instance_name,
    lan_addresses,
    service_infos,
    should_advertise,
)


def test_records_name_the_machine_for_cura() -> None:
    octo, http = service_infos("Prusa MK4 (room 2)", "mk4", "printer", 8080, ["192.0.2.7"])
    assert octo.type == OCTOPRINT and http.type == HTTP
    assert octo.name == "Prusa MK4 (room 2)._octoprint._tcp.local."
    assert octo.port == 8080 and octo.parsed_addresses() == ["192.0.2.7"]
    assert octo.properties[b"path"] == b"/" and octo.properties[b"api"] == b"0.1"
    assert instance_name("a.b") == "a b"
    assert len(instance_name("x" * 200).encode()) <= 63


def test_only_a_lan_facing_gateway_advertises(tmp_path: object) -> None:
    assert not should_advertise(True, "127.0.0.1")
    assert not should_advertise(True, "localhost")
    assert not should_advertise(False, "0.0.0.0")
    assert should_advertise(True, "0.0.0.0") and should_advertise(True, "192.0.2.7")
    assert lan_addresses("192.0.2.7") == ["192.0.2.7"]
    assert all(not a.startswith("127.") for a in lan_addresses("0.0.0.0"))
    gw = build(load_config(None, web={"host": "127.0.0.1", "port": 0}))
    assert not any(isinstance(s, Advertiser) for s in gw.supervisor.services)
    gw = build(load_config(None, web={"host": "0.0.0.0", "port": 0}))
    assert any(isinstance(s, Advertiser) for s in gw.supervisor.services)


async def test_a_browser_on_loopback_finds_the_machine() -> None:
    adv = Advertiser(
        machine_name="Laser cutter",
        machine_id="laser-1",
        kind="laser",
        host="127.0.0.1",
        port=lambda: 8123,
    )
    task = asyncio.create_task(adv.run())
    try:
        await asyncio.wait_for(adv.ready.wait(), 15)
        zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        try:
            info = await zc.async_get_service_info(
                OCTOPRINT, f"Laser cutter.{OCTOPRINT}", timeout=5000
            )
        finally:
            await zc.async_close()
        assert info is not None and info.port == 8123
        assert info.parsed_addresses() == ["127.0.0.1"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert adv.registered == []

"""The PZEM-004T adapter against its twin on a real pseudo-terminal (pymodbus both ends)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.metering.errors import MeterError
from gateway.metering.meters import pzem
from gateway.metering.meters.pzem import PzemMeter
from gateway.metering.meters.pzem_twin import PzemTwin


@given(
    st.floats(0, 6553.5),
    st.floats(0, 100.0),
    st.floats(0, 23000.0),
    st.integers(0, 2**32 - 1),
)
def test_registers_round_trip(volts: float, amps: float, watts: float, wh: int) -> None:
    r = pzem.decode(pzem.encode(voltage_v=volts, current_a=amps, power_w=watts, energy_wh=wh))
    assert r.voltage_v == pytest.approx(volts, abs=0.051)
    assert r.current_a == pytest.approx(amps, abs=0.00051)
    assert r.power_w == pytest.approx(watts, abs=0.051)
    assert r.energy_wh == wh


def test_crc_matches_the_modbus_reference() -> None:
    # "01 04 00 00 00 0A" is the PZEM's read of all ten registers; its CRC is 70 0D.
    frame = bytes.fromhex("01040000000A")
    assert pzem.crc16(frame).to_bytes(2, "little") == bytes.fromhex("700D")
    assert pzem.crc_ok(frame + bytes.fromhex("700D"))
    assert not pzem.crc_ok(frame + bytes.fromhex("700E"))


def test_short_reply_is_a_clear_error() -> None:
    with pytest.raises(MeterError) as err:
        pzem.decode([1, 2, 3])
    assert err.value.reason == "bad_reply"


async def test_reads_power_and_counter_through_a_pty() -> None:
    async with PzemTwin() as twin, PzemMeter(twin.path, timeout=0.5) as meter:
        twin.set_extra_power(120.0)
        twin.counter_offset_wh = 12345.0
        r = await meter.read()
        assert r.power_w == pytest.approx(128.0)  # 8 W idle + 120 W
        assert r.energy_wh == 12345.0
        assert r.voltage_v == pytest.approx(230.0)
        assert twin.reads and twin.reads[-1].power_w == pytest.approx(128.0)


async def test_faults_on_the_line_are_named_and_the_next_read_works() -> None:
    async with PzemTwin() as twin, PzemMeter(twin.path, timeout=0.3) as meter:
        twin.corrupt_replies = 1
        with pytest.raises(MeterError) as crc:
            await meter.read()
        assert crc.value.reason == "crc"
        assert meter.crc_errors == 1
        twin.drop_replies = 1
        with pytest.raises(MeterError) as lost:
            await meter.read()
        assert lost.value.reason == "timeout"
        twin.unplug()
        with pytest.raises(MeterError):
            await meter.read()
        twin.plug_in()
        await asyncio.sleep(0.1)
        assert (await meter.read()).power_w == pytest.approx(8.0)


async def test_a_missing_port_says_what_to_check(tmp_path: object) -> None:
    meter = PzemMeter("/dev/does-not-exist-pzem", timeout=0.2)
    with pytest.raises(MeterError) as err:
        await meter.open()
    assert err.value.reason == "unplugged"
    assert "/dev/does-not-exist-pzem" in str(err.value)

"""PZEM-004T v3 over Modbus-RTU: register decoding (pure) and the asyncio adapter.

The meter (Peacefair PZEM-004T V3.0 user manual, "Communication protocol"):

* Modbus-RTU at 9600 8N1, slave address 0x01 by default (0xF8 is the general
  address answered by any single meter on the line).
* Function 0x04 (read input registers) 0x0000-0x0009, ten 16-bit registers:
  voltage (0.1 V); current (0.001 A, 32 bits, low word first); power (0.1 W,
  32 bits, low word first); energy (1 Wh, 32 bits, low word first); frequency
  (0.1 Hz); power factor (0.01); alarm (0xFFFF = power over the alarm threshold).
* Function 0x42 resets the energy counter; the counter otherwise only grows,
  and wraps at 2**32 Wh.
* Its UART is 5 V TTL: the Pi's RX pin needs a level shifter (see the README).

A CRC error or a missing reply surfaces from pymodbus as an error response or
an exception; both become :class:`~gateway.metering.errors.MeterError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.metering.errors import MeterError
from gateway.metering.meters.base import Meter, Reading

log = logging.getLogger(__name__)

BAUD = 9600
REGISTERS = 10


def crc16(frame: bytes) -> int:
    """Modbus CRC-16 (polynomial 0xA001, initial 0xFFFF), sent low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def _u32(low: int, high: int) -> int:
    return (high << 16) | low


def decode(registers: Sequence[int]) -> Reading:
    """The ten input registers as a :class:`Reading`."""
    if len(registers) < REGISTERS:
        raise MeterError("bad_reply", f"the PZEM answered {len(registers)} registers, not 10")
    r = registers
    return Reading(
        voltage_v=r[0] / 10.0,
        current_a=_u32(r[1], r[2]) / 1000.0,
        power_w=_u32(r[3], r[4]) / 10.0,
        energy_wh=float(_u32(r[5], r[6])),
        frequency_hz=r[7] / 10.0,
        power_factor=r[8] / 100.0,
    )


def encode(
    *,
    voltage_v: float,
    current_a: float,
    power_w: float,
    energy_wh: int,
    frequency_hz: float = 50.0,
    power_factor: float = 1.0,
    alarm: bool = False,
) -> list[int]:
    """The registers a meter with these readings answers (the twin uses it)."""
    cur = max(0, round(current_a * 1000)) & 0xFFFFFFFF
    pw = max(0, round(power_w * 10)) & 0xFFFFFFFF
    wh = max(0, energy_wh) & 0xFFFFFFFF
    return [
        max(0, min(0xFFFF, round(voltage_v * 10))),
        cur & 0xFFFF,
        cur >> 16,
        pw & 0xFFFF,
        pw >> 16,
        wh & 0xFFFF,
        wh >> 16,
        max(0, min(0xFFFF, round(frequency_hz * 10))),
        max(0, min(100, round(power_factor * 100))),
        0xFFFF if alarm else 0,
    ]


class PzemMeter(Meter):
    """Reads one PZEM-004T on ``port`` (a USB-serial adapter or the Pi's UART)."""

    kind = "pzem"

    def __init__(self, port: str, *, address: int = 1, timeout: float = 1.0) -> None:
        self.port = port
        self.address = address
        self.timeout = timeout
        self._client: AsyncModbusSerialClient | None = None
        self.crc_errors = 0
        self._bad_crc = False

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # pymodbus drops a frame with a bad CRC and then times out; look first, so
        # the failure is counted as what it was.
        if not sending and data and not crc_ok(data):
            self._bad_crc = True
        return data

    async def open(self) -> None:
        # pymodbus logs every missed reply at ERROR; the service counts and reports them.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        client = AsyncModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=BAUD,
            bytesize=8,
            parity="N",
            stopbits=1,
            timeout=self.timeout,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._trace,
        )
        try:
            connected = await client.connect()
        except (OSError, ModbusException) as err:
            raise MeterError(
                "unplugged", f"cannot open the PZEM-004T on {self.port}: {err}; check the cable"
            ) from err
        if not connected:
            raise MeterError(
                "unplugged",
                f"cannot open the PZEM-004T on {self.port}; check `ls /dev/serial/by-id/`",
            )
        self._client = client

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def read(self) -> Reading:
        if self._client is None or not self._client.connected:
            await self.close()
            await self.open()
        client = self._client
        assert client is not None
        self._bad_crc = False
        try:
            async with asyncio.timeout(self.timeout * 2):
                reply = await client.read_input_registers(
                    0, count=REGISTERS, device_id=self.address
                )
        except TimeoutError as err:
            raise MeterError("timeout", f"no answer from the PZEM-004T on {self.port}") from err
        except ConnectionException as err:
            with contextlib.suppress(Exception):
                await self.close()
            raise MeterError("unplugged", f"the PZEM-004T on {self.port} is gone: {err}") from err
        except ModbusIOException as err:
            if self._bad_crc:
                self.crc_errors += 1
                raise MeterError(
                    "crc", f"CRC error in the PZEM-004T's answer on {self.port}; check the wiring"
                ) from err
            raise MeterError(
                "timeout", f"no valid answer from the PZEM-004T on {self.port}: {err}"
            ) from err
        except ModbusException as err:
            raise MeterError("bad_reply", f"the PZEM-004T on {self.port}: {err}") from err
        if reply.isError():
            raise MeterError("bad_reply", f"the PZEM-004T refused the read: {reply}")
        return decode(reply.registers)

"""Choose the protocol core for a firmware."""

from __future__ import annotations

from typing import Literal

from gateway.machine.grbl import GrblProtocol
from gateway.machine.marlin import MarlinProtocol
from gateway.machine.protocol import ControllerProtocol


def make_core(
    firmware: Literal["marlin", "grbl"],
    *,
    rx_buffer_size: int = 127,
    response_timeout: float = 10.0,
    status_interval: float = 0.2,
    max_line_length: int,
) -> ControllerProtocol:
    if firmware == "grbl":
        return GrblProtocol(
            rx_buffer_size=rx_buffer_size,
            status_interval=status_interval,
            response_timeout=response_timeout,
            max_line_length=max_line_length,
        )
    return MarlinProtocol(
        rx_buffer_size=rx_buffer_size,
        response_timeout=response_timeout,
        max_line_length=max_line_length,
    )

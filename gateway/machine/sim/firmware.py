"""The contract every simulated firmware model meets.

A model is pure like the protocol cores: bytes in (as they arrive at the
controller's UART), bytes out, and a clock passed in.  It models the parts of
the real firmware a host can trip over: the RX buffer size (bytes that arrive
while it is full are lost and counted), the planner queue, line numbers and
checksums, busy/wait messages, alarms and resets.  It records every line it
executed, so tests can assert each job line ran exactly once and in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class SimulatedFirmware(ABC):
    """A firmware model driven by :class:`~gateway.machine.sim.link.Link` or the pty server."""

    #: Name printed by ``gateway sim``.
    name: str = "firmware"
    #: True when the protocol detects corrupted host bytes (Marlin checksums).
    #: GRBL has no checksums, so the simulator only corrupts its replies.
    integrity_checked: bool = False

    def __init__(self) -> None:
        #: Every G-code line the firmware executed, in order, without line
        #: numbers or checksums (host commands such as M110/M105 included).
        self.executed: list[str] = []
        #: Bytes lost because they arrived while the RX buffer was full.
        self.overflows = 0
        #: Real-time bytes received (GRBL ``?``, ``!``, ``~``, 0x18, overrides).
        self.realtime: list[int] = []

    def forget_history(self, keep: int) -> None:
        """Keep only the last ``keep`` entries of each recorded history.

        Tests read the whole history; a simulator that runs for days inside the
        daemon (simulation mode) calls this so its memory stays flat.
        """
        for history in self._histories():
            del history[: max(0, len(history) - keep)]

    def _histories(self) -> list[list[str] | list[int]]:
        return [self.executed, self.realtime]

    @abstractmethod
    def receive(self, data: bytes, now: float) -> None:
        """Bytes that reached the controller's UART at time ``now``."""

    @abstractmethod
    def output(self) -> bytes:
        """Drain the bytes the controller wants to send to the host."""

    @abstractmethod
    def tick(self, now: float) -> None:
        """Advance parsing and motion to time ``now``."""

    @abstractmethod
    def next_wakeup(self) -> float | None:
        """When :meth:`tick` next has something to do (None: only on input)."""

    @abstractmethod
    def moving(self, now: float) -> bool:
        """True while moves already accepted (planned) are still being executed
        at time ``now``: what a host must wait for before calling a job done."""

    @abstractmethod
    def power_on(self, now: float) -> None:
        """Boot: clear all state and print the start banner."""

"""The Marlin handshake: what the board says about itself and the step after each answer.

Pure, no clock: :class:`~gateway.machine.marlin.MarlinProtocol` owns the lines
and the wire, and asks a :class:`Handshake` which state comes next.

Handshake (:class:`~gateway.machine.marlin_lines.State`)
    ``N0 M110 N0`` resets Marlin's line counter (``M110`` skips the sequence
    check, so it works whatever the board's counter is), ``M115`` reads
    ``FIRMWARE_NAME:`` and the ``Cap:`` lines, then ``M155 S<n>`` turns on
    temperature auto-reports when ``Cap:AUTOREPORT_TEMP:1``; otherwise ``M105``
    is polled every ``temperature_interval``.  A board that answers ``M115``
    without ``FIRMWARE_NAME:`` (older or vendor firmwares) is driven anyway once
    ``handshake_timeout`` has passed since the first ``M115``: a numbered
    ``N<next> M105`` proves the ``M115`` was answered (its plain ``ok`` alone
    cannot be told from a stray one), then the conservative settings apply: no
    capability assumed, one line in flight unless ``ok N P B`` shows
    ``ADVANCED_OK``, temperatures polled with ``M105``.  A board reset by DTR on open
    swallows what arrives while its bootloader runs: ``M110`` is sent again
    after ``handshake_timeout`` and as soon as ``start`` is printed.  After the
    handshake, ``start`` means the board restarted:
    :class:`~gateway.machine.protocol.FirmwareReset`, queued job lines are
    dropped and the handshake runs again.
"""

from __future__ import annotations

from gateway.machine.marlin_lines import Kind, State
from gateway.machine.marlin_wire import parse_cap, parse_firmware_name
from gateway.machine.protocol import FirmwareMessage, ProtocolEvent

__all__ = ["Handshake"]

_IDENTIFY_TRIES = 3  # M115 sent while its FIRMWARE_NAME line may just have been lost
_CONSERVATIVE = (
    "the firmware did not report FIRMWARE_NAME in M115; streaming with conservative settings"
)


class Handshake:
    """One handshake, from ``M110`` to ready: the board's name and capabilities,
    and the transition taken when a handshake line is acknowledged."""

    __slots__ = ("auto_report", "capabilities", "name_seen", "since", "timeout", "tries", "version")

    def __init__(self, now: float, timeout: float) -> None:
        self.timeout = timeout
        self.version = ""
        self.capabilities: dict[str, str] = {}
        self.name_seen = False
        self.tries = 0  # M115 sent
        self.since = now  # when the first M115 was sent
        #: The firmware reports temperatures itself (``M155``), no ``M105`` poll.
        self.auto_report = False

    def identify_sent(self, now: float) -> None:
        self.tries += 1
        if self.tries == 1:
            self.since = now

    def firmware_name(self, text: str) -> None:
        """A ``FIRMWARE_NAME:`` line of the ``M115`` answer."""
        self.version, info = parse_firmware_name(text)
        self.capabilities.update(info)
        self.name_seen = True

    def cap(self, text: str) -> None:
        """A ``Cap:`` line of the ``M115`` answer."""
        key, value = parse_cap(text)
        self.capabilities[key] = value

    def name_overdue(self, now: float) -> bool:
        """``M115`` has gone without ``FIRMWARE_NAME:`` for ``handshake_timeout``."""
        return not self.name_seen and now - self.since >= self.timeout

    def next_state(
        self, state: State, kind: Kind, now: float, events: list[ProtocolEvent]
    ) -> State | None:
        """A line of ``kind`` was acknowledged in ``state``: the state to enter, if any."""
        match (state, kind):
            case (State.SYNC, Kind.SYNC):
                return State.IDENTIFY
            case (State.IDENTIFY, Kind.IDENTIFY) if not self.name_seen:
                if self.tries < _IDENTIFY_TRIES and now - self.since < self.timeout:
                    return State.IDENTIFY  # FIRMWARE_NAME was lost
                # Not a Marlin that says its name: drive it conservatively.
                events.append(FirmwareMessage("info", _CONSERVATIVE))
                return State.READY
            case (State.IDENTIFY, Kind.IDENTIFY):
                self.auto_report = self.capabilities.get("AUTOREPORT_TEMP") == "1"
                return State.CONFIGURE if self.auto_report else State.READY
            case (State.CONFIGURE, Kind.CONFIGURE):
                return State.READY
            case _:
                return None

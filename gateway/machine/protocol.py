"""The sans-I/O contract shared by the Marlin and GRBL protocol cores.

A core never touches a port, a clock or a task.  The adapter around it
(:mod:`gateway.machine.streamer`) feeds it the bytes read from the serial line
and the current time, writes whatever :meth:`ControllerProtocol.data_to_send`
returns, and reacts to the :class:`ProtocolEvent` objects it gets back.

Job lines are queued with :meth:`ControllerProtocol.send_line`; the core decides
when each goes on the wire (one per ``ok``, several inside the firmware's RX
buffer with ``ADVANCED_OK``, character counting for GRBL).  The adapter keeps the
core's queue topped up while :meth:`ControllerProtocol.wants_lines` is true.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class ProtocolEvent:
    """Something the controller said or the core noticed."""


@dataclass(frozen=True, slots=True)
class ControllerReady(ProtocolEvent):
    """The handshake finished: the firmware answers and job lines may flow."""

    firmware: str  # "marlin" | "grbl"
    version: str  # e.g. "Marlin 2.1.2" or "Grbl 1.1h"; "" if unknown
    capabilities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinesAcked(ProtocolEvent):
    """``count`` more job lines were accepted by the firmware (total in ``total``)."""

    count: int
    total: int


@dataclass(frozen=True, slots=True)
class MotionFinished(ProtocolEvent):
    """The machine stopped moving after :meth:`ControllerProtocol.finish_motion`:
    Marlin answered ``M400``, or GRBL reported ``Idle`` to a ``?`` written after
    the last ``ok``.  Only now is a job really done."""


@dataclass(frozen=True, slots=True)
class CommandDone(ProtocolEvent):
    """A command queued with :meth:`ControllerProtocol.send_command` was answered."""

    command: str
    ok: bool
    response: tuple[str, ...] = ()  # the lines the firmware printed before its ok/error


@dataclass(frozen=True, slots=True)
class ResendRequested(ProtocolEvent):
    """Marlin asked for line ``line_number`` again (checksum or sequence error)."""

    line_number: int


@dataclass(frozen=True, slots=True)
class Temperatures(ProtocolEvent):
    """A Marlin temperature report: heater name ("T0", "B", "C"...) -> (actual, target)."""

    readings: dict[str, tuple[float, float | None]]


@dataclass(frozen=True, slots=True)
class GrblStatus(ProtocolEvent):
    """A parsed GRBL 1.1 status report ``<Idle|MPos:...|FS:...>``."""

    state: str  # Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep
    substate: int | None = None  # Hold:0, Door:1 ...
    mpos: tuple[float, ...] | None = None
    wpos: tuple[float, ...] | None = None
    wco: tuple[float, ...] | None = None
    feed: float | None = None
    spindle: float | None = None
    planner_free: int | None = None  # Bf: blocks available
    rx_free: int | None = None  # Bf: bytes available in the RX buffer
    line_number: int | None = None
    overrides: tuple[int, int, int] | None = None  # Ov: feed, rapid, spindle (%)
    pins: str = ""


@dataclass(frozen=True, slots=True)
class FirmwareMessage(ProtocolEvent):
    """Informational text: Marlin ``echo:``/``//``/``busy:``/``wait``, GRBL ``[MSG:...]``."""

    kind: Literal["echo", "info", "busy", "wait", "msg", "feedback", "unknown"]
    text: str


@dataclass(frozen=True, slots=True)
class FirmwareError(ProtocolEvent):
    """The firmware rejected something.

    ``fatal`` errors (Marlin ``!!``/"Printer halted", GRBL alarms) stop the job;
    others (a GRBL ``error:N`` for one line, a Marlin ``Error:`` that is not a
    resend) are counted and reported.  ``job_line`` is the 1-based index of the
    job line concerned, when known.
    """

    message: str
    code: int | None = None
    fatal: bool = False
    job_line: int | None = None


@dataclass(frozen=True, slots=True)
class Alarm(ProtocolEvent):
    """GRBL ``ALARM:N``: motion stopped; the job cannot continue."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class FirmwareReset(ProtocolEvent):
    """The controller restarted (GRBL banner, Marlin ``start``).  In-flight lines are lost."""

    banner: str


@dataclass(frozen=True, slots=True)
class CommunicationTimeout(ProtocolEvent):
    """No reply for ``waited`` seconds while lines were in flight; ``action`` says what
    the core did to recover (e.g. "sent M105")."""

    waited: float
    action: str


@dataclass(frozen=True, slots=True)
class UnparsedLine(ProtocolEvent):
    """A line from the controller that the core could not make sense of (garbage)."""

    text: str


class ControllerProtocol(ABC):
    """The common surface of :class:`~gateway.machine.marlin.MarlinProtocol` and
    :class:`~gateway.machine.grbl.GrblProtocol`."""

    firmware: str

    @abstractmethod
    def start(self, now: float) -> None:
        """Begin the handshake (queues the first bytes to send)."""

    @abstractmethod
    def receive(self, data: bytes, now: float) -> list[ProtocolEvent]:
        """Feed bytes read from the serial line; return what happened."""

    @abstractmethod
    def tick(self, now: float) -> list[ProtocolEvent]:
        """Let time pass: response timeouts, status polls.  Call every ~50 ms."""

    @abstractmethod
    def data_to_send(self, now: float) -> bytes:
        """Bytes to write to the serial line now (may be empty).  Draining."""

    @abstractmethod
    def send_line(self, line: str) -> None:
        """Queue one cleaned job line (no comment, no newline, ASCII)."""

    @abstractmethod
    def send_command(self, line: str) -> None:
        """Queue a command outside the job (console, temperature query, ``$X``).
        Ordered with job lines; answered by :class:`CommandDone`; not counted as
        job progress."""

    @abstractmethod
    def finish_motion(self) -> None:
        """Ask for proof that every move planned so far has been executed; a
        :class:`MotionFinished` follows once the machine has stopped.  An ``ok``
        only means a line was planned: Marlin's planner and GRBL's hold up to
        ~16 moves, seconds of motion."""

    @abstractmethod
    def wants_lines(self) -> bool:
        """True when the core's own queue is short enough to take another line."""

    @abstractmethod
    def emergency_stop(self) -> None:
        """Drop everything queued and put the firmware's emergency stop
        (Marlin ``M112``, GRBL soft reset 0x18) at the front of the output."""

    @abstractmethod
    def discard_queued(self) -> int:
        """Drop job lines not yet sent (cancel); return how many were dropped."""

    @property
    @abstractmethod
    def ready(self) -> bool:
        """The handshake has completed and the firmware is answering."""

    @property
    @abstractmethod
    def acked(self) -> int:
        """Job lines the firmware has accepted so far."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Lines (job or command) sent and not yet acknowledged."""

    @property
    @abstractmethod
    def queued(self) -> int:
        """Job and command lines queued in the core but not yet sent."""

    @property
    @abstractmethod
    def resends(self) -> int:
        """Lines sent more than once because the firmware asked (Marlin) — 0 for GRBL."""

    @property
    @abstractmethod
    def errors(self) -> int:
        """Error replies counted so far."""

    @property
    def bytes_in_flight(self) -> int:
        """Bytes of lines sent and not yet acknowledged (0 if the core does not count)."""
        return 0

    @property
    def planned(self) -> int | None:
        """Moves the firmware accepted but has not executed yet, as it last said
        (Marlin's ``P`` in ``ok N P B``, GRBL's ``Bf:``); None when it does not say."""
        return None

    def idle(self) -> bool:
        """Nothing queued and nothing in flight: every line sent has been answered."""
        return self.queued == 0 and self.in_flight == 0

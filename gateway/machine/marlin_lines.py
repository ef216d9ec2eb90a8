"""The line bookkeeping of the Marlin core: kinds of line, link states, one line's life.

Shared by :class:`~gateway.machine.marlin.MarlinProtocol` and the parts split out
of it (:mod:`gateway.machine.marlin_handshake`, :mod:`gateway.machine.marlin_recovery`).
Pure data, no I/O.
"""

from __future__ import annotations

import enum

__all__ = ["NUMBERED", "Kind", "Line", "State"]


class Kind(enum.IntEnum):
    """Why a line was sent; decides what its acknowledgement means."""

    JOB = 0  # send_line: counted in LinesAcked
    COMMAND = 1  # send_command: answered with CommandDone
    SYNC = 2  # M110 N0
    IDENTIFY = 3  # M115
    CONFIGURE = 4  # M155 S<n>
    POLL = 5  # M105: temperature poll or probe after a timeout
    DRAIN = 6  # M400 after the last job line: its ok means the planner is empty


class State(enum.Enum):
    """The link's state; :meth:`MarlinProtocol._enter` is the one place it changes."""

    NEW = "new"  # start() not called
    SYNC = "sync"  # N0 M110 N0 sent: resetting Marlin's line counter
    IDENTIFY = "identify"  # M115 sent: reading firmware name and capabilities
    CONFIGURE = "configure"  # M155 S<n> sent: turning on temperature reports
    READY = "ready"  # streaming
    HALTED = "halted"  # M112 or kill(): silent until the board restarts


MAX_SLOTS = 64  # lines in flight at most, whatever ADVANCED_OK's B says

# States in which lines are numbered and checked in sequence (M110 in SYNC is not).
NUMBERED = frozenset({State.IDENTIFY, State.CONFIGURE, State.READY})


class Line:
    """One line through its life: queued, numbered, in flight, acknowledged."""

    __slots__ = ("done", "failed", "job_index", "kind", "n", "response", "text", "wire")

    def __init__(self, text: str, kind: Kind, job_index: int = 0) -> None:
        self.text = text
        self.kind = kind
        self.job_index = job_index
        self.n = -1
        self.wire = b""
        self.done = False
        self.failed = False
        self.response: list[str] | None = [] if kind == Kind.COMMAND else None

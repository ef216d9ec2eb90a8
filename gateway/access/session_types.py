"""The vocabulary of the access state machine (:mod:`gateway.access.session`): its states,
inputs, effects and snapshot.  Pure data, no behaviour beyond a few properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from gateway.access.members import Decision, Role
from gateway.access.presence_feed import Presence, Sighting

NOBODY = Presence()


class State(StrEnum):
    LOCKED = "locked"
    AUTHORISED = "authorised"
    IN_USE = "in_use"
    ENDING = "ending"
    LOCKOUT = "lockout"


RELAY_ON_STATES = frozenset({State.AUTHORISED, State.IN_USE, State.ENDING})

IndicatorKind = Literal["locked", "authorised", "in_use", "denied", "lockout", "off"]
BuzzPattern = Literal["granted", "denied", "warning", "induction"]
CloseReason = Literal[
    "badge_out",
    "idle_timeout",
    "max_session",
    "lockout",
    "interlock",
    "estop",
    "shutdown",
    "takeover",
    "handover",
    "booked",
    "supervisor_left",
    "alone",
    "revoked",
    "admin_cut",
]
RefusalReason = Literal[
    "unknown_badge",
    "not_inducted",
    "expired",
    "not_yet_valid",
    "suspended",
    "locked_out",
    "in_use",
    "interlock",
    "induction_lapsed",
    "booked",
    "needs_supervision",
    "lone_working",
]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """The parts of ``[access.policy]`` the state machine enforces (seconds)."""

    supervision_window: float = 1800.0
    supervision_grace: float = 120.0
    lone_working: bool = False


DEFAULT_POLICY = SessionPolicy()

# -- inputs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadgePresented:
    """A badge was read and :func:`~gateway.access.members.decide` judged it."""

    decision: Decision
    at: float


@dataclass(frozen=True, slots=True)
class BadgeOut:
    """End the current session as if its member had badged again (``badge_out`` command)."""

    at: float


@dataclass(frozen=True, slots=True)
class JobStarted:
    at: float


@dataclass(frozen=True, slots=True)
class JobEnded:
    at: float


@dataclass(frozen=True, slots=True)
class JobPaused:
    at: float


@dataclass(frozen=True, slots=True)
class JobResumed:
    at: float


@dataclass(frozen=True, slots=True)
class Tick:
    at: float


@dataclass(frozen=True, slots=True)
class InterlockTripped:
    name: str
    kind: str  # lid | door | estop
    at: float


@dataclass(frozen=True, slots=True)
class InterlockCleared:
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class EStop:
    at: float


@dataclass(frozen=True, slots=True)
class LockoutSet:
    reason: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class LockoutCleared:
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Shutdown:
    at: float


@dataclass(frozen=True, slots=True)
class PresenceSeen:
    """A member was seen nearby (a door reader, a nearby gateway)."""

    sighting: Sighting
    at: float


@dataclass(frozen=True, slots=True)
class PresenceLeft:
    member_id: str
    at: float


@dataclass(frozen=True, slots=True)
class MemberRevoked:
    """A new access list no longer admits ``member_id`` here; ``message`` says why."""

    member_id: str
    reason: str  # suspended | expired | not_yet_valid | not_inducted | unknown_badge | ...
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class GrantLevelChosen:
    """The trainer in session picked the level their next induction grants."""

    level: str
    rank: int
    supervised: bool
    at: float


@dataclass(frozen=True, slots=True)
class CutNow:
    """An admin cuts the power at once, even under a running job."""

    by: str
    at: float


@dataclass(frozen=True, slots=True)
class LevelLowered:
    """A new access list puts ``member_id`` at ``level``, which needs a supervisor
    present; their session was opened at a level that did not."""

    member_id: str
    level: str | None
    at: float


Input = (
    BadgePresented
    | BadgeOut
    | JobStarted
    | JobEnded
    | JobPaused
    | JobResumed
    | Tick
    | InterlockTripped
    | InterlockCleared
    | EStop
    | LockoutSet
    | LockoutCleared
    | Shutdown
    | PresenceSeen
    | PresenceLeft
    | GrantLevelChosen
    | MemberRevoked
    | LevelLowered
    | CutNow
)

# -- effects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayOn:
    reason: str


@dataclass(frozen=True, slots=True)
class RelayOff:
    reason: str


@dataclass(frozen=True, slots=True)
class ShowIndicator:
    kind: IndicatorKind


@dataclass(frozen=True, slots=True)
class Buzz:
    pattern: BuzzPattern


@dataclass(frozen=True, slots=True)
class SessionOpened:
    member_id: str
    member_name: str
    role: Role
    inducted_by: str | None = None
    level: str | None = None
    supervisor_id: str | None = None
    supervisor_name: str | None = None
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class SessionClosed:
    member_id: str
    member_name: str
    reason: CloseReason
    duration: float
    jobs: int
    message: str = ""  # for the screen and the records, when the reason needs one


@dataclass(frozen=True, slots=True)
class StopJob:
    """Stop the running job: it started with no member in session."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A badge was refused; ``message`` is for the screen.  Never carries the badge."""

    reason: RefusalReason
    message: str
    member_id: str | None


@dataclass(frozen=True, slots=True)
class InductionRecorded:
    trainer_id: str
    member_id: str
    level: str | None = None


@dataclass(frozen=True, slots=True)
class SupervisionChanged:
    """The supervised session's supervisor changed, left (``ends_in`` seconds of
    grace remain) or came back; under lone working, the member was left alone in the
    space or has company again.  ``message`` is for the screen."""

    member_id: str
    supervisor_id: str | None
    supervisor_name: str | None
    message: str
    ends_in: float | None


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after: float
    message: str


@dataclass(frozen=True, slots=True)
class LockoutUpdated:
    active: bool
    reason: str | None
    by: str


Effect = (
    RelayOn
    | RelayOff
    | ShowIndicator
    | Buzz
    | SessionOpened
    | SessionClosed
    | Refused
    | InductionRecorded
    | RateLimited
    | LockoutUpdated
    | SupervisionChanged
    | StopJob
)

# -- the snapshot -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveSession:
    member_id: str
    member_name: str
    role: Role
    started_at: float
    last_activity: float
    jobs: int = 0
    level: str | None = None
    supervised: bool = False
    can_supervise: bool = False
    supervisor_id: str | None = None
    supervisor_name: str | None = None


@dataclass(frozen=True, slots=True)
class Lockout:
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class TrainerWindow:
    trainer_id: str
    until: float
    level: str | None = None
    rank: int = 0
    supervised: bool = False
    trainer_name: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the machine knows.  ``session`` is set exactly in AUTHORISED and
    IN_USE; ``previous`` is the ended session whose relay ENDING is holding."""

    state: State = State.LOCKED
    session: ActiveSession | None = None
    previous: ActiveSession | None = None
    job_running: bool = False
    grace_until: float | None = None
    lockout: Lockout | None = None
    tripped: frozenset[str] = frozenset()
    trainer: TrainerWindow | None = None
    denials: tuple[float, ...] = ()
    presence: Presence = NOBODY
    supervision_lost_at: float | None = None
    #: Under lone working: when the member in session was last left alone in the space.
    alone_since: float | None = None
    #: The member whose session the running job started in; None if it started with
    #: nobody in session (it is being stopped) or no job is running.
    job_member: str | None = None
    #: When the running job was paused; None while it runs (or no job).
    paused_since: float | None = None

    @property
    def relay_on(self) -> bool:
        return self.state in RELAY_ON_STATES

    @property
    def indicator(self) -> IndicatorKind:
        match self.state:
            case State.LOCKED:
                return "locked"
            case State.AUTHORISED:
                return "authorised"
            case State.IN_USE:
                return "in_use"
            case State.ENDING:
                return "in_use" if self.job_running else "authorised"
            case State.LOCKOUT:
                return "lockout"


Result = tuple[Snapshot, list[Effect]]

"""The typed answers of the access-policy routes (bookings, presence, lapsing, grants).

They mirror what the access capability's policy commands return
(:mod:`gateway.access.policy_commands`) and the policy part of its status
(:func:`gateway.access.policy_effects.status`), so ``/openapi.json`` tells screens and
scripts what they get.  Open like the other answer models: a field the capability adds
later passes through unchanged.
"""

from __future__ import annotations

from pydantic import Field

from gateway.web.api.models import AccessNow, Open

# -- bookings -----------------------------------------------------------------------------


class BookingOut(Open):
    """One booking of this machine, from the access list or made here."""

    id: str = Field(description="From the access list, or local-<hex> for one made here")
    machine: str = Field(description="The machine id it reserves")
    member_id: str
    member_name: str
    start: str = Field(description="ISO 8601 with its zone")
    end: str = Field(description="ISO 8601 with its zone; the booking holds until then")
    source: str = Field(
        description="'list' for the membership system's list, else who made it here "
        "(e.g. web:token:NAME)"
    )


class NextBookingOut(Open):
    """The booking in force, or the next one, in the words screens show."""

    id: str
    member_id: str
    member_name: str
    start: str = Field(description="ISO 8601 with its zone")
    end: str = Field(description="ISO 8601 with its zone")
    start_clock: str = Field(description="HH:MM in the gateway's time zone")
    end_clock: str = Field(description="HH:MM in the gateway's time zone")
    day: str = Field(description="The start's day, e.g. Mon 30 Nov")
    in_force: bool = Field(description="True while the booking holds the machine")


class BookingsOut(Open):
    """Bookings that have not ended, the next one, and local ones set aside."""

    bookings: list[BookingOut] = Field(description="Ordered by start")
    next: NextBookingOut | None = Field(description="In force now, or the next to start")
    set_aside: list[str] = Field(
        description="Ids of bookings made here that clash with the access list's (the list "
        "wins); they do not hold the machine"
    )


class BookingMade(Open):
    booking: BookingOut


class BookingCancelled(Open):
    cancelled: str = Field(description="The id of the booking cancelled")


# -- lapsing inductions -----------------------------------------------------------------------


class LapsingMember(Open):
    """A member whose induction on this machine has lapsed or lapses soon."""

    member_id: str
    member_name: str
    lapsed: bool = Field(description="Refused now until re-inducted")
    lapses_at: str | None = Field(description="ISO 8601; null when the date is unknown")
    days_left: int | None = Field(description="Whole days until it lapses; 0 once lapsed")
    unknown: bool = Field(
        description="The rule needs a date the list lacks (induction or last use): "
        "counted as lapsed"
    )


class LapsingOut(Open):
    rule: str = Field(description="The expiry rule: never | duration | date | disuse")
    days: int = Field(description="The horizon asked for, in days")
    members: list[LapsingMember] = Field(description="Soonest first; empty under rule 'never'")


# -- presence -----------------------------------------------------------------------------------


class PresenceNoted(Open):
    """What a presence announcement changed."""

    noted: bool = Field(description="False when the announcement changes nothing here")
    member_id: str | None = Field(default=None, description="Absent when not noted")
    present: bool | None = Field(default=None, description="In the space (true) or left")
    can_supervise: bool | None = Field(
        default=None, description="On arrival: may they supervise on this machine"
    )
    why: str | None = Field(default=None, description="Why it was not noted")


# -- the policy on screens ----------------------------------------------------------------------


class GrantWindow(Open):
    level: str | None = Field(description="The level the next induction grants")
    seconds_left: float = Field(description="Until the trainer's window to induct closes")


class PolicyNow(Open):
    """The policy's part of the access status: what the screens show."""

    level: str | None = Field(description="The session member's induction level")
    supervised: bool = Field(description="The session member needs a supervisor present")
    supervisor: str | None = Field(description="The supervisor's name, when one is present")
    supervision_ends_in: float | None = Field(
        description="Seconds until the session ends for lack of supervision, if it was lost"
    )
    supervision_message: str | None
    notice: str | None = Field(description="E.g. the induction-expiry warning for the member")
    next_booking: NextBookingOut | None
    booking_note: str | None = Field(
        default=None,
        description="For the member in session: another member's booking has started "
        "(they may take the machine over) or starts within 30 minutes",
    )
    levels: list[str] = Field(description="The levels a trainer may grant, lowest first")
    grant_window: GrantWindow | None = Field(
        description="While the trainer in session may induct: the level chosen and time left"
    )
    lone_working: bool = Field(description="This machine needs two members in the space")


class AccessNowWithPolicy(AccessNow):
    """The access status with the policy's part, as after a trainer picks a level."""

    policy: PolicyNow

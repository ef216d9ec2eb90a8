"""What the access service remembers for the policy, and the questions it answers
(no I/O; wall-clock times are passed in).

The service keeps one :class:`PolicyState`: bookings (from the list and made
here), which bookings were used, each member's last session on this machine
(for the disuse rule) and the inductions granted here that the membership
system has not confirmed yet.  Store writes stay with the service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from gateway.access import expiry
from gateway.access.bookings import Booking, BookingBook, BookingError, check_overlaps
from gateway.access.members import (
    AccessList,
    Decision,
    Granted,
    Induction,
    Member,
    Role,
    covers,
    decide_member,
)
from gateway.access.policy import MachinePolicy, judge
from gateway.access.policy_config import PolicyConfig
from gateway.access.session import SessionPolicy
from gateway.access.tiers import Tiers


class PolicyState:
    """Bookings, usage and grants for one machine, and :func:`judge` with them."""

    def __init__(self, machine_id: str, config: PolicyConfig, tz: tzinfo | None = None) -> None:
        self.machine_id = machine_id
        self.config = config
        self.tiers = Tiers(config)
        # None: the system's local time at each instant, summer time included.
        self.tz = tz
        self.list_bookings: tuple[Booking, ...] = ()
        self.local_bookings: list[Booking] = []
        self.ignored_bookings: list[str] = []
        self.used: set[str] = set()
        self.last_used: dict[str, float] = {}
        self.grants: dict[str, Induction] = {}
        self._book = BookingBook(machine_id, ())
        self._policy = self._machine_policy()

    # -- configuration of the session machine ---------------------------------------------

    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            supervision_window=self.config.supervision_window,
            supervision_grace=self.config.supervision_grace,
            lone_working=self.config.lone_working,
        )

    def _machine_policy(self) -> MachinePolicy:
        return MachinePolicy(
            self.machine_id,
            self.machine_id,
            self.config,
            self.tiers,
            self._book,
            frozenset(self.used),
            self.tz,
        )

    # -- bookings ---------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """List bookings win; a local booking that now clashes with one is set aside."""
        kept: list[Booking] = []
        self.ignored_bookings = []
        for b in self.local_bookings:
            try:
                check_overlaps([*self.list_bookings, *kept, b])
            except BookingError:
                self.ignored_bookings.append(b.id)
                continue
            kept.append(b)
        self._book = BookingBook(self.machine_id, [*self.list_bookings, *kept])
        self._policy = self._machine_policy()

    def set_list_bookings(self, bookings: Iterable[Booking]) -> None:
        self.list_bookings = tuple(bookings)
        self._rebuild()

    def set_local_bookings(self, bookings: Iterable[Booking]) -> None:
        self.local_bookings = list(bookings)
        self._rebuild()

    def new_booking(
        self,
        access_list: AccessList,
        member_id: str,
        start: datetime,
        end: datetime,
        source: str,
    ) -> Booking:
        """A booking made here, checked against every booking known; raises BookingError."""
        member = access_list.by_id(member_id)
        if member is None:
            raise BookingError(f"member {member_id!r} is not in the access list")
        if member.role_on(self.machine_id) is None:
            raise BookingError(f"{member.name} is not inducted on {self.machine_id}")
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        if end <= start:
            raise BookingError("the booking ends before it starts")
        if end - start > timedelta(days=7):
            raise BookingError("a booking may last at most 7 days")
        booking = Booking(
            f"local-{uuid.uuid4().hex[:12]}",
            self.machine_id,
            member.id,
            member.name,
            start,
            end,
            source,
        )
        names = {b.id: f"booking {b.id!r} ({b.member_name}, {self._span(b)})" for b in self.all()}
        names[booking.id] = "the new booking"
        check_overlaps([*self.all(), booking], names)
        return booking

    def add_local(self, booking: Booking) -> None:
        self.local_bookings.append(booking)
        self._rebuild()

    def remove_local(self, booking_id: str) -> bool:
        before = len(self.local_bookings)
        self.local_bookings = [b for b in self.local_bookings if b.id != booking_id]
        self._rebuild()
        return len(self.local_bookings) != before

    def all(self) -> list[Booking]:
        return list(self._book.bookings)

    def _span(self, b: Booking) -> str:
        start = b.start.astimezone(self.tz)
        return f"{start:%Y-%m-%d %H:%M} to {b.end.astimezone(self.tz):%H:%M}"

    def upcoming(self, now: datetime) -> Booking | None:
        return self._book.upcoming(now, frozenset(self.used), self.config.booking_grace)

    def next_booking(self, now: datetime) -> dict[str, Any] | None:
        b = self.upcoming(now)
        if b is None:
            return None
        return {
            "id": b.id,
            "member_id": b.member_id,
            "member_name": b.member_name,
            "start": b.start.isoformat(),
            "end": b.end.isoformat(),
            "start_clock": b.start.astimezone(self.tz).strftime("%H:%M"),
            "end_clock": b.end.astimezone(self.tz).strftime("%H:%M"),
            "day": b.start.astimezone(self.tz).strftime("%a %d %b"),
            "in_force": b.covers(now),
        }

    # -- decisions ----------------------------------------------------------------------------

    def judge(self, decision: Decision, now: datetime) -> Decision:
        member = getattr(decision, "member", None)
        last = self.last_used.get(member.id) if member is not None else None
        last_used = datetime.fromtimestamp(last, UTC) if last is not None else None
        return judge(decision, self._policy, now, last_used)

    def can_supervise(self, member: Member, now: datetime) -> bool:
        """Can ``member``, announced from elsewhere, supervise on this machine at ``now``?
        The same judgement their badge here would get: in good standing, inducted here
        at a level that supervises, the induction not lapsed."""
        # Bookings aside: a supervisor may be what the booker needs.
        unbooked = replace(self._policy, bookings=BookingBook(self.machine_id, ()))
        last = self.last_used.get(member.id)
        last_used = datetime.fromtimestamp(last, UTC) if last is not None else None
        decision = judge(decide_member(member, self.machine_id, now), unbooked, now, last_used)
        return isinstance(decision, Granted) and decision.can_supervise

    def session_opened(self, member_id: str, now: datetime) -> None:
        self.last_used[member_id] = now.timestamp()
        b = self._book.at(now)
        if b is not None and b.member_id == member_id and b.id not in self.used:
            self.used.add(b.id)
            self._policy = self._machine_policy()

    # -- grants ---------------------------------------------------------------------------------

    def grant(self, member_id: str, level: str | None, at: datetime) -> None:
        self.grants[member_id] = Induction(level=level, inducted_at=at)

    def confirmed(self, access_list: AccessList) -> set[str]:
        """Members whose grant the list now shows; they are dropped from ``grants``."""
        done = {
            member_id
            for member_id, grant in self.grants.items()
            if (m := access_list.by_id(member_id)) is not None
            and covers(m, self.machine_id, grant)
        }
        for member_id in done:
            del self.grants[member_id]
        return done

    def contradiction(self, access_list: AccessList) -> str | None:
        """Why this machine cannot use ``access_list``, naming the entry; None if it can.

        A level this machine does not define on an entry for this machine is refused
        (a misspelt "supervized" must not pass as the default level).
        """
        for index, m in enumerate(access_list.members):
            level = m.inductions.get(self.machine_id, Induction()).level
            if level is not None and not self.tiers.known(level):
                return (
                    f"member #{index + 1} (id {m.id!r}): machine {self.machine_id!r}: level "
                    f"{level!r} is not one of this machine's levels "
                    f"({', '.join(self.tiers.names)}); fix the list or [access.policy] levels"
                )
        return None

    def level_choice(self, level: str) -> tuple[str, int, bool]:
        if not self.tiers.known(level):
            raise ValueError(
                f"unknown level {level!r}; this machine has {', '.join(self.tiers.names)}"
            )
        return level, self.tiers.rank(level), self.tiers.needs_supervision(level)

    # -- reports ----------------------------------------------------------------------------------

    def lapsing(
        self, access_list: AccessList, now: datetime, within_days: int
    ) -> list[dict[str, Any]]:
        """Members whose induction here has lapsed or lapses within ``within_days``."""
        cfg = self.config.expiry
        if cfg.rule == "never":
            return []
        horizon = now + timedelta(days=within_days)
        out: list[dict[str, Any]] = []
        for m in access_list.members:
            role = m.role_on(self.machine_id)
            if role is None or role >= Role.TRAINER:
                continue
            last = self.last_used.get(m.id)
            verdict = expiry.evaluate(
                cfg,
                m.induction_on(self.machine_id),
                datetime.fromtimestamp(last, UTC) if last is not None else None,
                now,
            )
            if verdict.unknown or (verdict.lapses_at is not None and verdict.lapses_at <= horizon):
                out.append(
                    {
                        "member_id": m.id,
                        "member_name": m.name,
                        "lapsed": verdict.lapsed,
                        "lapses_at": verdict.lapses_at.isoformat() if verdict.lapses_at else None,
                        "days_left": verdict.days_left(now),
                        "unknown": verdict.unknown,
                    }
                )
        out.sort(key=lambda r: (r["lapses_at"] or "", r["member_id"]))
        return out


def grants_from_records(records: Mapping[str, tuple[str | None, float]]) -> dict[str, Induction]:
    """Unsynced induction records (member id to level and time) as list overlays."""
    return {
        member_id: Induction(level=level, inducted_at=datetime.fromtimestamp(at, UTC))
        for member_id, (level, at) in records.items()
    }

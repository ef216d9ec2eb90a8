"""Bookings: a machine reserved for one member for a while (pure: no I/O, no clock).

Bookings come from the access list (``"bookings": [...]``), the admin API and
MQTT (the ``book`` command).  During a booking only the booker (and
maintainers) may start a session; everyone else is refused with "booked for
Ada until 15:00".  A booking nobody uses is released ``booking_grace``
seconds after it starts, so a no-show does not keep the machine idle.

Contradictions are refused when a list or a booking is loaded: a booking that
ends before it starts, one for a member the list does not know, and two that
overlap for the same member or on the same machine.  The error names the
entry (``bookings[3]``) so it can be fixed where it was made.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.access.errors import AccessError

MAX_BOOKING = timedelta(days=7)
MIN_YEAR, MAX_YEAR = 1970, 9000
_KEYS = frozenset({"id", "machine", "member_id", "start", "end"})


class BookingError(AccessError):
    """A booking is malformed or contradicts another one; nothing of it was applied."""


@dataclass(frozen=True, slots=True)
class Booking:
    """``machine_id`` is reserved for ``member_id`` in ``[start, end)`` (aware datetimes)."""

    id: str
    machine_id: str
    member_id: str
    member_name: str
    start: datetime
    end: datetime
    source: str = "list"

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "machine": self.machine_id,
            "member_id": self.member_id,
            "member_name": self.member_name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.source,
        }


def in_range(t: datetime) -> bool:
    """Far-off years would overflow the date arithmetic (a grace added to a start)."""
    return MIN_YEAR <= t.year <= MAX_YEAR


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise BookingError(f"{where} must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BookingError(f"{where} is not an ISO 8601 date-time") from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    if not in_range(parsed):
        raise BookingError(f"{where} is out of range (years {MIN_YEAR} to {MAX_YEAR})")
    return parsed


def parse_booking(
    raw: Any, where: str, members: Mapping[str, str], *, source: str = "list"
) -> Booking:
    """One booking object; ``members`` maps member ids to names."""
    if not isinstance(raw, dict):
        raise BookingError(f"{where} is not a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise BookingError(f"{where} has unknown keys {unknown}")
    fields: dict[str, str] = {}
    for key in ("id", "machine", "member_id"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise BookingError(f"{where} needs '{key}' (a non-empty string of up to 64 characters)")
        fields[key] = value.strip()
    name = members.get(fields["member_id"])
    if name is None:
        raise BookingError(
            f"{where} is for member {fields['member_id']!r}, who is not in the access list"
        )
    start = _time(raw.get("start"), f"{where} start")
    end = _time(raw.get("end"), f"{where} end")
    if end <= start:
        raise BookingError(f"{where} ends before it starts")
    if end - start > MAX_BOOKING:
        raise BookingError(f"{where} is longer than {MAX_BOOKING.days} days")
    return Booking(fields["id"], fields["machine"], fields["member_id"], name, start, end, source)


def check_overlaps(bookings: Iterable[Booking], names: Mapping[str, str] | None = None) -> None:
    """Raise :class:`BookingError` if two bookings overlap for a member or a machine.

    ``names`` maps booking ids to where they were given (``bookings[3]``) for the message.
    """
    where = names or {}
    ordered = sorted(bookings, key=lambda b: b.start)
    for what in ("member", "machine"):
        last_end: dict[str, Booking] = {}
        for b in ordered:
            k = b.member_id if what == "member" else b.machine_id
            prev = last_end.get(k)
            if prev is not None and b.start < prev.end:
                raise BookingError(
                    f"{where.get(b.id, 'booking ' + repr(b.id))} overlaps "
                    f"{where.get(prev.id, 'booking ' + repr(prev.id))} for the same {what} "
                    f"{k!r}; a {what} can hold one booking at a time"
                )
            if prev is None or b.end > prev.end:
                last_end[k] = b


def parse_bookings(raw: list[Any], members: Mapping[str, str]) -> tuple[Booking, ...]:
    """The access list's ``bookings``: each validated, then checked against the others."""
    out: list[Booking] = []
    where: dict[str, str] = {}
    for i, entry in enumerate(raw):
        b = parse_booking(entry, f"bookings[{i}]", members)
        if b.id in where:
            raise BookingError(f"bookings[{i}] has the id {b.id!r} of {where[b.id]}")
        where[b.id] = f"bookings[{i}]"
        out.append(b)
    check_overlaps(out, where)
    return tuple(out)


class BookingBook:
    """The bookings of one machine, by start time, with the questions the machine asks."""

    __slots__ = ("_starts", "bookings")

    def __init__(self, machine_id: str, bookings: Iterable[Booking]) -> None:
        self.bookings = tuple(
            sorted((b for b in bookings if b.machine_id == machine_id), key=lambda b: b.start)
        )
        self._starts = [b.start for b in self.bookings]

    def __len__(self) -> int:
        return len(self.bookings)

    def at(self, now: datetime) -> Booking | None:
        """The booking covering ``now``, released or not (bookings never overlap)."""
        i = bisect.bisect_right(self._starts, now) - 1
        if i >= 0 and self.bookings[i].covers(now):
            return self.bookings[i]
        return None

    def current(self, now: datetime, used: frozenset[str], grace: float) -> Booking | None:
        """The booking in force at ``now``: covering it and not released as unused."""
        b = self.at(now)
        if b is None or released(b, now, used, grace):
            return None
        return b

    def upcoming(self, now: datetime, used: frozenset[str], grace: float) -> Booking | None:
        """The booking in force now, else the next one to start."""
        if (b := self.current(now, used, grace)) is not None:
            return b
        i = bisect.bisect_right(self._starts, now)
        return self.bookings[i] if i < len(self.bookings) else None


def released(booking: Booking, now: datetime, used: frozenset[str], grace: float) -> bool:
    """An unused booking is given up ``grace`` seconds after it starts."""
    return booking.id not in used and now >= booking.start + timedelta(seconds=grace)


def clock(t: datetime, tz: Any = None) -> str:
    """``15:00``, or ``Tue 15:00`` when not today, in ``tz`` (the gateway's zone)."""
    return t.astimezone(tz).strftime("%H:%M")

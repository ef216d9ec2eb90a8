"""Members, the access list, and the access decision (pure: no I/O, no clock).

The membership system exports an access list as JSON; every source (file, HTTP,
MQTT) hands the bytes to :func:`parse_access_list`, which validates the whole
document before anything is applied.  Schema, version 1::

    {
      "version": 1,
      "generated_at": "2024-05-01T12:00:00Z",
      "count": 2,
      "members": [
        {
          "id": "m-17",
          "name": "Ada",
          "badges": ["04A2B3C4D5E680"],
          "badge_hashes": ["<64 hex chars>"],
          "machines": {"laser-1": "trainer", "*": "user",
                       "cnc-1": {"role": "user", "level": "supervised",
                                 "inducted_at": "2024-03-01", "last_used": "2024-04-20"}},
          "valid_from": "2024-01-01",
          "valid_until": "2024-12-31T23:59:59Z",
          "suspended": null
        }
      ],
      "bookings": [
        {"id": "b-1", "machine": "laser-1", "member_id": "m-17",
         "start": "2024-05-02T13:00:00+01:00", "end": "2024-05-02T15:00:00+01:00"}
      ]
    }

``version`` must be 1 and ``count`` must equal the number of members, so a
list cut short at a record boundary is refused rather than silently locking
out everyone after the cut.  Per member:

- ``id`` (required, unique, non-empty) and ``name`` (required, shown on screen).
- ``badges``: raw card UIDs in hex (separators ``:``, ``-`` and spaces and a
  ``0x`` prefix are ignored, case does not matter).  They are hashed with the
  site secret on import and discarded: a UID is never stored or logged.
- ``badge_hashes``: already-hashed badges, ``HMAC-SHA256(site_secret,
  normalised UID)`` in hex, for membership systems that know the secret.
- ``machines``: machine id to role (``user``, ``trainer``, ``maintainer``);
  the key ``"*"`` grants a role on every machine, and the higher role wins.
  Instead of the role string an object gives the induction's details:
  ``role`` (default ``user``), ``level`` (an induction level of the machine's
  ``[access.policy]``, e.g. ``supervised``), ``inducted_at`` and ``last_used``
  (ISO 8601; used by induction expiry, :mod:`gateway.access.expiry`).
- ``valid_from`` / ``valid_until``: ISO 8601 dates or date-times, or null.
  Times without a zone are UTC; a date alone means the whole day, so
  ``"valid_until": "2024-12-31"`` still opens the machine on 31 December (UTC).
- ``suspended``: null, or the reason shown to the member.

Unknown keys are errors, so a misspelt ``"suspend"`` cannot silently leave a
member active.  A badge listed under two members is an error too.

``bookings`` (optional) reserves machines for members
(:mod:`gateway.access.bookings`); a booking for an unknown member, one that
ends before it starts, or two that overlap for the same member or machine are
errors naming the entry (``bookings[3]``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from typing import Any, Literal

from gateway.access.bookings import Booking, BookingError, parse_bookings
from gateway.access.errors import AccessError

SCHEMA_VERSION = 1
MIN_YEAR, MAX_YEAR = 1970, 9000
WILDCARD_MACHINE = "*"

_HEX_UID = re.compile(r"^[0-9A-F]{1,32}$")
_HEX_HASH = re.compile(r"^[0-9a-f]{64}$")
_MEMBER_KEYS = frozenset(
    {"id", "name", "badges", "badge_hashes", "machines", "valid_from", "valid_until", "suspended"}
)
_INDUCTION_KEYS = frozenset({"role", "level", "inducted_at", "last_used"})
_TOP_KEYS = frozenset({"version", "generated_at", "count", "members", "bookings"})


class AccessListError(AccessError):
    """An access list is malformed or truncated; nothing of it was applied."""


class Role(IntEnum):
    """What a member may do on a machine; a higher role includes the lower ones."""

    USER = 1
    TRAINER = 2
    MAINTAINER = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r} (use user, trainer or maintainer)") from None


def normalise_uid(uid: str) -> str:
    """Uppercase hex without separators; raises ValueError (never echoing the UID)."""
    text = uid.strip().upper()
    if text.startswith("0X"):
        text = text[2:]
    text = text.replace(":", "").replace("-", "").replace(" ", "")
    if not _HEX_UID.match(text):
        raise ValueError("badge UID must be 1 to 32 hexadecimal digits")
    return text


def badge_hash(uid: str, secret: bytes) -> str:
    """HMAC-SHA256 (hex) of the normalised UID under the site secret.

    The hash is what is stored and compared; without the secret it cannot be
    turned back into a UID, and it differs between sites.
    """
    return hmac.new(secret, normalise_uid(uid).encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Induction:
    """What the access list says about one member's induction on one machine."""

    level: str | None = None
    inducted_at: datetime | None = None
    last_used: datetime | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """One member as the gateway needs them; ``valid_until`` is exclusive."""

    id: str
    name: str
    roles: Mapping[str, Role]
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    suspended_reason: str | None = None
    badge_hashes: frozenset[str] = frozenset()
    inductions: Mapping[str, Induction] = field(default_factory=dict)

    def role_on(self, machine_id: str) -> Role | None:
        """The member's role on ``machine_id`` (the wildcard counts too), or None."""
        roles = [r for key, r in self.roles.items() if key in (machine_id, WILDCARD_MACHINE)]
        return max(roles) if roles else None

    def induction_on(self, machine_id: str) -> Induction:
        """The induction details for ``machine_id`` (else the wildcard's, else none)."""
        found = self.inductions.get(machine_id) or self.inductions.get(WILDCARD_MACHINE)
        return found if found is not None else _NO_INDUCTION


_NO_INDUCTION = Induction()


class AccessList:
    """A validated, immutable access list indexed by badge hash and member id."""

    __slots__ = ("_by_badge", "_by_id", "bookings", "generated_at", "members", "version")

    def __init__(
        self,
        members: tuple[Member, ...] | list[Member],
        *,
        generated_at: datetime | None = None,
        version: int = SCHEMA_VERSION,
        bookings: tuple[Booking, ...] = (),
    ) -> None:
        self.members: tuple[Member, ...] = tuple(members)
        self.generated_at = generated_at
        self.version = version
        self.bookings = bookings
        self._by_id: dict[str, Member] = {}
        self._by_badge: dict[str, Member] = {}
        for m in self.members:
            if m.id in self._by_id:
                raise AccessListError(f"member id {m.id!r} appears twice in the access list")
            self._by_id[m.id] = m
            for h in m.badge_hashes:
                other = self._by_badge.get(h)
                if other is not None:
                    raise AccessListError(
                        f"a badge is listed under both member {other.id!r} and {m.id!r}; "
                        "fix it in the membership system"
                    )
                self._by_badge[h] = m

    @classmethod
    def empty(cls) -> AccessList:
        return cls(())

    def __len__(self) -> int:
        return len(self.members)

    def by_badge(self, uid_hash: str) -> Member | None:
        return self._by_badge.get(uid_hash)

    def by_id(self, member_id: str) -> Member | None:
        return self._by_id.get(member_id)

    def with_inductions(
        self, machine_id: str, grants: Mapping[str, Induction] | set[str]
    ) -> AccessList:
        """This list plus the inductions granted on ``machine_id`` at the machine that
        the membership system has not sent back yet (a set of member ids means a
        plain induction at the default level)."""
        if isinstance(grants, set):
            grants = {member_id: Induction() for member_id in grants}
        pending = {
            member_id: g
            for member_id, g in grants.items()
            if (m := self.by_id(member_id)) is not None and not covers(m, machine_id, g)
        }
        if not pending:
            return self
        members = [
            replace(
                m,
                roles={**m.roles, machine_id: max(m.role_on(machine_id) or Role.USER, Role.USER)},
                inductions={**m.inductions, machine_id: pending[m.id]},
            )
            if m.id in pending
            else m
            for m in self.members
        ]
        return AccessList(
            members, generated_at=self.generated_at, version=self.version, bookings=self.bookings
        )


def covers(member: Member, machine_id: str, grant: Induction) -> bool:
    """Does the list already hold ``grant`` (or better) for the member?"""
    if member.role_on(machine_id) is None:
        return False
    have = member.induction_on(machine_id)
    if grant.level is not None and have.level != grant.level:
        return False
    # Membership systems often keep the date alone: the same day counts.
    if grant.inducted_at is None:
        return True
    return have.inducted_at is not None and have.inducted_at.date() >= grant.inducted_at.date()


# -- parsing -------------------------------------------------------------------


def _parse_time(value: Any, *, end_of_day: bool, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AccessListError(f"{where} must be an ISO 8601 date or date-time string or null")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            parsed = start + timedelta(days=1) if end_of_day else start
        else:
            parsed = datetime.fromisoformat(value)
            parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise AccessListError(f"{where} is not an ISO 8601 date or date-time") from err
    # Far-off years would overflow the date arithmetic of expiry and bookings.
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise AccessListError(f"{where} is out of range (years {MIN_YEAR} to {MAX_YEAR})")
    return parsed


def _parse_member(raw: Any, index: int, secret: bytes) -> Member:
    where = f"member #{index + 1}"
    if not isinstance(raw, dict):
        raise AccessListError(f"{where} is not a JSON object")
    member_id = raw.get("id")
    if not isinstance(member_id, str) or not member_id.strip():
        raise AccessListError(f"{where} has no 'id' (a non-empty string is required)")
    where = f"member #{index + 1} (id {member_id!r})"
    unknown = sorted(set(raw) - _MEMBER_KEYS)
    if unknown:
        raise AccessListError(f"{where} has unknown keys {unknown}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AccessListError(f"{where} has no 'name'")

    hashes: set[str] = set()
    badges = raw.get("badges", [])
    if not isinstance(badges, list):
        raise AccessListError(f"{where}: 'badges' must be a list of hex UIDs")
    for n, uid in enumerate(badges, start=1):
        if not isinstance(uid, str):
            raise AccessListError(f"{where}: badge {n} is not a string")
        try:
            hashes.add(badge_hash(uid, secret))
        except ValueError as err:
            raise AccessListError(f"{where}: badge {n}: {err}") from None
    pre_hashed = raw.get("badge_hashes", [])
    if not isinstance(pre_hashed, list):
        raise AccessListError(f"{where}: 'badge_hashes' must be a list")
    for n, h in enumerate(pre_hashed, start=1):
        if not isinstance(h, str) or not _HEX_HASH.match(h.lower()):
            raise AccessListError(f"{where}: badge hash {n} is not 64 hexadecimal digits")
        hashes.add(h.lower())

    machines = raw.get("machines", {})
    if not isinstance(machines, dict):
        raise AccessListError(f"{where}: 'machines' must map machine ids to roles")
    roles: dict[str, Role] = {}
    inductions: dict[str, Induction] = {}
    for machine_id, entry in machines.items():
        at = f"{where}: machine {machine_id!r}"
        role_name: Any = entry
        if isinstance(entry, dict):
            unknown_keys = sorted(set(entry) - _INDUCTION_KEYS)
            if unknown_keys:
                raise AccessListError(f"{at} has unknown keys {unknown_keys}")
            role_name = entry.get("role", "user")
            level = entry.get("level")
            if level is not None and (not isinstance(level, str) or not level.strip()):
                raise AccessListError(f"{at}: 'level' must be a level name such as 'supervised'")
            inductions[machine_id] = Induction(
                level=level,
                inducted_at=_parse_time(
                    entry.get("inducted_at"), end_of_day=False, where=f"{at} inducted_at"
                ),
                last_used=_parse_time(
                    entry.get("last_used"), end_of_day=False, where=f"{at} last_used"
                ),
            )
        if not isinstance(role_name, str):
            raise AccessListError(f"{at}: the role must be a string or an induction object")
        try:
            roles[machine_id] = Role.parse(role_name)
        except ValueError as err:
            raise AccessListError(f"{at}: {err}") from None

    suspended = raw.get("suspended")
    if suspended is not None and not isinstance(suspended, str):
        raise AccessListError(f"{where}: 'suspended' must be null or the reason as a string")
    if isinstance(suspended, str) and not suspended.strip():
        suspended = "no reason given"
    valid_from = _parse_time(raw.get("valid_from"), end_of_day=False, where=f"{where} valid_from")
    valid_until = _parse_time(raw.get("valid_until"), end_of_day=True, where=f"{where} valid_until")
    if valid_from and valid_until and valid_until <= valid_from:
        raise AccessListError(f"{where}: valid_until is not after valid_from")
    return Member(
        id=member_id,
        name=name.strip(),
        roles=roles,
        valid_from=valid_from,
        valid_until=valid_until,
        suspended_reason=suspended,
        badge_hashes=frozenset(hashes),
        inductions=inductions,
    )


_MAX_NUMBER_CHARS = 32


def _json_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise AccessListError(
            f"access list holds a number of {len(text)} digits; no field takes one that long"
        )
    return int(text)


def _json_float(text: str) -> float:
    value = float(text[: _MAX_NUMBER_CHARS + 1])
    if len(text) > _MAX_NUMBER_CHARS or not math.isfinite(value):
        raise AccessListError(f"access list holds a number out of range ({text[:20]})")
    return value


def _json_constant(name: str) -> Any:
    raise AccessListError(f"access list holds {name}, which is not a JSON number")


def parse_access_list(raw: bytes | str, secret: bytes) -> AccessList:
    """Validate a whole access list document; raise :class:`AccessListError` if unusable."""
    try:
        doc = json.loads(
            raw, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant
        )
    except RecursionError:
        # json's C scanner honours the recursion limit: a hostile "[[[[..." ends here.
        raise AccessListError(
            "access list is nested too deeply to be an access list; "
            "check the export from the membership system"
        ) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise AccessListError(
            f"access list is not valid JSON ({err}); it may be truncated - "
            "check the export from the membership system"
        ) from None
    if not isinstance(doc, dict):
        raise AccessListError("access list must be a JSON object with 'version' and 'members'")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise AccessListError(f"access list has unknown keys {unknown}")
    if doc.get("version") != SCHEMA_VERSION:
        raise AccessListError(
            f"access list version {doc.get('version')!r} is not supported (expected 1)"
        )
    generated_at = _parse_time(doc.get("generated_at"), end_of_day=False, where="generated_at")
    if generated_at is None:
        raise AccessListError("access list has no 'generated_at' time")
    members = doc.get("members")
    if not isinstance(members, list):
        raise AccessListError("access list has no 'members' list")
    count = doc.get("count")
    if not isinstance(count, int) or isinstance(count, bool):
        raise AccessListError(
            "access list has no member 'count'; refusing a list that "
            "cannot be checked for truncation"
        )
    if count != len(members):
        raise AccessListError(
            f"access list says it has {count} members but contains {len(members)}; "
            "it is truncated or corrupted"
        )
    parsed = [_parse_member(m, i, secret) for i, m in enumerate(members)]
    known = {m.id: m.name for m in parsed}
    raw_bookings = doc.get("bookings", [])
    if not isinstance(raw_bookings, list):
        raise AccessListError("access list 'bookings' must be a list")
    try:
        bookings = parse_bookings(raw_bookings, known)
    except BookingError as err:
        raise AccessListError(str(err)) from None
    return AccessList(parsed, generated_at=generated_at, version=SCHEMA_VERSION, bookings=bookings)


# -- the decision ------------------------------------------------------------------

DenialReason = Literal[
    "unknown_badge",
    "not_inducted",
    "expired",
    "not_yet_valid",
    "suspended",
    "locked_out",
    "induction_lapsed",
    "booked",
]


@dataclass(frozen=True, slots=True)
class Granted:
    """May use the machine.  The policy fields are filled in by
    :func:`gateway.access.policy.judge`: the member's induction ``level`` and its
    ``rank``, whether it needs a supervisor present, whether this member can
    supervise others, a ``notice`` for the screen (an expiry warning), and whether
    the member holds the booking in force (``booked``: they may take the machine
    over from a member without one, see :mod:`gateway.access.session`)."""

    member: Member
    role: Role
    level: str | None = None
    rank: int = 0
    supervised: bool = False
    can_supervise: bool = False
    notice: str | None = None
    booked: bool = False  # holds the booking in force on this machine


@dataclass(frozen=True, slots=True)
class Denied:
    """A refusal; ``member`` is known for every reason except ``unknown_badge``."""

    reason: DenialReason
    message: str
    member: Member | None = field(default=None)


Decision = Granted | Denied


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _last_day(until: datetime) -> str:
    """An exclusive end as the list wrote it: a date-only ``valid_until`` of 2021-12-31
    is stored as 2022-01-01 00:00 UTC, and the member should read "2021-12-31"."""
    if (until.hour, until.minute, until.second, until.microsecond) == (0, 0, 0, 0):
        return (until - timedelta(days=1)).strftime("%Y-%m-%d")
    return _day(until)


def decide_member(member: Member, machine_id: str, now: datetime) -> Decision:
    """:func:`decide` for a member already identified (not by a badge), without lockout."""
    probe = "0" * 64
    alone = AccessList([replace(member, badge_hashes=frozenset({probe}))])
    return decide(alone, probe, machine_id, now, None)


def decide(
    access_list: AccessList,
    uid_hash: str,
    machine_id: str,
    now: datetime,
    lockout: str | None,
) -> Decision:
    """May the badge with ``uid_hash`` use ``machine_id`` at ``now``?

    ``lockout`` is the active maintenance lockout's reason, or None.  Checks run
    from the most to the least fundamental, so the member hears the reason
    they can act on first.
    """
    member = access_list.by_badge(uid_hash)
    if member is None:
        return Denied("unknown_badge", "Badge not recognised. Ask staff to register it.")
    if member.suspended_reason is not None:
        return Denied(
            "suspended",
            f"{member.name}, your membership is suspended ({member.suspended_reason}). "
            "Please speak to staff.",
            member,
        )
    if member.valid_from is not None and now < member.valid_from:
        return Denied(
            "not_yet_valid",
            f"{member.name}, your access starts {_day(member.valid_from)}.",
            member,
        )
    if member.valid_until is not None and now >= member.valid_until:
        return Denied(
            "expired",
            f"{member.name}, your membership ran until {_last_day(member.valid_until)}. "
            "Renew it to use the machines.",
            member,
        )
    role = member.role_on(machine_id)
    if role is None:
        return Denied(
            "not_inducted",
            f"{member.name}, you are not inducted on this machine. Ask a trainer.",
            member,
        )
    if lockout is not None and role < Role.MAINTAINER:
        return Denied(
            "locked_out",
            f"Machine locked out: {lockout}. Only a maintainer can use it.",
            member,
        )
    return Granted(member, role)

"""Jobs held for their member: the pure policy (no I/O, no clock; times are passed in).

Rules, in the order a reviewer asks about them:

1. An upload with ``print=true`` never starts the machine by itself: it becomes a
   :class:`HeldJob` in state ``HELD`` for the member whose key uploaded it.
2. Only that member releases it, by tapping start on the touchscreen while badged in
   (``release = "badge"``); with ``release = "session"`` it is released at upload time
   when that member is in session then.  Anybody else's tap is refused.
3. A held job expires ``hold_hours`` after upload; an expired job never starts.
4. The member (their key or their session) or an admin can cancel it while it is held.
5. ``STARTED``, ``CANCELLED`` and ``EXPIRED`` are final.

A member who is expired or not inducted here cannot badge in, so rule 2 alone keeps
their jobs from starting; they may still upload.  A suspended member's key is refused
outright (the service asks the access capability's ``member_standing``).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from gateway.slicer.errors import SlicerError

#: How a file or job reached the machine.
Door = Literal["slicer", "web", "usb", "cli"]
DOORS: tuple[Door, ...] = ("slicer", "web", "usb", "cli")


class HeldState(StrEnum):
    HELD = "held"
    STARTED = "started"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class HeldAction(StrEnum):
    RELEASE = "release"
    CANCEL = "cancel"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class HeldJob:
    id: int
    file: str  # the name in the machine's library
    display_name: str  # the name as the member wrote it
    member_id: str
    member_name: str
    door: Door
    uploaded_at: float
    expires_at: float
    state: HeldState = HeldState.HELD
    released_by: str | None = None
    ended_at: float | None = None

    @property
    def final(self) -> bool:
        return self.state is not HeldState.HELD

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["state"] = self.state.value
        d["held_for"] = short_name(self.member_name)
        return d


class HeldJobRefused(SlicerError):
    """A held job cannot be released or cancelled; the message says why."""


def refusal(
    job: HeldJob, action: HeldAction, *, by: str | None, now: float
) -> tuple[str, str] | None:
    """Why ``by`` may not apply ``action`` to ``job`` at ``now``, as ``(code, message)``;
    None when allowed.

    ``by`` is the member id acting (the badged-in member, or a key's member), or None
    for an admin (cancel) or the clock (expire).
    """
    if job.final:
        return "bad_state", f"{job.display_name} is already {job.state.value}"
    match action:
        case HeldAction.EXPIRE:
            return None if now >= job.expires_at else ("bad_state", "the job has not expired")
        case HeldAction.RELEASE:
            if now >= job.expires_at:
                return "expired", f"{job.display_name} waited too long and expired; send it again"
            if by is None:
                return "no_session", "badge in at the machine to start a held job"
            if by != job.member_id:
                return (
                    "not_yours",
                    f"{job.display_name} is held for {short_name(job.member_name)}; "
                    "only they can start it",
                )
            return None
        case HeldAction.CANCEL:
            if by is not None and by != job.member_id:
                return "not_yours", f"{job.display_name} belongs to {short_name(job.member_name)}"
            return None


_ENDS = {
    HeldAction.RELEASE: HeldState.STARTED,
    HeldAction.CANCEL: HeldState.CANCELLED,
    HeldAction.EXPIRE: HeldState.EXPIRED,
}


def transition(job: HeldJob, action: HeldAction, *, by: str | None, now: float) -> HeldJob:
    """The job after ``action``; raises :class:`HeldJobRefused` when the rules forbid it."""
    refused = refusal(job, action, by=by, now=now)
    if refused is not None:
        raise HeldJobRefused(*refused)
    released_by = by if action is HeldAction.RELEASE else job.released_by
    return dataclasses.replace(job, state=_ENDS[action], released_by=released_by, ended_at=now)


# -- names -------------------------------------------------------------------------------


def short_name(full: str) -> str:
    """'Ada Lovelace' -> 'Ada L.': enough to find your job, not a full name on a screen."""
    parts = full.split()
    if not parts:
        return "a member"
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} {parts[-1][0]}."


SUFFIXES = (".gcode", ".gco", ".gc", ".g", ".nc", ".ngc", ".tap", ".cnc")
MAX_DISPLAY = 200
MAX_DISK = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._()+\- ]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def display_name(raw: str) -> str:
    """The file's name as the member wrote it (accents, spaces, emoji kept), without
    any folder part a client sent (``../../x.gcode`` -> ``x.gcode``) or control bytes."""
    base = re.split(r"[/\\]", raw)[-1]
    base = _CONTROL.sub("", unicodedata.normalize("NFC", base)).strip()
    return base[-MAX_DISPLAY:]


def disk_name(display: str) -> str:
    """A safe name for the library from a display name, or :class:`SlicerError`.

    Accents become their base letter, anything else outside ``A-Za-z0-9._()+- `` becomes
    ``_``; a leading dot is dropped; a long name is cut in the middle so that its start
    and its end (where versions usually differ) both stay.
    """
    # Each character folds to its base letters; one that folds to nothing (an emoji)
    # leaves a '_', so 'a😀.gcode' and 'a.gcode' stay apart.
    folded = "".join(ch if ch.isascii() else (_fold(ch) or "_") for ch in display)
    safe = _UNSAFE.sub("_", folded).strip(" .")
    lower = safe.lower()
    suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
    if suffix is None:
        raise SlicerError(
            "bad_name",
            f"{display!r} is not a G-code file name; slice to one of: {', '.join(SUFFIXES)}",
        )
    stem = safe[: -len(suffix)].strip(" .") or "file"
    room = MAX_DISK - len(suffix)
    if len(stem) > room:
        half = (room - 1) // 2
        stem = f"{stem[:half]}_{stem[-(room - 1 - half) :]}"
    return stem + safe[-len(suffix) :]


def _fold(ch: str) -> str:
    return unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()


def distinct_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... before the suffix, whichever is not taken
    (OctoPrint also gives a new name when a file of that name is in use)."""
    if name not in taken:
        return name
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    n = 2
    while True:
        tag = f"-{n}"
        candidate = f"{stem[: MAX_DISK - len(suffix) - len(tag)]}{tag}{suffix}"
        if candidate not in taken:
            return candidate
        n += 1

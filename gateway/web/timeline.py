"""The admin page's events timeline: what happened at the machine, in the workshop's words.

:class:`Timeline` turns bus events into :class:`Entry` rows - who (a member's
short name, "Ada L."), what ("started benchy.gcode") and how serious - and keeps
the newest :data:`KEEP` of them in memory for ``GET /api/timeline``.  It is pure:
:meth:`Timeline.record` takes an event and returns the entry it made; the web
app's lifespan feeds it from the bus.  Snapshots (``state``, ``job_progress``,
``access_state``) only teach it names and the current member; they make no row.

The rows cover the time since the daemon started; sessions and jobs before
that are in their own records (``/api/sessions``, ``/api/jobs``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.access.events import AccessState
from gateway.bus import Event

#: Rows kept (the oldest go first).
KEEP = 1000

Level = Literal["info", "warning", "alarm"]

#: The door a job or command came in by, as the admin reads it.
DOORS = {
    "kiosk": "the touchscreen",
    "web": "the admin page or API",
    "slicer": "a slicer",
    "usb": "a USB stick",
    "cli": "the command line",
    "mqtt": "MQTT",
}

_SESSION_END = {
    "badge_out": "badged out",
    "idle_timeout": "was badged out: no job for a while",
    "max_session": "was badged out: longest session time reached",
    "lockout": "was badged out by a lockout",
    "interlock": "was badged out: a safety guard opened",
    "estop": "was badged out by the emergency stop",
    "shutdown": "was badged out: the gateway stopped",
    "takeover": "handed the machine over to the member just inducted",
    "booked": "made way for a member whose booking had started",
}


class Entry(BaseModel):
    """One row of the timeline."""

    seq: int = Field(description="Increasing number; ask for rows after it with ?after=")
    at: float = Field(description="When it happened, seconds since the epoch (UTC)")
    kind: str = Field(description="The event's topic, e.g. job_started, access_denied")
    level: Level
    who: str | None = Field(description="The member or token involved, if known")
    text: str = Field(description="What happened, as a sentence")


def short_name(name: str | None) -> str | None:
    """ "Ada Lovelace" -> "Ada L.": enough to recognise a member on a list."""
    parts = (name or "").split()
    if not parts:
        return None
    return f"{parts[0]} {parts[-1][0]}." if len(parts) > 1 else parts[0]


def _minutes(seconds: float) -> str:
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def _where(origin: str) -> str:
    """ "kiosk" -> "on the touchscreen"; "token:ops" -> "through the API (token ops)"."""
    if origin.startswith("token:"):
        return f"through the API (token {origin[6:]})"
    if origin == "kiosk":
        return "on the touchscreen"
    door = DOORS.get(origin)
    return f"from {door}" if door else f"by {origin}"


class Timeline:
    """The newest timeline rows, and what it has learnt of names, jobs and the member."""

    def __init__(self, keep: int = KEEP) -> None:
        self.entries: deque[Entry] = deque(maxlen=keep)
        self._seq = 0
        self._names: dict[str, str] = {}
        self._files: dict[int, str] = {}
        self._member: str | None = None  # id of the member whose session is open

    def after(self, seq: int, limit: int) -> list[Entry]:
        """Rows newer than ``seq``, newest first, at most ``limit``."""
        rows = [e for e in self.entries if e.seq > seq]
        return rows[::-1][:limit]

    def _who(self, member_id: str | None) -> str | None:
        return short_name(self._names.get(member_id or "")) if member_id else None

    def record(self, event: Event) -> Entry | None:
        """Learn from ``event``; add and return its row, if it makes one."""
        # The access snapshot has no topic of its own; the live stream calls it access_state.
        topic = "access_state" if isinstance(event, AccessState) else type(event).topic
        if topic is None:
            return None
        data: dict[str, Any] = dataclasses.asdict(event)
        described = self._describe(topic, data)
        if described is None:
            return None
        level, who, text = described
        self._seq += 1
        entry = Entry(seq=self._seq, at=event.ts, kind=topic, level=level, who=who, text=text)
        self.entries.append(entry)
        return entry

    def _describe(self, topic: str, d: dict[str, Any]) -> tuple[Level, str | None, str] | None:
        match topic:
            case "state" | "job_progress" | "outbox_dropped":
                return None
            case "access_state":
                if d.get("member_id") and d.get("member_name"):
                    self._names[d["member_id"]] = d["member_name"]
                in_session = d.get("state") in ("authorised", "in_use")
                self._member = d.get("member_id") if in_session else None
                return None
            case "session_started":
                self._names[d["member_id"]] = d["member_name"]
                self._member = d["member_id"]
                who = short_name(d["member_name"])
                if d.get("inducted_by"):
                    trainer = self._who(d["inducted_by"]) or "a trainer"
                    return "info", who, f"{who} was inducted by {trainer} and badged in"
                return "info", who, f"{who} badged in ({d['role']})"
            case "session_ended":
                who = self._who(d["member_id"]) or "A member"
                if self._member == d["member_id"]:
                    self._member = None
                what = _SESSION_END.get(d["reason"], f"'s session ended ({d['reason']})")
                jobs = d.get("jobs") or 0
                after = f" ({_minutes(d.get('duration') or 0)}, {jobs} job{'s' * (jobs != 1)})"
                level: Level = "warning" if d["reason"] in ("estop", "interlock") else "info"
                return level, who, f"{who} {what}{after}"
            case "access_denied":
                who = self._who(d.get("member_id"))
                return "warning", who, f"Badge refused: {d['message']}"
            case "induction":
                trainer = self._who(d["trainer_id"]) or d["trainer_id"]
                member = self._who(d["member_id"]) or "a new member"
                return "info", trainer, f"{trainer} inducted {member} on this machine"
            case "lockout":
                by = self._who(d.get("by")) or d.get("by") or "someone"
                if d.get("active"):
                    return "alarm", by, f"{by} took the machine out of service: {d.get('reason')}"
                return "info", by, f"{by} put the machine back in service"
            case "relay":
                state = "on" if d["on"] else "off"
                return "info", None, f"Machine power switched {state} ({d['reason']})"
            case "access_list":
                if d.get("ok"):
                    return "info", None, f"Access list from {d['source']}: {d['members']} members"
                return "warning", None, f"Access list from {d['source']} refused: {d['error']}"
            case "job_started":
                self._files[d["job_id"]] = d["file"]
                who = self._who(self._member)
                door = DOORS.get(d.get("origin") or "")
                via = f" from {door}" if door else ""
                if who:
                    return "info", who, f"{who} started {d['file']}{via}"
                return "info", None, f"{d['file']} started{via}"
            case "job_paused" | "job_resumed":
                file = self._files.get(d["job_id"], f"job {d['job_id']}")
                verb = "paused" if topic == "job_paused" else "resumed"
                return "info", self._who(self._member), f"{file} {verb}"
            case "job_finished":
                file = d["file"]
                took = _minutes(d.get("seconds") or 0)
                match d["outcome"]:
                    case "completed":
                        return "info", None, f"{file} finished in {took}"
                    case "cancelled":
                        return "info", None, f"{file} was cancelled after {took}"
                    case "estop":
                        return "alarm", None, f"{file} was stopped by the emergency stop"
                    case _:
                        why = f": {d['reason']}" if d.get("reason") else ""
                        return "alarm", None, f"{file} failed after {took}{why}"
            case "error":
                return "alarm", None, f"Controller problem: {d['message']}"
            case "estop":
                return "alarm", None, f"Emergency stop pressed {_where(d['origin'])}"
            case "camera_alert":
                if d.get("active"):
                    return "warning", None, f"Camera: {d['message']}"
                return "info", None, f"Camera alert cleared: {d['message']}"
            case "timelapse":
                frames = d["frames"]
                return "info", None, f"Timelapse of job {d['job_id']} is ready ({frames} frames)"
            case _:
                message = d.get("message") or d.get("reason") or ""
                text = topic.replace("_", " ").capitalize() + (f": {message}" if message else "")
                return "info", None, text

"""What goes over MQTT: topic names and JSON payloads, built by pure functions.

Nothing here touches the network, the clock or the database; the service hands
in the values (including the time) and gets bytes back.  Every payload is a
JSON object with ``schema`` (:data:`SCHEMA`) so subscribers can evolve with it.
The README ("MQTT topics and payloads") documents each topic and payload.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.bus import Event
from gateway.machine.events import JobProgress, MachineStatus

SCHEMA = 1

#: Keys of the event envelope; an event field with one of these names is sent as ``<name>_``.
ENVELOPE_KEYS = frozenset({"schema", "event_id", "ts", "machine_id", "type"})

#: Command names: what a capability may register and what a ``cmd/<name>`` level may hold.
COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

#: Heater names Marlin reports for the first nozzle and the bed (see gateway.machine.protocol).
NOZZLE_HEATERS = ("T0", "T")
BED_HEATERS = ("B",)


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one gateway, all under ``prefix`` (``gateway/<machine id>``)."""

    prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def state(self) -> str:
        return f"{self.prefix}/state"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}/telemetry"

    @property
    def commands(self) -> str:
        """The filter the gateway subscribes to for remote commands."""
        return f"{self.prefix}/cmd/+"

    def event(self, topic: str) -> str:
        return f"{self.prefix}/event/{topic}"

    def command_result(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}/result"

    def command_name(self, topic: str) -> str | None:
        """The command a ``<prefix>/cmd/<name>`` topic addresses, else None."""
        head = f"{self.prefix}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None


# --------------------------------------------------------------------------- JSON


def iso_utc(ts: float) -> str:
    """``ts`` (seconds since the epoch) as ISO 8601 UTC with milliseconds and a ``Z``."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """``value`` with tuples, sets, bytes, paths, enums, dates and NaN made JSON-friendly.

    Bytes become base64 text; non-finite floats become ``null`` (JSON has no NaN).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, PurePath | uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return str(value)


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of an already JSON-friendly mapping."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- events


class EventIds:
    """``<machine>-<boot id>-<seq>``: unique across restarts, ordered within one run.

    The boot id is random per service start, so ids never repeat after a restart
    even though ``seq`` starts again at 1.
    """

    def __init__(self, machine_id: str, boot_id: str | None = None) -> None:
        self.machine_id = machine_id
        self.boot_id = boot_id or uuid.uuid4().hex[:12]
        self.seq = 0

    def next(self) -> str:
        self.seq += 1
        return f"{self.machine_id}-{self.boot_id}-{self.seq}"


def event_payload(event: Event, *, event_id: str, machine_id: str) -> dict[str, Any]:
    """The envelope plus the event's own fields (``ts`` moves into the envelope)."""
    if event.topic is None:
        raise ValueError(f"{type(event).__name__} has no topic and stays inside the daemon")
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "event_id": event_id,
        "ts": iso_utc(event.ts),
        "machine_id": machine_id,
        "type": event.topic,
    }
    for f in dataclasses.fields(event):
        if f.name == "ts":
            continue
        key = f"{f.name}_" if f.name in ENVELOPE_KEYS else f.name
        body[key] = jsonable(getattr(event, f.name))
    return body


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class AccessView:
    """The parts of the access capability's snapshot that the ``state`` topic shows."""

    state: str
    session_active: bool
    member: str | None
    lockout: bool
    lockout_reason: str | None


def _first_reading(
    temperatures: Mapping[str, tuple[float, float | None]], names: tuple[str, ...]
) -> float | None:
    for name in names:
        reading = temperatures.get(name)
        if reading is not None:
            return jsonable(reading[0])  # type: ignore[no-any-return]
    return None


def _job(status: MachineStatus | None, progress: JobProgress | None) -> dict[str, Any] | None:
    job: dict[str, Any] = dict(status.job) if status is not None and status.job else {}
    if progress is not None and (not job or job.get("id") == progress.job_id):
        job.update(
            id=progress.job_id,
            fraction=progress.fraction,
            elapsed=progress.elapsed,
            eta_seconds=progress.eta_seconds,
            lines_done=progress.lines_done,
            lines_total=progress.lines_total,
        )
    if not job:
        return None
    fraction = job.get("fraction")
    return {
        "id": job.get("id"),
        "file": job.get("file"),
        "state": job.get("state"),
        "progress": round(fraction * 100, 1) if isinstance(fraction, int | float) else None,
        "fraction": fraction,
        "elapsed": job.get("elapsed"),
        "eta_seconds": job.get("eta_seconds"),
        "lines_done": job.get("lines_done"),
        "lines_total": job.get("lines_total"),
    }


def state_payload(
    *,
    machine_id: str,
    machine_name: str,
    status: MachineStatus | None,
    progress: JobProgress | None,
    access: AccessView | None,
) -> dict[str, Any]:
    """The retained ``state`` document, without its ``ts`` (the caller stamps it).

    Keeping the time out lets the service skip republishing an unchanged state.
    """
    temperatures = status.temperatures if status is not None else {}
    return jsonable(  # type: ignore[no-any-return]
        {
            "schema": SCHEMA,
            "machine_id": machine_id,
            "machine_name": machine_name,
            "state": status.state if status is not None else "unknown",
            "firmware": status.firmware if status is not None else None,
            "firmware_version": status.firmware_version if status is not None else None,
            "message": status.message if status is not None else "",
            "job": _job(status, progress),
            "temperatures": {
                name: {"actual": actual, "target": target}
                for name, (actual, target) in sorted(temperatures.items())
            },
            "nozzle_temperature": _first_reading(temperatures, NOZZLE_HEATERS),
            "bed_temperature": _first_reading(temperatures, BED_HEATERS),
            "position": dict(status.position) if status is not None else {},
            "grbl_state": status.grbl_state if status is not None else "",
            "access": access.state if access is not None else None,
            "session": {
                "active": access.session_active if access is not None else False,
                "member": access.member if access is not None else None,
            },
            "lockout": {
                "active": access.lockout if access is not None else False,
                "reason": access.lockout_reason if access is not None else None,
            },
        }
    )


def telemetry_payload(
    *,
    machine_id: str,
    ts: float,
    status: MachineStatus | None,
    feed: float | None,
    system: Mapping[str, Any],
) -> dict[str, Any]:
    """The periodic ``telemetry`` sample: machine readings plus the Pi's health."""
    return jsonable(  # type: ignore[no-any-return]
        {
            "schema": SCHEMA,
            "ts": iso_utc(ts),
            "machine_id": machine_id,
            "state": status.state if status is not None else "unknown",
            "temperatures": {
                name: {"actual": actual, "target": target}
                for name, (actual, target) in sorted(
                    (status.temperatures if status is not None else {}).items()
                )
            },
            "position": dict(status.position) if status is not None else {},
            "feed": feed,
            "system": dict(system),
        }
    )


# --------------------------------------------------------------------------- commands


class CommandBody(BaseModel):
    """A remote command as published on ``<prefix>/cmd/<name>``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)
    actor: str = Field(default="", max_length=80)


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """A command payload that never reaches the router, and why."""

    request_id: str | None
    code: str
    message: str


def parse_command(name: str, payload: bytes) -> CommandBody | CommandRejected:
    """Validate a command's topic level and JSON body."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as err:
        return CommandRejected(None, "invalid_json", f"the payload is not JSON: {err}")
    request_id = data.get("request_id") if isinstance(data, dict) else None
    if not isinstance(request_id, str):
        request_id = None
    if not COMMAND_NAME.match(name):
        return CommandRejected(
            request_id, "invalid_command", f"{name!r} is not a command name (a-z, 0-9, _)"
        )
    if not isinstance(data, dict):
        return CommandRejected(
            None, "invalid_request", 'send an object: {"request_id": "...", "args": {}}'
        )
    try:
        return CommandBody.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
        )
        return CommandRejected(request_id, "invalid_request", problems)


def command_result(
    request_id: str | None,
    *,
    result: Mapping[str, Any] | None = None,
    error: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """``{"request_id", "ok", "result"}`` or ``{"request_id", "ok": false, "error"}``."""
    body: dict[str, Any] = {"schema": SCHEMA, "request_id": request_id, "ok": error is None}
    if error is None:
        body["result"] = jsonable(dict(result or {}))
    else:
        body["error"] = {"code": error[0], "message": error[1]}
    return body

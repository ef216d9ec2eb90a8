"""Topics and payloads: what subscribers and Home Assistant rely on."""

from __future__ import annotations

import base64
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st

from gateway.bus import Event
from gateway.machine.events import JobProgress, JobStarted, MachineStatus
from gateway.telemetry import payloads
from gateway.telemetry.payloads import (
    AccessView,
    CommandBody,
    CommandRejected,
    EventIds,
    Topics,
    command_result,
    encode,
    event_payload,
    jsonable,
    parse_command,
    state_payload,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Awkward(Event):
    topic: ClassVar[str | None] = "awkward"
    position: tuple[float, float] = (1.0, 2.0)
    blob: bytes = b"\x00\xff"
    path: Path = Path("/var/lib/gateway/files/part.gcode")
    tags: frozenset[str] = frozenset({"b", "a"})
    ratio: float = math.nan
    type: str = "collides with the envelope"
    nested: dict[str, tuple[int, bytes]] = field(default_factory=lambda: {"k": (1, b"x")})


def test_topics_live_under_the_prefix() -> None:
    t = Topics("gateway/laser-1")
    assert t.status == "gateway/laser-1/status"
    assert t.state == "gateway/laser-1/state"
    assert t.telemetry == "gateway/laser-1/telemetry"
    assert t.event("job_started") == "gateway/laser-1/event/job_started"
    assert t.commands == "gateway/laser-1/cmd/+"
    assert t.command_result("pause") == "gateway/laser-1/cmd/pause/result"
    assert t.command_name("gateway/laser-1/cmd/pause") == "pause"
    assert t.command_name("gateway/laser-1/cmd/pause/result") is None
    assert t.command_name("gateway/laser-2/cmd/pause") is None
    assert t.command_name("gateway/laser-1/cmd/") is None


def test_event_payload_has_the_envelope_and_json_friendly_fields() -> None:
    event = Awkward(ts=1_700_000_000.25)
    body = event_payload(event, event_id="m1-abc-7", machine_id="m1")
    text = json.dumps(body, allow_nan=False)  # strict JSON: no NaN
    assert json.loads(text) == body
    assert body["schema"] == 1
    assert body["event_id"] == "m1-abc-7"
    assert body["ts"] == "2023-11-14T22:13:20.250Z"
    assert datetime.fromisoformat(body["ts"]).utcoffset() is not None
    assert body["machine_id"] == "m1"
    assert body["type"] == "awkward"
    assert body["type_"] == "collides with the envelope"
    assert body["position"] == [1.0, 2.0]
    assert base64.b64decode(body["blob"]) == b"\x00\xff"
    assert body["path"] == "/var/lib/gateway/files/part.gcode"
    assert body["tags"] == ["a", "b"]
    assert body["ratio"] is None
    assert body["nested"] == {"k": [1, base64.b64encode(b"x").decode()]}
    assert "ts_" not in body


def test_a_real_machine_event_round_trips() -> None:
    event = JobStarted(job_id=3, file="benchy.gcode", lines=1200, estimated_seconds=None)
    body = json.loads(encode(event_payload(event, event_id="x", machine_id="m1")))
    assert body["type"] == "job_started"
    assert body["job_id"] == 3
    assert body["file"] == "benchy.gcode"
    assert body["estimated_seconds"] is None


def test_event_ids_never_repeat_across_restarts() -> None:
    first, second = EventIds("m1"), EventIds("m1")
    ids = [first.next() for _ in range(3)] + [second.next() for _ in range(3)]
    assert len(set(ids)) == 6
    assert ids[0].startswith("m1-") and ids[0].endswith("-1")
    assert first.boot_id != second.boot_id


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
nested = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=20,
)


@given(nested)
def test_jsonable_always_gives_strict_json(value: object) -> None:
    json.dumps(jsonable(value), allow_nan=False)


def test_jsonable_of_other_types() -> None:
    u = uuid.uuid4()
    assert jsonable(u) == str(u)
    assert jsonable(math.inf) is None
    assert jsonable(Awkward(ts=0))["position"] == [1.0, 2.0]


def status(**kwargs: object) -> MachineStatus:
    values: dict[str, object] = {
        "machine_id": "m1",
        "state": "printing",
        "firmware": "marlin",
        "temperatures": {"T0": (209.5, 210.0), "B": (59.9, 60.0)},
        "job": {
            "id": 7,
            "file": "benchy.gcode",
            "state": "printing",
            "fraction": 0.25,
            "eta_seconds": 300.0,
            "elapsed": 100.0,
            "lines_done": 25,
            "lines_total": 100,
        },
    }
    values.update(kwargs)
    return MachineStatus(**values)  # type: ignore[arg-type]


def test_state_shows_machine_job_temperatures_session_and_lockout() -> None:
    access = AccessView(
        state="in_use", session_active=True, member="Ada", lockout=False, lockout_reason=None
    )
    doc = state_payload(
        machine_id="m1", machine_name="Prusa", status=status(), progress=None, access=access
    )
    json.dumps(doc, allow_nan=False)
    assert doc["state"] == "printing"
    assert doc["job"]["file"] == "benchy.gcode"
    assert doc["job"]["progress"] == 25.0
    assert doc["job"]["eta_seconds"] == 300.0
    assert doc["temperatures"]["T0"] == {"actual": 209.5, "target": 210.0}
    assert doc["nozzle_temperature"] == 209.5
    assert doc["bed_temperature"] == 59.9
    assert doc["session"] == {"active": True, "member": "Ada"}
    assert doc["lockout"] == {"active": False, "reason": None}
    assert "ts" not in doc


def test_state_takes_newer_progress_and_shows_lockout() -> None:
    progress = JobProgress(
        job_id=7,
        lines_done=50,
        lines_total=100,
        bytes_done=1,
        bytes_total=2,
        fraction=0.5,
        elapsed=200.0,
        eta_seconds=200.0,
    )
    access = AccessView(
        state="lockout",
        session_active=False,
        member=None,
        lockout=True,
        lockout_reason="filament jam",
    )
    doc = state_payload(
        machine_id="m1", machine_name="Prusa", status=status(), progress=progress, access=access
    )
    assert doc["job"]["progress"] == 50.0
    assert doc["job"]["file"] == "benchy.gcode"
    assert doc["lockout"] == {"active": True, "reason": "filament jam"}
    assert doc["session"]["active"] is False


def test_state_before_anything_is_known_and_for_grbl() -> None:
    doc = state_payload(machine_id="m1", machine_name="x", status=None, progress=None, access=None)
    assert doc["state"] == "unknown" and doc["job"] is None
    grbl = status(
        firmware="grbl",
        temperatures={},
        job=None,
        grbl_state="Run",
        position={"x": 1.5, "y": 2.0, "z": -0.1},
    )
    doc = state_payload(machine_id="m1", machine_name="x", status=grbl, progress=None, access=None)
    assert doc["position"] == {"x": 1.5, "y": 2.0, "z": -0.1}
    assert doc["grbl_state"] == "Run"
    assert doc["nozzle_temperature"] is None


def test_telemetry_payload() -> None:
    doc = payloads.telemetry_payload(
        machine_id="m1",
        ts=0.0,
        status=status(),
        feed=1200.0,
        system={"cpu_temperature": 48.3, "load_average": (0.1, 0.2, 0.3)},
    )
    json.dumps(doc, allow_nan=False)
    assert doc["feed"] == 1200.0
    assert doc["system"]["load_average"] == [0.1, 0.2, 0.3]
    assert doc["temperatures"]["B"]["target"] == 60.0


def test_parse_command_accepts_a_well_formed_body() -> None:
    parsed = parse_command("pause", b'{"request_id": "r1", "args": {"reason": "jam"}}')
    assert parsed == CommandBody(request_id="r1", args={"reason": "jam"})


def test_parse_command_rejections_name_the_problem() -> None:
    cases = {
        b"not json": ("invalid_json", None),
        b'["a"]': ("invalid_request", None),
        b'{"args": {}}': ("invalid_request", None),
        b'{"request_id": 5, "args": {}}': ("invalid_request", None),
        b'{"request_id": "r4", "args": [1]}': ("invalid_request", "r4"),
        b'{"request_id": "r5", "extra": 1}': ("invalid_request", "r5"),
        b"\xff\xfe": ("invalid_json", None),
    }
    for body, (code, request_id) in cases.items():
        parsed = parse_command("pause", body)
        assert isinstance(parsed, CommandRejected), body
        assert (parsed.code, parsed.request_id) == (code, request_id), body
    bad_name = parse_command("Pause!", b'{"request_id": "r6"}')
    assert isinstance(bad_name, CommandRejected) and bad_name.code == "invalid_command"


def test_command_result_shapes() -> None:
    ok = command_result("r1", result={"paused": True})
    assert ok == {"schema": 1, "request_id": "r1", "ok": True, "result": {"paused": True}}
    err = command_result(None, error=("invalid_json", "nope"))
    assert err["ok"] is False and err["error"] == {"code": "invalid_json", "message": "nope"}

"""The timeline's words for what happened at the machine (pure: events in, rows out)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.access.events import (
    AccessDenied,
    AccessState,
    InductionRecorded,
    LockoutChanged,
    SessionEnded,
    SessionStarted,
)
from gateway.machine.events import EmergencyStop, JobFinished, JobProgress, JobStarted
from gateway.web.timeline import Timeline, short_name


def test_a_members_afternoon_reads_as_sentences() -> None:
    t = Timeline()
    t.record(AccessDenied(reason="not_inducted", message="Bob, ask a trainer.", member_id="b"))
    t.record(SessionStarted(session_id="s", member_id="a", member_name="Ada Lovelace", role="user"))
    t.record(
        JobStarted(job_id=1, file="benchy.gcode", lines=9, estimated_seconds=60, origin="kiosk")
    )
    t.record(
        JobProgress(
            job_id=1, lines_done=1, lines_total=9, bytes_done=1, bytes_total=9,
            fraction=0.1, elapsed=1, eta_seconds=9,
        )
    )
    t.record(
        JobFinished(
            job_id=1, file="benchy.gcode", outcome="completed", lines_done=9, seconds=754,
            resends=0, errors=0,
        )
    )
    t.record(SessionEnded(session_id="s", member_id="a", reason="badge_out", duration=900, jobs=1))
    t.record(EmergencyStop(origin="kiosk"))
    texts = [e.text for e in t.after(0, 100)][::-1]
    assert texts == [
        "Badge refused: Bob, ask a trainer.",
        "Ada L. badged in (user)",
        "Ada L. started benchy.gcode from the touchscreen",
        "benchy.gcode finished in 12 min 34 s",
        "Ada L. badged out (15 min 00 s, 1 job)",
        "Emergency stop pressed on the touchscreen",
    ]
    assert t.after(0, 100)[0].level == "alarm"
    assert [e.seq for e in t.after(4, 100)] == [6, 5]


def test_an_induction_names_trainer_and_member() -> None:
    t = Timeline()
    t.record(
        SessionStarted(session_id="1", member_id="g", member_name="Grace Hopper", role="trainer")
    )
    t.record(InductionRecorded(trainer_id="g", member_id="n", machine_id="m"))
    t.record(
        SessionStarted(
            session_id="2", member_id="n", member_name="Ned Kelly", role="user", inducted_by="g"
        )
    )
    t.record(LockoutChanged(active=True, reason="Nozzle swap", by="g"))
    rows = [e.text for e in t.after(0, 10)][::-1]
    assert rows[1] == "Grace H. inducted a new member on this machine"
    assert rows[2] == "Ned K. was inducted by Grace H. and badged in"
    assert rows[3] == "Grace H. took the machine out of service: Nozzle swap"


def test_snapshots_make_no_rows_but_teach_names() -> None:
    t = Timeline()
    t.record(
        AccessState(
            state="authorised", relay_on=True, member_id="a", member_name="Ada Lovelace",
            job_running=False, lockout_reason=None, interlocks_tripped=(), last_denial=None,
        )
    )
    assert not t.entries
    t.record(JobStarted(job_id=3, file="x.gcode", lines=1, estimated_seconds=None))
    assert t.after(0, 1)[0].text == "Ada L. started x.gcode"


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_any_names_and_messages_make_a_row(name: str, message: str, member: str) -> None:
    t = Timeline(keep=3)
    for _ in range(5):
        t.record(SessionStarted(session_id="s", member_id=member, member_name=name, role="user"))
        t.record(AccessDenied(reason="expired", message=message, member_id=member))
    assert len(t.entries) == 3
    assert all(e.text for e in t.entries)
    assert short_name(name) is None or short_name(name)

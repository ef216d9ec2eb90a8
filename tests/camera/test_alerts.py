"""The alert monitor on synthetic sequences of frame statistics (no camera, no clock)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.events import AccessState
from gateway.camera.alerts import (
    CAMERA_FAULTS,
    AlertChange,
    AlertKind,
    AlertMonitor,
    FrameStats,
    JobPhase,
    job_phase,
)
from gateway.camera.config import AlertsConfig
from gateway.machine.events import (
    JobFinished,
    JobPaused,
    JobResumed,
    JobStarted,
    MachineStatus,
)

CONFIG = AlertsConfig(
    lost_after_s=5,
    frozen_after_s=5,
    black_after_s=5,
    black_threshold=12,
    motion_threshold=0.02,
    stall_minutes=0.5,  # 30 s
    motion_while_locked_minutes=0.5,
    motion_gap_s=4,
)


@dataclass
class Feed:
    """Drives a monitor with frames once a second, keeping the changes it reports."""

    monitor: AlertMonitor
    now: float = 0.0
    n: int = 0

    def frame(
        self, *, mean: float = 100.0, motion: float = 0.0, same: bool = False
    ) -> list[AlertChange]:
        self.n += 0 if same else 1
        stats = FrameStats(at=self.now, mean_luma=mean, digest=b"%d" % self.n, motion=motion)
        return self.monitor.observe(stats)

    def run(self, seconds: float, **frame: float | bool) -> list[AlertChange]:
        """A frame every second for ``seconds``, then a tick."""
        changes: list[AlertChange] = []
        end = self.now + seconds
        while self.now + 1 <= end + 1e-9:
            self.now += 1
            changes += self.frame(**frame)  # type: ignore[arg-type]
        return changes + self.monitor.tick(self.now)

    def quiet(self, seconds: float) -> list[AlertChange]:
        self.now += seconds
        return self.monitor.tick(self.now)


def feed() -> Feed:
    return Feed(AlertMonitor(CONFIG, 0.0))


def kinds(changes: list[AlertChange], active: bool = True) -> list[AlertKind]:
    return [c.kind for c in changes if c.active is active]


# ---------------------------------------------------------------------- camera health


def test_a_camera_that_never_sends_a_frame_is_lost() -> None:
    f = feed()
    assert f.quiet(4.9) == []
    assert kinds(f.quiet(0.2)) == [AlertKind.CAMERA_LOST]
    assert "no picture" in f.monitor.active[AlertKind.CAMERA_LOST]


def test_lost_after_frames_stop_and_cleared_by_the_next_frame() -> None:
    f = feed()
    assert f.run(10) == []
    assert kinds(f.quiet(6)) == [AlertKind.CAMERA_LOST]
    assert f.quiet(60) == []  # raised once, not repeated
    cleared = f.run(1)
    assert kinds(cleared, active=False) == [AlertKind.CAMERA_LOST]
    assert f.monitor.active == {}


def test_identical_frames_are_frozen_until_one_differs() -> None:
    f = feed()
    f.run(3)
    changes = f.run(4, same=True)
    assert changes == []
    assert kinds(f.run(2, same=True)) == [AlertKind.FROZEN]
    assert kinds(f.run(1), active=False) == [AlertKind.FROZEN]


def test_a_dark_picture_is_black_after_black_after_s() -> None:
    f = feed()
    f.run(2)
    assert f.run(4, mean=3.0) == []
    assert kinds(f.run(2, mean=3.0)) == [AlertKind.BLACK]
    assert kinds(f.run(1, mean=80.0), active=False) == [AlertKind.BLACK]


def test_a_short_dark_spell_is_not_black() -> None:
    f = feed()
    for _ in range(5):
        assert f.run(3, mean=2.0) == []
        assert f.run(1, mean=50.0) == []


# ---------------------------------------------------------------------- stall


def test_no_motion_while_a_job_runs_is_a_stall_and_motion_clears_it() -> None:
    f = feed()
    f.monitor.set_job(JobPhase.RUNNING, f.now)
    assert f.run(25, motion=0.5) == []  # the head moves
    assert f.run(29) == []
    assert kinds(f.run(2)) == [AlertKind.STALL]
    assert "job runs" in f.monitor.active[AlertKind.STALL]
    assert kinds(f.run(1, motion=0.3), active=False) == [AlertKind.STALL]


def test_a_stall_ends_with_the_job_and_a_paused_job_never_stalls() -> None:
    f = feed()
    f.monitor.set_job(JobPhase.RUNNING, f.now)
    assert kinds(f.run(31)) == [AlertKind.STALL]
    assert kinds(f.monitor.set_job(JobPhase.PAUSED, f.now), active=False) == [AlertKind.STALL]
    assert f.run(120) == []
    f.monitor.set_job(JobPhase.RUNNING, f.now)
    assert f.run(29) == []  # counted from the resume
    f.monitor.set_job(JobPhase.NONE, f.now)
    assert f.run(120) == []


def test_a_broken_camera_is_not_reported_as_a_stall() -> None:
    f = feed()
    f.monitor.set_job(JobPhase.RUNNING, f.now)
    changes = f.run(60, same=True)
    assert kinds(changes) == [AlertKind.FROZEN]
    # The camera recovers: the stall clock starts again from there.
    assert kinds(f.run(25), active=False) == [AlertKind.FROZEN]
    assert kinds(f.run(10)) == [AlertKind.STALL]


# ---------------------------------------------------------------------- motion while locked


def test_motion_while_locked_and_idle_is_reported_once_it_lasts() -> None:
    f = feed()
    f.monitor.set_locked(True, f.now)
    f.run(10)
    assert f.run(29, motion=0.1) == []
    assert kinds(f.run(2, motion=0.1)) == [AlertKind.MOTION_WHILE_LOCKED]
    assert "without badging" in f.monitor.active[AlertKind.MOTION_WHILE_LOCKED]
    assert f.run(3) == []  # a pause within motion_gap_s
    assert kinds(f.run(2), active=False) == [AlertKind.MOTION_WHILE_LOCKED]


def test_motion_with_short_pauses_is_one_episode() -> None:
    f = feed()
    f.monitor.set_locked(True, f.now)
    changes: list[AlertChange] = []
    for _ in range(12):
        changes += f.run(2, motion=0.1) + f.run(2)
    assert kinds(changes) == [AlertKind.MOTION_WHILE_LOCKED]


def test_badging_in_clears_it_and_members_may_move() -> None:
    f = feed()
    f.monitor.set_locked(True, f.now)
    assert kinds(f.run(31, motion=0.1)) == [AlertKind.MOTION_WHILE_LOCKED]
    assert kinds(f.monitor.set_locked(False, f.now), active=False) == [
        AlertKind.MOTION_WHILE_LOCKED
    ]
    assert f.run(120, motion=0.2) == []


def test_a_running_job_is_not_idle() -> None:
    f = feed()
    f.monitor.set_locked(True, f.now)
    f.monitor.set_job(JobPhase.RUNNING, f.now)
    assert f.run(120, motion=0.2) == []


def test_without_access_control_no_job_stands_in_for_locked() -> None:
    f = feed()
    assert f.monitor.locked is None
    assert kinds(f.run(31, motion=0.1)) == [AlertKind.MOTION_WHILE_LOCKED]
    assert kinds(f.monitor.set_job(JobPhase.RUNNING, f.now), active=False) == [
        AlertKind.MOTION_WHILE_LOCKED
    ]


def test_motion_before_the_lock_does_not_count() -> None:
    f = feed()
    f.monitor.set_locked(False, f.now)
    f.run(100, motion=0.1)
    f.monitor.set_locked(True, f.now)  # badged out, still tidying up
    assert f.run(29, motion=0.1) == []
    assert kinds(f.run(2, motion=0.1)) == [AlertKind.MOTION_WHILE_LOCKED]


def test_zero_minutes_turns_the_motion_alerts_off() -> None:
    config = CONFIG.model_copy(update={"stall_minutes": 0, "motion_while_locked_minutes": 0})
    f = Feed(AlertMonitor(config, 0.0))
    f.monitor.set_job(JobPhase.RUNNING, 0.0)
    assert f.run(600) == []
    f.monitor.set_job(JobPhase.NONE, f.now)
    assert f.run(600, motion=0.5) == []


def test_job_phase_from_machine_events() -> None:
    started = JobStarted(job_id=1, file="a", lines=1, estimated_seconds=None)
    finished = JobFinished(
        job_id=1, file="a", outcome="completed", lines_done=1, seconds=1, resends=0, errors=0
    )

    def status(state: str) -> MachineStatus:
        return MachineStatus(machine_id="m", state=state, firmware="marlin")

    assert job_phase(started, JobPhase.NONE) is JobPhase.RUNNING
    assert job_phase(JobPaused(job_id=1), JobPhase.RUNNING) is JobPhase.PAUSED
    assert job_phase(JobResumed(job_id=1), JobPhase.PAUSED) is JobPhase.RUNNING
    assert job_phase(finished, JobPhase.RUNNING) is JobPhase.NONE
    assert job_phase(status("running"), JobPhase.NONE) is JobPhase.RUNNING
    assert job_phase(status("printing"), JobPhase.NONE) is JobPhase.RUNNING
    assert job_phase(status("paused"), JobPhase.NONE) is JobPhase.PAUSED
    for state in ("idle", "disconnected", "error", "estop"):
        assert job_phase(status(state), JobPhase.RUNNING) is JobPhase.NONE
    access = AccessState(
        state="locked",
        relay_on=False,
        member_id=None,
        member_name=None,
        job_running=False,
        lockout_reason=None,
        interlocks_tripped=(),
        last_denial=None,
    )
    assert job_phase(access, JobPhase.PAUSED) is JobPhase.PAUSED


# ---------------------------------------------------------------------- properties

frame_op = st.tuples(
    st.just("frame"),
    st.floats(0.05, 8.0),  # seconds since the previous operation
    st.sampled_from([0.0, 5.0, 11.9, 12.0, 80.0, 250.0]),  # mean luma
    st.integers(0, 3),  # digest: few values, so runs of identical frames happen
    st.sampled_from([0.0, 0.01, 0.02, 0.3]),  # motion
)
tick_op = st.tuples(st.just("tick"), st.floats(0.0, 40.0))
job_op = st.tuples(st.just("job"), st.sampled_from(list(JobPhase)))
lock_op = st.tuples(st.just("lock"), st.sampled_from([None, True, False]))
script = st.lists(st.one_of(frame_op, frame_op, frame_op, tick_op, job_op, lock_op), max_size=80)


@settings(max_examples=300, deadline=None)
@given(script)
def test_invariants_hold_on_any_sequence(ops: list[tuple[object, ...]]) -> None:
    monitor = AlertMonitor(CONFIG, 0.0)
    now = 0.0
    last_frame: float | None = None
    active: set[AlertKind] = set()
    means: list[float] = []
    digests: list[int] = []
    for op in ops:
        match op:
            case ("frame", float(dt), float(mean), int(digest), float(motion)):
                now += dt
                last_frame = now
                means.append(mean)
                digests.append(digest)
                stats = FrameStats(at=now, mean_luma=mean, digest=bytes([digest]), motion=motion)
                changes = monitor.observe(stats)
            case ("tick", float(dt)):
                now += dt
                changes = monitor.tick(now)
            case ("job", phase):
                assert isinstance(phase, JobPhase)
                changes = monitor.set_job(phase, now)
            case ("lock", locked):
                assert locked is None or isinstance(locked, bool)
                changes = monitor.set_locked(locked, now)
            case _:
                raise AssertionError(op)
        # Changes alternate: raised only when inactive, cleared only when active.
        for change in changes:
            assert (change.kind in active) is not change.active
            (active.add if change.active else active.discard)(change.kind)
        assert active == set(monitor.active)
        quiet = now - (last_frame if last_frame is not None else 0.0)
        if isinstance(op[0], str) and op[0] != "frame":
            assert (AlertKind.CAMERA_LOST in active) == (quiet >= CONFIG.lost_after_s)
        if AlertKind.CAMERA_LOST in active:
            assert not active & {AlertKind.FROZEN, AlertKind.BLACK}
        if active & CAMERA_FAULTS:
            assert not active & {AlertKind.STALL, AlertKind.MOTION_WHILE_LOCKED}
        if AlertKind.STALL in active:
            assert monitor.job is JobPhase.RUNNING
        if AlertKind.MOTION_WHILE_LOCKED in active:
            assert monitor.job is JobPhase.NONE and monitor.locked is not False
        if AlertKind.BLACK in active:
            assert means[-1] < CONFIG.black_threshold
        if AlertKind.FROZEN in active:
            assert len(digests) >= 2 and digests[-1] == digests[-2]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.1, 3.0), min_size=1, max_size=100))
def test_a_lively_bright_camera_raises_no_health_alert(gaps: list[float]) -> None:
    monitor = AlertMonitor(CONFIG, 0.0)
    now = 0.0
    for i, gap in enumerate(gaps):
        now += gap
        changes = monitor.observe(
            FrameStats(at=now, mean_luma=90.0, digest=i.to_bytes(4, "big"), motion=0.0)
        )
        assert not {c.kind for c in changes} & CAMERA_FAULTS

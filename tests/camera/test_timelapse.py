"""Timelapses: when frames are taken, how they are stored, rendered and removed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gateway.camera import render
from gateway.camera.errors import TimelapseError
from gateway.camera.timelapse import (
    Begin,
    Capture,
    Finish,
    StoredTimelapse,
    TimelapseRecorder,
    TimelapseState,
    TimelapseStore,
    plan_retention,
)
from gateway.machine.events import JobFinished, JobStarted, LayerChanged, MachineStatus


def started(job_id: int, file: str = "part.gcode") -> JobStarted:
    return JobStarted(job_id=job_id, file=file, lines=100, estimated_seconds=None)


def finished(job_id: int, outcome: str = "completed") -> JobFinished:
    return JobFinished(
        job_id=job_id,
        file="part.gcode",
        outcome=outcome,
        lines_done=100,
        seconds=60,
        resends=0,
        errors=0,
    )


def status(state: str, job: dict[str, object] | None) -> MachineStatus:
    return MachineStatus(machine_id="m", state=state, firmware="marlin", job=job)


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


# ---------------------------------------------------------------------- recorder


def test_layer_mode_takes_a_frame_at_start_each_layer_and_end() -> None:
    rec = TimelapseRecorder("layer", 10)
    assert rec.on_event(started(5), 0, 1000) == [Begin(5, "part.gcode", 1000), Capture(5, "start")]
    assert rec.on_event(LayerChanged(job_id=5, z=0.4, layer=1), 1, 1001) == [Capture(5, "layer")]
    assert rec.next_due() is None and rec.due(100) == []
    assert rec.on_event(finished(5), 9, 1009) == [Capture(5, "end"), Finish(5, "completed", 1009)]
    assert rec.job_id is None
    assert rec.on_event(LayerChanged(job_id=5, z=0.6, layer=2), 10, 1010)[0] == Begin(5, "", 1010)


def test_interval_mode_takes_a_frame_every_interval_and_ignores_layers() -> None:
    rec = TimelapseRecorder("interval", 10)
    rec.on_event(started(1), 100, 0)
    assert rec.next_due() == 110
    assert rec.on_event(LayerChanged(job_id=1, z=1, layer=1), 101, 0) == []
    assert rec.due(109.9) == []
    assert rec.due(110) == [Capture(1, "interval")]
    assert rec.next_due() == 120
    assert rec.due(145) == [Capture(1, "interval")]  # late: one frame, not a burst
    assert rec.next_due() == 150
    rec.on_event(finished(1), 146, 0)
    assert rec.next_due() is None and rec.due(1000) == []


def test_off_mode_does_nothing() -> None:
    rec = TimelapseRecorder("off", 10)
    assert rec.on_event(started(1), 0, 0) == []
    assert rec.on_event(LayerChanged(job_id=1, z=1, layer=1), 0, 0) == []


def test_a_new_job_ends_the_previous_one_and_strangers_are_ignored() -> None:
    rec = TimelapseRecorder("layer", 10)
    rec.on_event(started(1), 0, 0)
    assert rec.on_event(finished(7), 1, 1) == []  # not the job being recorded
    assert rec.on_event(started(2), 2, 2) == [
        Finish(1, "interrupted", 2),
        Begin(2, "part.gcode", 2),
        Capture(2, "start"),
    ]


def test_machine_status_catches_up_with_missed_job_events() -> None:
    rec = TimelapseRecorder("layer", 10)
    running = {"id": 3, "file": "gear.gcode", "state": "running"}
    assert rec.on_event(status("running", running), 0, 50) == [
        Begin(3, "gear.gcode", 50),
        Capture(3, "start"),
    ]
    assert rec.on_event(status("running", running), 1, 51) == []
    done = {**running, "state": "cancelled"}
    assert rec.on_event(status("idle", done), 2, 52) == [
        Capture(3, "end"),
        Finish(3, "cancelled", 52),
    ]
    rec.on_event(status("paused", {**running, "id": 4}), 3, 53)
    assert rec.on_event(status("disconnected", None), 4, 54)[-1] == Finish(4, "unknown", 54)
    assert rec.on_event(status("idle", None), 5, 55) == []


# ---------------------------------------------------------------------- store


def test_store_records_lists_and_finishes(tmp_path: Path) -> None:
    store = TimelapseStore(tmp_path / "timelapse")
    store.begin(12, "bracket.gcode", 1000.0)
    assert store.add_frame(12, jpeg((255, 0, 0))) == 1
    assert store.add_frame(12, jpeg((0, 255, 0))) == 2
    [info] = store.listing()
    assert (info.job_id, info.file, info.state, info.frames) == (
        12,
        "bracket.gcode",
        TimelapseState.RECORDING,
        2,
    )
    assert info.size_bytes > 0
    info = store.finish(12, "completed", 1060.0)
    assert (info.state, info.frames, info.outcome, info.ended_at) == (
        TimelapseState.FINISHED,
        2,
        "completed",
        1060.0,
    )
    names = sorted(os.listdir(store.job_dir(12)))
    assert names == ["frame_000001.jpg", "frame_000002.jpg", "timelapse.json"]
    assert json.loads((store.job_dir(12) / "timelapse.json").read_text())["state"] == "finished"
    with pytest.raises(TimelapseError):
        store.add_frame(12, jpeg((0, 0, 0)))  # no longer recording


def test_a_restarted_recording_continues_its_numbering(tmp_path: Path) -> None:
    store = TimelapseStore(tmp_path)
    store.begin(1, "a.gcode", 10.0)
    store.add_frame(1, jpeg((1, 2, 3)))
    again = TimelapseStore(tmp_path)  # the service restarted
    info = again.begin(1, "", 20.0)
    assert (info.frames, info.file, info.started_at) == (1, "a.gcode", 10.0)
    assert again.add_frame(1, jpeg((1, 2, 3))) == 2


def test_an_unreadable_meta_file_is_listed_as_failed(tmp_path: Path) -> None:
    store = TimelapseStore(tmp_path)
    store.begin(4, "x", 1.0)
    (store.job_dir(4) / "timelapse.json").write_text("{not json")
    (tmp_path / "notes").mkdir()  # not a job: ignored
    [info] = store.listing()
    assert info.state is TimelapseState.FAILED and "unreadable" in (info.error or "")


def test_a_job_without_frames_is_empty(tmp_path: Path) -> None:
    store = TimelapseStore(tmp_path)
    store.begin(9, "x", 1.0)
    assert store.finish(9, "cancelled", 2.0).state is TimelapseState.EMPTY


# ---------------------------------------------------------------------- retention


def test_retention_removes_by_age_then_oldest_first_by_size(tmp_path: Path) -> None:
    store = TimelapseStore(tmp_path)
    now = time.time()
    day = 86400.0
    for job_id, age_days in ((1, 40), (2, 20), (3, 10), (4, 5), (5, 1)):
        store.begin(job_id, f"{job_id}.gcode", now - age_days * day)
        store.add_frame(job_id, os.urandom(100_000))
        store.finish(job_id, "completed", now - age_days * day + 60)
    assert store.sweep(now, max_bytes=10e6, max_age_s=30 * day) == [1]
    # Three of the remaining four fit in 350 kB: the oldest goes, the recording one stays.
    assert store.sweep(now, max_bytes=350_000, max_age_s=30 * day, keep={2}) == [3]
    assert store.job_ids() == [2, 4, 5]
    assert not store.job_dir(1).exists() and not store.job_dir(3).exists()


entries = st.lists(
    st.builds(
        StoredTimelapse,
        job_id=st.integers(1, 10_000),
        created=st.floats(0, 1_000_000),
        size_bytes=st.integers(0, 5_000_000),
    ),
    max_size=30,
    unique_by=lambda s: s.job_id,
)


@settings(max_examples=300, deadline=None)
@given(
    entries,
    st.floats(0, 50_000_000),
    st.floats(0, 1_000_000),
    st.sets(st.integers(1, 10_000), max_size=3),
)
def test_retention_plan_properties(
    stored: list[StoredTimelapse], max_bytes: float, max_age_s: float, keep: set[int]
) -> None:
    now = 1_000_000.0
    doomed = plan_retention(stored, now, max_bytes, max_age_s, keep)
    assert len(doomed) == len(set(doomed)) and not set(doomed) & keep
    kept = [s for s in stored if s.job_id not in doomed]
    removed = [s for s in stored if s.job_id in doomed]
    # Removed ones go oldest first.
    order = sorted(removed, key=lambda s: (s.created, s.job_id))
    assert doomed == [s.job_id for s in order]
    # What is left fits, unless only protected timelapses are over the limit.
    unprotected = [s for s in kept if s.job_id not in keep]
    assert sum(s.size_bytes for s in kept) <= max_bytes or not unprotected
    # Nothing left is too old, unless protected.
    assert all(now - s.created <= max_age_s for s in unprotected)
    # Nothing was removed needlessly: each removed one was too old, or older than everything
    # unprotected that stayed.
    for s in removed:
        too_old = now - s.created > max_age_s
        older = all((s.created, s.job_id) < (k.created, k.job_id) for k in unprotected)
        assert too_old or older


# ---------------------------------------------------------------------- rendering


def write_frames(folder: Path, n: int, size: tuple[int, int] = (320, 240)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        (folder / f"frame_{i:06d}.jpg").write_bytes(jpeg((i * 20 % 255, 80, 160), size))


def probe(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=format_name:stream=codec_name,pix_fmt,width,height,nb_frames",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, object] = json.loads(out.stdout)
    return data


async def test_render_makes_an_h264_mp4(tmp_path: Path) -> None:
    write_frames(tmp_path, 12)
    video = await render.render_video(tmp_path, tmp_path / "timelapse.mp4", 24, 60)
    assert video.read_bytes()[4:8] == b"ftyp"
    info = probe(video)
    stream = info["streams"][0]  # type: ignore[index]
    assert stream["pix_fmt"] == "yuv420p" and (stream["width"], stream["height"]) == (320, 240)
    assert stream["codec_name"] in ("h264", "mpeg4") and int(stream["nb_frames"]) == 12
    assert "mp4" in info["format"]["format_name"]  # type: ignore[index]
    assert not (tmp_path / "timelapse.partial.mp4").exists()


async def test_render_falls_back_to_mpeg4_and_evens_odd_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = render.find_ffmpeg()
    monkeypatch.setitem(render._codecs, exe, render.MPEG4)
    write_frames(tmp_path, 5, size=(321, 241))
    video = await render.render_video(tmp_path, tmp_path / "out.mp4", 10, 60)
    stream = probe(video)["streams"][0]  # type: ignore[index]
    assert stream["codec_name"] == "mpeg4" and (stream["width"], stream["height"]) == (320, 240)


async def test_render_failures_are_timelapse_errors(tmp_path: Path) -> None:
    with pytest.raises(TimelapseError, match="ffmpeg could not"):
        await render.render_video(tmp_path, tmp_path / "none.mp4", 24, 60)
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
    write_frames(tmp_path, 3)
    with pytest.raises(TimelapseError, match="render_timeout_s"):
        await render.render_video(tmp_path, tmp_path / "slow.mp4", 24, 0.0001)
    await asyncio.sleep(0)
    assert not (tmp_path / "slow.partial.mp4").exists()


def test_missing_ffmpeg_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.camera.render.shutil.which", lambda name: None)
    with pytest.raises(TimelapseError, match="apt install ffmpeg"):
        render.find_ffmpeg()

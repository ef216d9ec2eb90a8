"""The picamera2 backend against a stand-in of the picamera2 API (no Pi, no camera here).

The stand-in follows picamera2's documented surface: ``Picamera2(camera_num)``,
``camera_properties``, ``camera_controls``, ``create_video_configuration(main=,
controls=, buffer_count=, transform=)``, ``configure``, ``start_recording(encoder,
output, quality=)`` with an encoder thread calling ``FileOutput``'s file's
``write()`` once per JPEG, ``stop_recording`` and ``close``.
"""

from __future__ import annotations

import asyncio
import enum
import io
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.bus import EventBus
from gateway.camera.config import CameraConfig
from gateway.camera.errors import CameraUnavailable
from gateway.camera.service import CameraService
from gateway.camera.sources.picam import Picamera2Source, quality_preset
from gateway.commands import CommandRouter


class Quality(enum.Enum):
    VERY_LOW = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    VERY_HIGH = 4


class MJPEGEncoder:
    pass


class FileOutput:
    def __init__(self, file: Any = None) -> None:
        if not isinstance(file, io.BufferedIOBase):
            raise RuntimeError("Must pass io.BufferedIOBase")
        self.fileoutput = file

    def outputframe(self, frame: bytes) -> None:
        self.fileoutput.write(frame)
        self.fileoutput.flush()


class Transform:
    def __init__(self, hflip: int = 0, vflip: int = 0) -> None:
        self.hflip, self.vflip = hflip, vflip


def fake_jpeg(n: int) -> bytes:
    return b"\xff\xd8" + b"frame %d " % n + bytes(200) + b"\xff\xd9"


class FakePicamera2:
    """Records what it was asked; its encoder thread writes numbered JPEGs."""

    cameras = [{"ColorFilterArrangement": 2, "Model": "imx708"}]
    instances: list[FakePicamera2] = []
    fail_configure = False
    open_seconds = 0.0

    def __init__(self, camera_num: int = 0) -> None:
        time.sleep(self.open_seconds)
        if camera_num >= len(self.cameras):
            raise IndexError("list index out of range")
        self.camera_properties = dict(self.cameras[camera_num])
        self.camera_controls: dict[str, tuple[int, int, int]] = {}
        if "ColorFilterArrangement" in self.camera_properties:
            self.camera_controls["FrameDurationLimits"] = (33333, 120000, 33333)
        self.options: dict[str, Any] = {}
        self.calls: list[str] = []
        self.written: list[bytes] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, **options: Any) -> dict[str, Any]:
        self.options = options
        return {"use_case": "video", **options}

    def configure(self, config: dict[str, Any]) -> None:
        if self.fail_configure:
            raise RuntimeError("Failed to configure camera")
        self.calls.append("configure")

    def start_recording(self, encoder: Any, output: Any, quality: Any = None) -> None:
        self.encoder, self.output, self.quality = encoder, output, quality
        self.calls.append("start_recording")
        self._thread = threading.Thread(target=self._encode, daemon=True)
        self._thread.start()

    def _encode(self) -> None:
        n = 0
        while not self._stop.wait(0.01):
            n += 1
            jpeg = fake_jpeg(n)
            self.written.append(jpeg)
            self.output.outputframe(jpeg)

    def stop_recording(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.calls.append("stop_recording")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePicamera2]]:
    FakePicamera2.instances = []
    FakePicamera2.fail_configure = False
    FakePicamera2.open_seconds = 0.0
    FakePicamera2.cameras = [{"ColorFilterArrangement": 2, "Model": "imx708"}]
    root = types.ModuleType("picamera2")
    root.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    encoders = types.ModuleType("picamera2.encoders")
    encoders.MJPEGEncoder = MJPEGEncoder  # type: ignore[attr-defined]
    encoders.Quality = Quality  # type: ignore[attr-defined]
    outputs = types.ModuleType("picamera2.outputs")
    outputs.FileOutput = FileOutput  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.Transform = Transform  # type: ignore[attr-defined]
    for name, module in (
        ("picamera2", root),
        ("picamera2.encoders", encoders),
        ("picamera2.outputs", outputs),
        ("libcamera", libcamera),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    yield FakePicamera2


def config(**values: Any) -> CameraConfig:
    return CameraConfig(enabled=True, backend="picamera2", **values)


async def first_frames(source: Picamera2Source, n: int) -> list[bytes]:
    got: list[bytes] = []
    async with source.open() as frames:
        async for jpeg in frames:
            got.append(jpeg)
            if len(got) == n:
                break
    return got


async def test_frames_are_the_encoders_bytes_as_is(picamera2: type[FakePicamera2]) -> None:
    source = Picamera2Source(config(width=1280, height=720, fps=15, jpeg_quality=80))
    got = await first_frames(source, 5)
    [camera] = picamera2.instances
    assert all(jpeg in camera.written for jpeg in got)
    assert got == sorted(got, key=camera.written.index)  # newest-first never reorders
    assert camera.options["main"] == {"size": (1280, 720), "format": "YUV420"}
    assert camera.options["controls"] == {"FrameDurationLimits": (66667, 66667)}
    assert camera.options["buffer_count"] == 4 and "transform" not in camera.options
    assert isinstance(camera.encoder, MJPEGEncoder) and camera.quality is Quality.HIGH
    assert camera.calls == ["configure", "start_recording", "stop_recording", "close"]
    assert source.encoder == "MJPEGEncoder"


async def test_a_usb_webcam_gets_yuyv_and_flips_use_a_transform(
    picamera2: type[FakePicamera2],
) -> None:
    picamera2.cameras = [{"Model": "HD Webcam C525"}]
    await first_frames(Picamera2Source(config(hflip=True)), 1)
    [camera] = picamera2.instances
    assert camera.options["main"]["format"] == "YUYV"
    assert camera.options["controls"] == {}
    transform = camera.options["transform"]
    assert (transform.hflip, transform.vflip) == (1, 0)


async def test_a_slow_reader_gets_the_newest_frame_and_the_rest_are_counted(
    picamera2: type[FakePicamera2],
) -> None:
    source = Picamera2Source(config())
    async with source.open() as frames:
        iterator = aiter(frames)
        await anext(iterator)
        await asyncio.sleep(0.2)  # about 20 frames arrive meanwhile
        newest = await anext(iterator)
        [camera] = picamera2.instances
        assert camera.written.index(newest) >= 10
        assert source.replaced >= 10


async def test_missing_picamera2_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraUnavailable, match="apt install python3-picamera2"):
        await first_frames(Picamera2Source(config()), 1)


async def test_a_missing_camera_says_what_to_check(picamera2: type[FakePicamera2]) -> None:
    with pytest.raises(CameraUnavailable, match="rpicam-hello --list-cameras"):
        await first_frames(Picamera2Source(config(camera_num=3)), 1)


async def test_a_camera_that_cannot_record_is_closed(picamera2: type[FakePicamera2]) -> None:
    picamera2.fail_configure = True
    with pytest.raises(CameraUnavailable, match=r"smaller camera\.width"):
        await first_frames(Picamera2Source(config()), 1)
    assert picamera2.instances[0].calls == ["close"]


async def test_a_camera_still_opening_when_cancelled_is_released(
    picamera2: type[FakePicamera2],
) -> None:
    picamera2.open_seconds = 0.3
    opening = asyncio.create_task(first_frames(Picamera2Source(config()), 1))
    await asyncio.sleep(0.1)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    [camera] = picamera2.instances
    assert camera.calls == ["configure", "start_recording", "stop_recording", "close"]


async def test_the_service_serves_the_cameras_jpegs(
    picamera2: type[FakePicamera2], tmp_path: Path
) -> None:
    commands = CommandRouter()
    service = CameraService(config(), tmp_path, EventBus(), commands)
    task = asyncio.create_task(service.run())
    try:
        answer = await commands.call("snapshot")
        saved = await asyncio.to_thread(Path(answer["path"]).read_bytes)
        assert saved in picamera2.instances[0].written
        assert service.status()["backend"] == "picamera2"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert picamera2.instances[0].calls[-2:] == ["stop_recording", "close"]


def test_quality_presets() -> None:
    assert [quality_preset(q) for q in (10, 30, 50, 70, 80, 85, 95)] == [
        "VERY_LOW",
        "LOW",
        "MEDIUM",
        "HIGH",
        "HIGH",
        "VERY_HIGH",
        "VERY_HIGH",
    ]

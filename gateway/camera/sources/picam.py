"""The Raspberry Pi's camera through picamera2, encoded by the hardware MJPEG encoder.

picamera2 is a Raspberry Pi OS package (``sudo apt install python3-picamera2``),
not a PyPI one: the gateway's virtualenv must be created with
``--system-site-packages`` to see it.  It is imported only when this backend
opens, so the rest of the daemon (and every other machine) never needs it.

How frames flow, with the CPU idle (picamera2 manual, "Encoders" and "Outputs";
its ``examples/mjpeg_server_2.py`` is the same shape):

* the camera delivers YUV420 frames (YUYV for USB webcams) at the configured
  size, the frame rate pinned with ``FrameDurationLimits``;
* picamera2's ``MJPEGEncoder`` feeds them to the VideoCore's V4L2 JPEG encoder
  (``/dev/video11``, Pi Zero 2 W to Pi 4).  On a Pi 5, which has no hardware
  encoder, picamera2 gives the libav software encoder under the same name;
* the encoder's thread writes each finished JPEG, whole, to a ``FileOutput``
  around :class:`_Handoff`, which passes the bytes to the event loop as they
  are (no re-encoding, no copy beyond the one out of the encoder's buffer);
* on the loop, :class:`_LatestFrame` keeps only the newest frame for the
  camera service, counting the ones it replaced before they were taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

from gateway.camera.config import CameraConfig
from gateway.camera.errors import CameraUnavailable
from gateway.camera.sources.base import FrameSource

log = logging.getLogger(__name__)

#: picamera2's encoder quality presets (``picamera2.encoders.Quality``) by JPEG quality.
QUALITY_STEPS: tuple[tuple[int, str], ...] = (
    (30, "VERY_LOW"),
    (50, "LOW"),
    (70, "MEDIUM"),
    (85, "HIGH"),
    (101, "VERY_HIGH"),
)


def quality_preset(jpeg_quality: int) -> str:
    """The name of the picamera2 ``Quality`` preset nearest below ``jpeg_quality``."""
    for limit, name in QUALITY_STEPS:
        if jpeg_quality < limit:
            return name
    return QUALITY_STEPS[-1][1]


class _LatestFrame:
    """The newest encoded frame, handed from the encoder's thread to the loop."""

    def __init__(self) -> None:
        self._frame: bytes | None = None
        self._ready = asyncio.Event()
        self.received = 0
        self.replaced = 0

    def put(self, jpeg: bytes) -> None:
        self.received += 1
        if self._frame is not None:
            self.replaced += 1
        self._frame = jpeg
        self._ready.set()

    async def frames(self) -> AsyncIterator[bytes]:
        while True:
            await self._ready.wait()
            self._ready.clear()
            jpeg, self._frame = self._frame, None
            if jpeg is not None:
                yield jpeg


class _Handoff(io.BufferedIOBase):
    """The "file" picamera2's ``FileOutput`` writes each JPEG to, on the encoder's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, latest: _LatestFrame) -> None:
        super().__init__()
        self._loop = loop
        self._latest = latest

    def writable(self) -> bool:
        return True

    def write(self, buffer: Any) -> int:
        jpeg = buffer if isinstance(buffer, bytes) else bytes(buffer)
        # The loop is closed only while the daemon exits; the frame can go.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._latest.put, jpeg)
        return len(jpeg)


class Picamera2Source(FrameSource):
    """A CSI camera (or a USB webcam libcamera supports) through picamera2."""

    name = "picamera2"

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.encoder = ""  # the picamera2 encoder class in use, for the status API
        self._latest: _LatestFrame | None = None

    @property
    def replaced(self) -> int:
        """Frames the encoder produced that the service was too busy to take."""
        return self._latest.replaced if self._latest is not None else 0

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterator[bytes]]:
        latest = self._latest = _LatestFrame()
        handoff = _Handoff(asyncio.get_running_loop(), latest)
        starting = asyncio.ensure_future(asyncio.to_thread(self._start, handoff))
        try:
            camera = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread goes on opening the camera; release it once it has, or the
            # next attempt finds it busy.
            with contextlib.suppress(BaseException):
                await asyncio.to_thread(self._stop, await asyncio.shield(starting))
            raise
        try:
            yield latest.frames()
        finally:
            await asyncio.to_thread(self._stop, camera)

    # ------------------------------------------------------------------ threads

    def _start(self, handoff: _Handoff) -> Any:
        cfg = self.config
        try:
            from picamera2 import Picamera2
            from picamera2.encoders import MJPEGEncoder, Quality
            from picamera2.outputs import FileOutput
        except Exception as err:
            raise CameraUnavailable(
                f"picamera2 cannot be imported ({err}); on Raspberry Pi OS run "
                "`sudo apt install python3-picamera2` and create the gateway's virtualenv "
                'with --system-site-packages, or set camera.backend = "synthetic"'
            ) from err
        try:
            camera = Picamera2(cfg.camera_num)
        except Exception as err:
            raise CameraUnavailable(
                f"camera {cfg.camera_num} cannot be opened ({err}); check the ribbon cable or "
                "USB plug, that `rpicam-hello --list-cameras` lists it, and that no other "
                "program is using it"
            ) from err
        try:
            # Raspberry Pi sensors report a Bayer order; USB webcams do not, and give YUYV.
            csi = "ColorFilterArrangement" in camera.camera_properties
            main = {"size": (cfg.width, cfg.height), "format": "YUV420" if csi else "YUYV"}
            controls: dict[str, Any] = {}
            if "FrameDurationLimits" in camera.camera_controls:
                frame_us = round(1_000_000 / cfg.fps)
                controls["FrameDurationLimits"] = (frame_us, frame_us)
            options: dict[str, Any] = {"main": main, "controls": controls, "buffer_count": 4}
            if cfg.hflip or cfg.vflip:
                libcamera = importlib.import_module("libcamera")  # installed with picamera2
                options["transform"] = libcamera.Transform(
                    hflip=int(cfg.hflip), vflip=int(cfg.vflip)
                )
            camera.configure(camera.create_video_configuration(**options))
            encoder = MJPEGEncoder()
            quality = getattr(Quality, quality_preset(cfg.jpeg_quality))
            camera.start_recording(encoder, FileOutput(handoff), quality=quality)
        except Exception as err:
            with contextlib.suppress(Exception):
                camera.close()
            raise CameraUnavailable(
                f"camera {cfg.camera_num} cannot record {cfg.width}x{cfg.height} at "
                f"{cfg.fps:g} fps ({err}); try a smaller camera.width/height or camera.fps"
            ) from err
        self.encoder = type(encoder).__name__
        log.info(
            "camera %d recording %dx%d at %g fps with %s",
            cfg.camera_num,
            cfg.width,
            cfg.height,
            cfg.fps,
            self.encoder,
        )
        return camera

    def _stop(self, camera: Any) -> None:
        try:
            camera.stop_recording()
        except Exception:
            log.warning("stopping the camera's recording failed", exc_info=True)
        try:
            camera.close()
        except Exception:
            log.warning("closing the camera failed", exc_info=True)

"""Camera backends, chosen once at start-up from ``camera.backend``.

``picamera2`` is imported only when that backend opens the camera.
"""

from __future__ import annotations

from gateway.camera.config import CameraConfig
from gateway.camera.sources.base import FrameSource
from gateway.camera.sources.picam import Picamera2Source
from gateway.camera.sources.synthetic import Scene, SyntheticCamera

__all__ = ["FrameSource", "Picamera2Source", "Scene", "SyntheticCamera", "make_source"]


def make_source(config: CameraConfig) -> FrameSource:
    """The backend ``config.backend`` names (nothing is opened yet)."""
    if config.backend == "synthetic":
        return SyntheticCamera(config.width, config.height, config.fps, config.jpeg_quality)
    return Picamera2Source(config)

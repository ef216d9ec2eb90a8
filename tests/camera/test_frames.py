"""Frame statistics measured on the synthetic camera's pictures."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from gateway.camera.frames import THUMB_SIZE, measure, thumbnail
from gateway.camera.sources.synthetic import Scene, SyntheticCamera

THRESHOLD = 24
MOTION = 0.02  # the default motion_threshold


@pytest.fixture(scope="module")
def camera() -> SyntheticCamera:
    return SyntheticCamera(640, 480, 15, 80)


def test_the_thumbnail_is_small_and_grey(camera: SyntheticCamera) -> None:
    thumb = thumbnail(camera.render(Scene.MOVING, 1, 0.0, time.time()))
    assert thumb.size == THUMB_SIZE and thumb.mode == "L"


def test_a_moving_picture_shows_motion_at_any_sample_interval(camera: SyntheticCamera) -> None:
    first, thumb = measure(camera.render(Scene.MOVING, 1, 0.0, time.time()), None, 0.0, THRESHOLD)
    assert first.motion == 0.0  # nothing to compare with
    for gap in (0.2, 0.5, 1.0, 2.0, 5.0):
        jpeg = camera.render(Scene.MOVING, 2, gap, time.time() + gap)
        stats, _ = measure(jpeg, thumb, gap, THRESHOLD)
        assert stats.motion >= MOTION, gap


def test_a_still_picture_shows_no_motion_though_the_clock_changes(
    camera: SyntheticCamera,
) -> None:
    a = camera.render(Scene.STILL, 1, 1.0, time.time())
    b = camera.render(Scene.STILL, 99, 1.0, time.time() + 7.345)
    assert a != b
    sa, thumb = measure(a, None, 0.0, THRESHOLD)
    sb, _ = measure(b, thumb, 1.0, THRESHOLD)
    assert sb.motion < MOTION
    assert sa.digest != sb.digest  # not frozen


def test_black_is_dark_and_the_pattern_is_not(camera: SyntheticCamera) -> None:
    black, _ = measure(camera.render(Scene.BLACK, 1, 0.0, time.time()), None, 0.0, THRESHOLD)
    lit, _ = measure(camera.render(Scene.MOVING, 1, 0.0, time.time()), None, 0.0, THRESHOLD)
    assert black.mean_luma < 12 < 40 < lit.mean_luma


def test_identical_bytes_have_identical_digests(camera: SyntheticCamera) -> None:
    jpeg = camera.render(Scene.MOVING, 1, 0.0, time.time())
    a, _ = measure(jpeg, None, 0.0, THRESHOLD)
    b, _ = measure(bytes(jpeg), None, 1.0, THRESHOLD)
    assert a.digest == b.digest and len(a.digest) == 16


def test_any_jpeg_size_gives_the_same_thumbnail_size() -> None:
    for size in ((160, 120), (1920, 1080), (333, 77)):
        out = io.BytesIO()
        Image.new("RGB", size, (200, 10, 10)).save(out, "JPEG")
        assert thumbnail(out.getvalue()).size == THUMB_SIZE


def test_garbage_raises_oserror() -> None:
    with pytest.raises(OSError):
        thumbnail(b"\xff\xd8 not really a jpeg")

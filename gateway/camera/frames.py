"""Cheap statistics of one JPEG frame, for the alerts.

Pillow's ``draft()`` asks the JPEG decoder for a 1/2, 1/4 or 1/8 scale picture,
which it produces from the DCT coefficients without decoding full size: a
640x480 frame becomes an 80x60 grey picture for a fraction of a full decode.
That is resized to a fixed :data:`THUMB_SIZE` so thresholds do not depend on
the camera's resolution.  Run :func:`measure` in a thread.
"""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageChops, ImageStat

from gateway.camera.alerts import FrameStats

THUMB_SIZE = (64, 48)


def thumbnail(jpeg: bytes) -> Image.Image:
    """A :data:`THUMB_SIZE` grey picture of ``jpeg`` (raises ``OSError`` if it is not one)."""
    with Image.open(io.BytesIO(jpeg)) as img:
        img.draft("L", THUMB_SIZE)
        grey = img.convert("L")
    return grey.resize(THUMB_SIZE, Image.Resampling.BILINEAR)


def changed_fraction(before: Image.Image, after: Image.Image, pixel_threshold: int) -> float:
    """Fraction of pixels whose luma changed by more than ``pixel_threshold``."""
    if before.size != after.size:
        return 1.0
    histogram = ImageChops.difference(before, after).histogram()
    changed = sum(histogram[pixel_threshold + 1 :])
    return changed / (after.size[0] * after.size[1])


def measure(
    jpeg: bytes, previous: Image.Image | None, at: float, pixel_threshold: int
) -> tuple[FrameStats, Image.Image]:
    """Statistics of ``jpeg`` (arrived at monotonic time ``at``) and its thumbnail.

    ``motion`` compares with ``previous``, the thumbnail of the last frame measured.
    """
    digest = hashlib.blake2b(jpeg, digest_size=16).digest()
    thumb = thumbnail(jpeg)
    mean = float(ImageStat.Stat(thumb).mean[0])
    motion = 0.0 if previous is None else changed_fraction(previous, thumb, pixel_threshold)
    return FrameStats(at=at, mean_luma=mean, digest=digest, motion=motion), thumb

"""The [camera] section: defaults, limits, and mistakes refused with the key's name."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from gateway.camera.config import CameraConfig

EXAMPLE = """
enabled = true
backend = "synthetic"
width = 1280
height = 720
fps = 10
jpeg_quality = 75

[timelapse]
mode = "interval"
interval_s = 30
max_disk_mb = 500
max_age_days = 14
render = true

[alerts]
frozen_after_s = 20
black_threshold = 10
stall_minutes = 15
motion_while_locked_minutes = 3
motion_threshold = 0.03
"""


def test_defaults_are_off_and_modest() -> None:
    c = CameraConfig()
    assert c.enabled is False and c.backend == "picamera2"
    assert (c.width, c.height, c.fps, c.jpeg_quality) == (640, 480, 15.0, 80)
    assert c.timelapse.mode == "layer" and c.timelapse.render is True
    assert c.alerts.enabled is True and c.alerts.stall_minutes == 10


def test_a_toml_section_parses() -> None:
    c = CameraConfig.model_validate(tomllib.loads(EXAMPLE))
    assert (c.width, c.height, c.fps) == (1280, 720, 10.0)
    assert c.timelapse.mode == "interval" and c.timelapse.interval_s == 30
    assert c.alerts.motion_threshold == 0.03


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"width": 641}, "width"),
        ({"height": 2000}, "height"),
        ({"fps": 0}, "fps"),
        ({"jpeg_quality": 100}, "jpeg_quality"),
        ({"backend": "opencv"}, "backend"),
        ({"colour": "red"}, "colour"),
        ({"timelapse": {"mode": "layers"}}, "timelapse.mode"),
        ({"timelapse": {"max_disk_mb": 0}}, "timelapse.max_disk_mb"),
        ({"alerts": {"motion_threshold": 2}}, "alerts.motion_threshold"),
        ({"alerts": {"frozen_after": 3}}, "alerts.frozen_after"),
    ],
)
def test_mistakes_name_their_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as err:
        CameraConfig.model_validate(values)
    locations = {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}
    assert key in locations


def test_reopening_waits_for_the_lost_alert() -> None:
    with pytest.raises(ValidationError, match="reopen_after_s"):
        CameraConfig.model_validate({"reopen_after_s": 5, "alerts": {"lost_after_s": 10}})


def test_it_is_frozen() -> None:
    c = CameraConfig()
    with pytest.raises(ValidationError):
        c.fps = 30

"""Turning a job's numbered JPEG frames into an MP4 with Debian's ffmpeg.

H.264 (``libx264``) when this ffmpeg has it, else MPEG-4 part 2 (``mpeg4``,
built into every ffmpeg), both in ``yuv420p`` so every browser and phone plays
them.  ffmpeg runs as an asyncio subprocess at lower priority (``nice``) with
two threads, so a render on a Pi Zero never starves the daemon; the video is
written to a ``.partial.mp4`` and renamed when complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from gateway.camera.errors import TimelapseError

H264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
MPEG4 = ("-c:v", "mpeg4", "-q:v", "4", "-pix_fmt", "yuv420p")
#: ffmpeg's image2 pattern of the frames the timelapse store writes.
FRAME_PATTERN = "frame_%06d.jpg"

_codecs: dict[str, tuple[str, ...]] = {}


def find_ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise TimelapseError(
            "ffmpeg is not installed, so timelapses cannot be made into videos; "
            "run `sudo apt install ffmpeg` (the frames are kept until then)"
        )
    return path


async def video_codec(ffmpeg: str) -> tuple[str, ...]:
    """The encoder arguments for this ffmpeg: H.264 if it has libx264, else MPEG-4."""
    known = _codecs.get(ffmpeg)
    if known is not None:
        return known
    proc = await asyncio.create_subprocess_exec(
        ffmpeg,
        "-hide_banner",
        "-encoders",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    codec = H264 if b" libx264 " in out else MPEG4
    _codecs[ffmpeg] = codec
    return codec


async def render_video(
    frames_dir: Path, output: Path, fps: int, timeout: float, *, ffmpeg: str | None = None
) -> Path:
    """Encode ``frames_dir``'s frames into ``output``; raises :class:`TimelapseError`."""
    exe = ffmpeg or find_ffmpeg()
    codec = await video_codec(exe)
    partial = output.with_name(output.stem + ".partial.mp4")
    command = [
        exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-framerate",
        str(fps),
        "-i",
        str(frames_dir / FRAME_PATTERN),
        # yuv420p needs even sizes; a camera's always are, but a hand-placed frame may not be.
        "-vf",
        "scale=trunc(iw/2)*2:trunc(ih/2)*2",
        *codec,
        "-threads",
        "2",
        "-movflags",
        "+faststart",
        str(partial),
    ]
    nice = shutil.which("nice")
    if nice is not None:
        command = [nice, "-n", "10", *command]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            _, err = await proc.communicate()
    except BaseException as exc:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()
        partial.unlink(missing_ok=True)
        if isinstance(exc, TimeoutError):
            raise TimelapseError(
                f"ffmpeg took over {timeout:.0f} s on {frames_dir.name}; raise "
                "camera.timelapse.render_timeout_s or lower the camera resolution"
            ) from exc
        raise
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = err.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise TimelapseError(f"ffmpeg could not make the timelapse video: {detail}")
    os.replace(partial, output)
    return output

"""The fan-out on its own: newest frame wins, slow viewers skip, nobody queues."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.camera.fanout import FanoutClosed, FrameFanout, multipart_part


def jpeg(n: int) -> bytes:
    return b"\xff\xd8" + n.to_bytes(4, "big") + b"\xff\xd9"


def test_the_part_is_a_multipart_part_with_the_jpeg_as_is() -> None:
    part = multipart_part(jpeg(7))
    assert part == (
        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\r\n" + jpeg(7) + b"\r\n"
    )


async def test_a_waiting_viewer_gets_the_next_frame() -> None:
    fanout = FrameFanout()
    waiter = asyncio.create_task(fanout.next_frame(0))
    await asyncio.sleep(0)
    assert not waiter.done()
    frame = fanout.publish(jpeg(1))
    assert await waiter is frame
    assert frame.seq == 1 and frame.jpeg == jpeg(1) and fanout.latest is frame


async def test_a_late_viewer_gets_only_the_newest_frame() -> None:
    fanout = FrameFanout()
    for n in range(1, 6):
        fanout.publish(jpeg(n))
    frame = await fanout.next_frame(0)
    assert frame.seq == 5
    waiter = asyncio.create_task(fanout.next_frame(5))
    await asyncio.sleep(0)
    assert not waiter.done()  # nothing newer than 5 yet
    fanout.publish(jpeg(6))
    assert (await waiter).seq == 6


async def test_a_slow_viewer_skips_frames_and_a_fast_one_sees_them_all() -> None:
    fanout = FrameFanout()
    fast: list[int] = []
    slow: list[int] = []

    async def watch(into: list[int], delay: float) -> None:
        async for frame in fanout.watch():
            into.append(frame.seq)
            await asyncio.sleep(delay)

    tasks = [asyncio.create_task(watch(fast, 0)), asyncio.create_task(watch(slow, 0.05))]
    await asyncio.sleep(0)
    assert fanout.viewers == 2
    for n in range(1, 41):
        fanout.publish(jpeg(n))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.06)
    fanout.close()
    await asyncio.gather(*tasks)
    assert fast == list(range(1, 41))
    assert slow == sorted(set(slow)) and len(slow) < 15 and slow[-1] == 40
    assert fanout.viewers == 0


async def test_max_fps_limits_one_viewer() -> None:
    fanout = FrameFanout()
    got: list[int] = []

    async def watch() -> None:
        async for frame in fanout.watch(max_fps=10):
            got.append(frame.seq)

    task = asyncio.create_task(watch())
    for n in range(1, 61):  # 60 frames over about 0.6 s
        fanout.publish(jpeg(n))
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert 4 <= len(got) <= 9


async def test_close_ends_every_viewer_and_reopen_accepts_frames_again() -> None:
    fanout = FrameFanout()
    fanout.publish(jpeg(1))
    waiter = asyncio.create_task(fanout.next_frame(1))
    await asyncio.sleep(0)
    fanout.close()
    with pytest.raises(FanoutClosed):
        await waiter
    assert [f async for f in fanout.watch()] == []
    fanout.reopen()
    fanout.publish(jpeg(2))
    assert (await fanout.next_frame(1)).seq == 2


async def test_rate_counts_recent_frames() -> None:
    fanout = FrameFanout()
    assert fanout.rate() == 0.0
    for n in range(10):
        fanout.publish(jpeg(n))
        await asyncio.sleep(0.02)
    assert 25 <= fanout.rate() <= 55


async def test_a_viewer_waiting_before_the_camera_opens_gets_its_first_frame() -> None:
    fanout = FrameFanout()
    waiter = asyncio.create_task(fanout.next_frame(0))
    await asyncio.sleep(0)
    fanout.reopen()  # the service starts
    fanout.publish(jpeg(1))
    async with asyncio.timeout(1):
        assert (await waiter).seq == 1

import asyncio
import dataclasses
from dataclasses import dataclass

from gateway.bus import Event, EventBus


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Event):
    topic = "ping"
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Event):
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LoudPing(Ping):
    pass


async def test_subscribers_get_only_their_types_in_order() -> None:
    bus = EventBus()
    with bus.subscribe(Ping) as pings, bus.subscribe(Event) as everything:
        bus.publish(Ping(n=1))
        bus.publish(Pong(n=2))
        bus.publish(LoudPing(n=3))
        assert [e.n for e in [pings.get_nowait(), pings.get_nowait()] if e] == [1, 3]
        assert pings.get_nowait() is None
        assert everything.pending() == 3


async def test_async_iteration_and_unsubscribe() -> None:
    bus = EventBus()
    got: list[int] = []

    async def reader() -> None:
        async with bus.subscribe(Ping) as sub:
            async for e in sub:
                got.append(e.n)
                if len(got) == 3:
                    return

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for i in range(3):
        bus.publish(Ping(n=i))
    await asyncio.wait_for(task, 1)
    assert got == [0, 1, 2]
    assert bus.subscriber_count == 0


async def test_slow_subscriber_drops_oldest_and_never_blocks_publisher() -> None:
    bus = EventBus()
    sub = bus.subscribe(Ping, maxsize=10)
    for i in range(1000):
        bus.publish(Ping(n=i))
    assert sub.pending() == 10
    assert sub.dropped == 990
    first = sub.get_nowait()
    assert first is not None and first.n == 990


def test_topic_is_a_class_attribute_not_a_field() -> None:
    assert Ping(n=1).topic == "ping"
    assert Pong(n=1).topic is None
    assert "topic" not in {f.name for f in dataclasses.fields(Ping)}

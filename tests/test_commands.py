from typing import Any

import pytest

from gateway.commands import CommandError, CommandRequest, CommandRouter


async def test_routes_to_the_registered_handler() -> None:
    router = CommandRouter()
    seen: list[CommandRequest] = []

    async def pause(req: CommandRequest) -> dict[str, Any]:
        seen.append(req)
        return {"paused": True}

    router.register("pause", pause)
    assert await router.call("pause", {"x": 1}, origin="mqtt", actor="admin") == {"paused": True}
    assert seen[0].origin == "mqtt" and seen[0].args == {"x": 1}


async def test_unknown_command_names_the_known_ones() -> None:
    router = CommandRouter()

    async def h(req: CommandRequest) -> dict[str, Any]:
        return {}

    router.register("cancel", h)
    with pytest.raises(CommandError) as err:
        await router.call("explode")
    assert err.value.code == "unknown_command"
    assert "cancel" in err.value.message


def test_nothing_may_register_a_power_on_command() -> None:
    router = CommandRouter()

    async def h(req: CommandRequest) -> dict[str, Any]:
        return {}

    for name in ("relay_on", "power_on", "unlock"):
        with pytest.raises(ValueError):
            router.register(name, h)


async def test_a_hung_handler_times_out() -> None:
    import asyncio

    router = CommandRouter()

    async def hang(req: CommandRequest) -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    router.register("hang", hang)
    with pytest.raises(CommandError) as err:
        await router.call("hang", timeout=0.05)
    assert err.value.code == "timeout"

"""Releasing a held job passes the member's "discard the interrupted job" answer on.

The machine's ``start_job`` refuses a new job while an interrupted one can still be
resumed (``interrupted_pending``), until the member confirms.  The slicer service runs
here for real (its SQLite store, the command router); the machine capability is
stood in for by a ``start_job`` handler that answers as the machine does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.bus import EventBus
from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.slicer.config import SlicerConfig
from gateway.slicer.service import SlicerService


async def test_release_passes_the_discard_answer_to_start_job(tmp_path: Path) -> None:
    commands = CommandRouter()
    asked: list[dict[str, Any]] = []

    async def start_job(req: CommandRequest) -> dict[str, Any]:
        asked.append(dict(req.args))
        if req.args.get("discard_interrupted") is not True:
            raise CommandError("interrupted_pending", "Job 3 (tower.gcode) was interrupted")
        return {"id": 4, "file": req.args["file"]}

    commands.register("start_job", start_job)
    service = SlicerService(
        SlicerConfig(), db_path=tmp_path / "gw.db", bus=EventBus(), commands=commands
    )
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        held = await commands.call(
            "slicer_hold",
            {"file": "coaster.gcode", "member_id": "m-ada", "member_name": "Ada Lovelace"},
        )
        with pytest.raises(CommandError) as err:
            await commands.call("slicer_release", {"id": held["id"]}, origin="kiosk")
        assert err.value.code == "interrupted_pending"
        # Still held: the refused tap changed nothing.
        still = (await commands.call("slicer_held"))["held"]
        assert [(j["id"], j["state"]) for j in still] == [(held["id"], "held")]
        with pytest.raises(CommandError) as err:
            args = {"id": held["id"], "discard_interrupted": "yes"}
            await commands.call("slicer_release", args, origin="kiosk")
        assert err.value.code == "bad_args"
        args = {"id": held["id"], "discard_interrupted": True}
        started = await commands.call("slicer_release", args, origin="kiosk")
        assert started["started"] is True and started["job"]["id"] == 4
        assert asked == [
            {"file": "coaster.gcode"},
            {"file": "coaster.gcode", "discard_interrupted": True},
        ]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

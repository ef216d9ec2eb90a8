"""Held-job policy through a running gateway: release = "session", expiry, and a member
cancelling their own job with their key (but not another member's)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from gateway.daemon import Gateway
from gateway.slicer.config import SlicerConfig
from gateway.web.auth import Scope

JOB = b"G28\nG1 X10 Y10 F1200\nG1 X20 Y10 F1200\n"


def base(gw: Gateway) -> str:
    assert gw.web is not None
    return f"http://127.0.0.1:{gw.web.port}"


async def key_for(gw: Gateway, member_id: str, name: str) -> str:
    made = await gw.commands.call(
        "slicer_key_create", {"member_id": member_id, "member_name": name}
    )
    return str(made["key"])


async def send(gw: Gateway, key: str, name: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base(gw)) as c:
        return await c.post(
            "/api/files/local",
            headers={"X-Api-Key": key},
            data={"print": "true"},
            files={"file": (name, JOB, "text/plain")},
        )


async def test_release_session_starts_at_once_for_the_member_in_session(
    tmp_path: Path, kit: Any
) -> None:
    config = kit.make_config(tmp_path / "state", time_scale=1.0)
    config = config.model_copy(update={"slicer": SlicerConfig(release="session")})
    async with kit.running_gateway(config) as gw:
        ada = await key_for(gw, "m-ada", "Ada Lovelace")
        max_ = await key_for(gw, "m-max", "Max Mender")
        # Nobody in session: held.
        r = await send(gw, ada, "first.gcode")
        assert r.json()["held"]["started"] is False
        await gw.commands.call("present_badge", {"uid": kit.ADA})
        await kit.wait_for(lambda: gw.machine.status()["powered"], 10.0, "power")
        # Another member's upload stays held while Ada is at the machine.
        r = await send(gw, max_, "max.gcode")
        assert r.json()["held"]["started"] is False
        r = await send(gw, ada, "second.gcode")
        assert r.json()["held"]["started"] is True and r.json()["effectivePrint"] is True
        job = gw.machine.status()["job"]
        assert job is not None and job["file"] == "second.gcode"
        held = (await gw.commands.call("slicer_held"))["held"]
        assert sorted(j["file"] for j in held) == ["first.gcode", "max.gcode"]
        await gw.commands.call("cancel")


async def test_held_jobs_expire(tmp_path: Path, kit: Any) -> None:
    config = kit.make_config(tmp_path / "state")
    config = config.model_copy(update={"slicer": SlicerConfig(hold_hours=0.0001)})  # 0.36 s
    async with kit.running_gateway(config) as gw:
        ada = await key_for(gw, "m-ada", "Ada Lovelace")
        assert (await send(gw, ada, "late.gcode")).status_code == 201
        await asyncio.sleep(0.5)
        assert (await gw.commands.call("slicer_held"))["held"] == []
        [record] = (await gw.commands.call("slicer_usage"))["jobs"]
        assert record["state"] == "expired" and record["released_by"] is None


async def test_members_cancel_their_own_jobs_with_their_key(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        ada = await key_for(gw, "m-ada", "Ada Lovelace")
        max_ = await key_for(gw, "m-max", "Max Mender")
        held_id = (await send(gw, ada, "mine.gcode")).json()["held"]["id"]
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            mine = (await c.get("/api/slicer/mine", headers={"X-Api-Key": ada})).json()
            assert [j["file"] for j in mine["held"]] == ["mine.gcode"]
            theirs = (await c.get("/api/slicer/mine", headers={"X-Api-Key": max_})).json()
            assert theirs["held"] == []
            r = await c.delete(f"/api/slicer/mine/{held_id}", headers={"X-Api-Key": max_})
            assert r.status_code == 403 and r.json()["error"]["code"] == "not_yours"
            r = await c.delete(f"/api/slicer/mine/{held_id}", headers={"X-Api-Key": ada})
            assert r.status_code == 200 and r.json()["state"] == "cancelled"
        assert (await gw.commands.call("slicer_held"))["held"] == []


async def test_files_uploaded_through_the_web_api_record_their_door(
    tmp_path: Path, kit: Any
) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        token = kit.new_token(gw, "workshop-pc", Scope.OPERATE)
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await c.post(
                "/api/files",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("shared.gcode", JOB, "text/plain")},
            )
            assert r.status_code == 201
        owner = (await gw.commands.call("slicer_files"))["owners"]["shared.gcode"]
        assert (owner["member_id"], owner["door"]) == ("token:workshop-pc", "web")

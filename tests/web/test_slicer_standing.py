"""Members' standing at the slicer doors: a suspended member's key is refused in each
surface's own shape; a member expired or not inducted here may still send jobs (they
stay held, since that member cannot badge in)."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.daemon import Gateway

JOB = b"; sliced\nG28\nG1 X10 Y10 F1200\nG1 X20 Y10 F1200\n"
SUSPENDED = "Your membership is suspended: ask the space's admins"


def base(gw: Gateway) -> str:
    assert gw.web is not None
    return f"http://127.0.0.1:{gw.web.port}"


def write_list(kit: Any, path: Path, suspended: dict[str, str]) -> None:
    """The demo list, with the members in ``suspended`` suspended for the reason given."""
    members = copy.deepcopy(kit.DEMO_MEMBERS)
    for m in members:
        if m["id"] in suspended:
            m["suspended"] = suspended[m["id"]]
    doc = {
        "version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": len(members),
        "members": members,
    }
    path.write_text(json.dumps(doc))


async def key_for(gw: Gateway, member_id: str, name: str) -> str:
    made = await gw.commands.call(
        "slicer_key_create", {"member_id": member_id, "member_name": name}, origin="cli"
    )
    return str(made["key"])


async def standing(gw: Gateway, member_id: str) -> str:
    answer = await gw.commands.call("member_standing", {"member_id": member_id})
    return str(answer["standing"])


async def upload(c: httpx.AsyncClient, key: str, name: str) -> httpx.Response:
    return await c.post(
        "/api/files/local",
        headers={"X-Api-Key": key},
        data={"print": "true"},
        files={"file": (name, JOB, "text/plain")},
    )


async def test_a_suspended_members_key_is_refused_until_the_suspension_is_lifted(
    tmp_path: Path, kit: Any
) -> None:
    # Few refused keys allowed per address: a suspended member's polling slicer must
    # not lock the workshop's other members out.
    config = kit.make_config(tmp_path / "state", web={"auth_failures_per_minute": 3})
    list_path = tmp_path / "state" / "demo-members.json"  # the file source's list
    assert list_path.is_file()
    write_list(kit, list_path, {"m-max": "unpaid fees"})
    async with kit.running_gateway(config) as gw:
        max_ = await key_for(gw, "m-max", "Max Mender")
        ada = await key_for(gw, "m-ada", "Ada Lovelace")
        assert await standing(gw, "m-max") == "suspended"
        h = {"X-Api-Key": max_}
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            # OctoPrint's shape, for PrusaSlicer's "Test" and for uploads.
            for _ in range(5):
                r = await c.get("/api/version", headers=h)
                assert r.status_code == 403
                assert r.json()["error"].startswith(SUSPENDED)
                # The reason is the space's business with the member, not the slicer's.
                assert "unpaid" not in r.text
            r = await upload(c, max_, "max part.gcode")
            assert r.status_code == 403 and r.json()["error"].startswith(SUSPENDED)
            # Moonraker's shape.
            r = await c.post(
                "/server/files/upload",
                headers=h,
                files={"print": (None, "true"), "file": ("orca.gcode", JOB, "text/plain")},
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == 403
            assert r.json()["error"]["message"].startswith(SUSPENDED)
            # The gateway's own API, in its error model.
            r = await c.get("/api/slicer/mine", headers=h)
            assert r.status_code == 403 and r.json()["error"]["message"].startswith(SUSPENDED)
            # Nothing was kept, and other members' keys still work from this address.
            assert [f.name for f in gw.machine.files.list()] == []
            assert (await gw.commands.call("slicer_held"))["held"] == []
            assert (await c.get("/api/version", headers={"X-Api-Key": ada})).status_code == 200

            # The space lifts the suspension: the same key works again.
            write_list(kit, list_path, {})
            for _ in range(200):
                if await standing(gw, "m-max") == "active":
                    break
                await asyncio.sleep(0.05)
            assert await standing(gw, "m-max") == "active"
            r = await upload(c, max_, "max part.gcode")
            assert r.status_code == 201, r.text
        [job] = (await gw.commands.call("slicer_held"))["held"]
        assert (job["member_id"], job["file"]) == ("m-max", "max part.gcode")


async def test_expired_and_not_inducted_members_still_send_jobs_that_stay_held(
    tmp_path: Path, kit: Any
) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        bob = await key_for(gw, "m-bob", "Bob Newcomer")
        eve = await key_for(gw, "m-eve", "Eve Lapsed")
        assert await standing(gw, "m-bob") == "not_inducted"
        assert await standing(gw, "m-eve") == "expired"
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            for key, name in ((bob, "bob.gcode"), (eve, "eve.gcode")):
                r = await upload(c, key, name)
                assert r.status_code == 201, r.text
                assert r.json()["held"]["started"] is False
        held = (await gw.commands.call("slicer_held"))["held"]
        assert sorted((j["member_id"], j["file"]) for j in held) == [
            ("m-bob", "bob.gcode"),
            ("m-eve", "eve.gcode"),
        ]
        # Neither can badge in, so neither job can start.
        await gw.commands.call("present_badge", {"uid": kit.EVE})
        await asyncio.sleep(0.2)
        assert gw.access is not None and gw.access.status()["session"] is None

"""Slicers' request sequences replayed against a running gateway over real HTTP
(uvicorn on loopback): PrusaSlicer's and Cura's OctoPrint clients and Orca's Moonraker
upload, each ending with the job held for the right member.

The sequences follow PrusaSlicer's ``src/slic3r/Utils/OctoPrint.cpp`` (test, then
upload with ``print``/``path``/``file``), Cura's OctoPrint plugin (app-key pairing,
settings/version/profiles, passive login, printer/job polls, upload with
``select``/``print`` then a select+print on the ``Location``) and Orca's Moonraker host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.daemon import Gateway
from gateway.web.auth import Scope

#: Accents, spaces and a dash as a member would name the file.
NAME = "Br\u00e4cket v3 \u2013 PLA.gcode"
JOB = b"; sliced\nG28\nG90\nM104 S200\nG1 X10 Y10 F1200\nG1 X20 Y10 F1200\nM104 S0\n"


def base(gw: Gateway) -> str:
    assert gw.web is not None
    return f"http://127.0.0.1:{gw.web.port}"


async def member_key(gw: Gateway, member_id: str, name: str) -> str:
    made = await gw.commands.call(
        "slicer_key_create", {"member_id": member_id, "member_name": name}, origin="cli"
    )
    return str(made["key"])


async def held(gw: Gateway) -> list[dict[str, Any]]:
    return list((await gw.commands.call("slicer_held"))["held"])


async def badge_in(gw: Gateway, kit: Any, uid: str) -> None:
    await gw.commands.call("present_badge", {"uid": uid})
    await kit.wait_for(
        lambda: (gw.access.status().get("session") or {}).get("member_id") is not None,
        10.0,
        "the badge session",
    )


async def test_prusaslicer_sequence_holds_the_job_for_the_member(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await member_key(gw, "m-ada", "Ada Lovelace")
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            # "Test" button: GET /api/version with the key.
            r = await c.get("/api/version", headers={"X-Api-Key": key})
            assert r.status_code == 200
            assert "api" in r.json() and r.json()["text"].startswith("OctoPrint")
            # Upload and print: fields first, then the file.
            r = await c.post(
                "/api/files/local",
                headers={"X-Api-Key": key},
                data={"print": "true", "path": ""},
                files={"file": (NAME, JOB, "application/octet-stream")},
            )
            assert r.status_code == 201, r.text
            assert r.headers["location"].endswith("/api/files/local/Bracket%20v3%20_%20PLA.gcode")
            assert r.json()["files"]["local"]["display"] == NAME
            assert r.json()["effectivePrint"] is False
        jobs = await held(gw)
        assert [(j["member_id"], j["display_name"], j["held_for"]) for j in jobs] == [
            ("m-ada", NAME, "Ada L.")
        ]
        # Held, not started: the machine is still idle.
        assert gw.machine.status()["state"] == "idle"
        assert gw.machine.status()["job"] is None
        # The usage report names the member and the door.
        admin = kit.new_token(gw, "admin", Scope.ADMIN)
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await c.get("/api/usage", headers={"Authorization": f"Bearer {admin}"})
        [row] = r.json()["member_jobs"]
        assert (row["member_id"], row["door"], row["jobs_held"]) == ("m-ada", "slicer", 1)


async def test_cura_pairs_on_the_kiosk_and_uploads_as_that_member(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        async with (
            httpx.AsyncClient(base_url=base(gw)) as cura,
            httpx.AsyncClient(base_url=base(gw)) as kiosk,
        ):
            assert (await cura.get("/plugin/appkeys/probe")).status_code == 204
            r = await cura.post("/plugin/appkeys/request", json={"app": "Cura"})
            assert r.status_code == 201
            token = r.json()["app_token"]
            poll = r.headers["location"]
            assert poll.endswith(f"/plugin/appkeys/request/{token}")
            assert (await cura.get(poll)).status_code == 202

            # Nobody badged in: the touchscreen cannot approve.
            r = await kiosk.get("/api/slicer/pairings")
            assert r.status_code == 403
            await badge_in(gw, kit, kit.ADA)
            r = await kiosk.get("/api/slicer/pairings")
            assert [p["app"] for p in r.json()["pairings"]] == ["Cura"]
            r = await kiosk.post(f"/api/slicer/pairings/{token}", json={"approve": True})
            assert r.status_code == 200, r.text

            r = await cura.get(poll)
            assert r.status_code == 200
            key = r.json()["api_key"]
            # The key is handed out once.
            assert (await cura.get(poll)).status_code == 404

            h = {"X-Api-Key": key}
            settings = (await cura.get("/api/settings", headers=h)).json()
            assert settings["feature"]["sdSupport"] is False
            assert "webcamEnabled" in settings["webcam"]
            assert (await cura.get("/api/version", headers=h)).json()["api"]
            assert (
                "_default" in (await cura.get("/api/printerprofiles", headers=h)).json()["profiles"]
            )
            r = await cura.post("/api/login", headers=h, json={"passive": True})
            assert r.status_code == 200 and r.json()["name"] == "m-ada"
            r = await cura.get("/api/printer", headers=h)
            assert r.json()["state"]["flags"]["operational"] is True
            assert (await cura.get("/api/job", headers=h)).json()["state"] == "Operational"

            # Upload without starting, then select+print on the Location (delayed start).
            r = await cura.post(
                "/api/files/local",
                headers=h,
                files={
                    "select": (None, "false"),
                    "print": (None, "false"),
                    "file": ("CE3_cube.gcode", JOB, "application/octet-stream"),
                },
            )
            assert r.status_code == 201, r.text
            assert await held(gw) == []
            r = await cura.post(
                r.headers["location"], headers=h, json={"command": "select", "print": True}
            )
            assert r.status_code == 204, r.text
        jobs = await held(gw)
        assert [(j["member_id"], j["file"]) for j in jobs] == [("m-ada", "CE3_cube.gcode")]


async def test_cura_pairing_denied_answers_404(tmp_path: Path, kit: Any) -> None:
    async with (
        kit.running_gateway(kit.make_config(tmp_path / "state")) as gw,
        httpx.AsyncClient(base_url=base(gw)) as c,
    ):
        token = (await c.post("/plugin/appkeys/request", json={"app": "Cura"})).json()["app_token"]
        await badge_in(gw, kit, kit.ADA)
        r = await c.post(f"/api/slicer/pairings/{token}", json={"approve": False})
        assert r.status_code == 200
        assert (await c.get(f"/plugin/appkeys/request/{token}")).status_code == 404
        assert (await c.post("/plugin/appkeys/request", json={"app": 5})).status_code == 400


async def test_orca_moonraker_upload_holds_the_job(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await member_key(gw, "m-max", "Max Mender")
        h = {"X-Api-Key": key}
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await c.get("/server/info", headers=h)
            assert r.status_code == 200 and r.json()["result"]["klippy_state"] == "ready"
            r = await c.post(
                "/server/files/upload",
                headers=h,
                files={
                    "root": (None, "gcodes"),
                    "path": (None, ""),
                    "print": (None, "true"),
                    "file": ("orca part.gcode", JOB, "application/octet-stream"),
                },
            )
            assert r.status_code == 201, r.text
            assert r.json()["item"] == {"path": "orca part.gcode", "root": "gcodes"}
            assert r.json()["print_started"] is False
            # The separate start call holds it again (a second held job for Max).
            r = await c.post(
                "/printer/print/start", headers=h, params={"filename": "orca part.gcode"}
            )
            assert r.status_code == 200 and r.json() == {"result": "ok"}
            r = await c.get("/server/info")
            assert r.status_code == 401 and r.json()["error"]["code"] == 401
        jobs = await held(gw)
        assert [(j["member_id"], j["file"]) for j in jobs] == [("m-max", "orca part.gcode")] * 2


async def test_fields_after_the_file_count_too(tmp_path: Path, kit: Any) -> None:
    """Some clients put ``print`` after the file part; it still holds the job."""
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await member_key(gw, "m-ada", "Ada Lovelace")
        boundary = "fieldsafterfile"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="late.gcode"\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            + JOB
            + (
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="print"\r\n\r\n'
                f"true\r\n--{boundary}--\r\n"
            ).encode()
        )
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await c.post(
                "/api/files/local",
                content=body,
                headers={
                    "X-Api-Key": key,
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
        assert r.status_code == 201, r.text
        assert [j["file"] for j in await held(gw)] == ["late.gcode"]

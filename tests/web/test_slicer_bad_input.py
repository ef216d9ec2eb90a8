"""Bad input on the slicer surfaces: a clear refusal and nothing left on disk.

Against a running gateway over real HTTP (and a raw socket for the cut-off upload).
"""

from __future__ import annotations

import asyncio
import resource
import signal
from pathlib import Path
from typing import Any

import httpx

from gateway.daemon import Gateway
from gateway.web.auth import Scope

JOB = b"G28\nG1 X10 Y10 F1200\nG1 X20 Y10 F1200\n"


def base(gw: Gateway) -> str:
    assert gw.web is not None
    return f"http://127.0.0.1:{gw.web.port}"


def library(gw: Gateway) -> set[str]:
    """Every file under the library folder, hidden folders included."""
    root = gw.machine.files.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def found_outside(top: Path, root: Path, name: str) -> list[Path]:
    """Copies of ``name`` anywhere but the library (and its prepared copy)."""
    return [p for p in top.rglob(name) if p.parent not in (root, root / ".prepared")]


async def key_for(gw: Gateway, member_id: str = "m-ada", name: str = "Ada Lovelace") -> str:
    made = await gw.commands.call(
        "slicer_key_create", {"member_id": member_id, "member_name": name}
    )
    return str(made["key"])


async def upload(
    c: httpx.AsyncClient, key: str, name: str, data: bytes, **fields: str
) -> httpx.Response:
    return await c.post(
        "/api/files/local",
        headers={"X-Api-Key": key},
        data=fields,
        files={"file": (name, data, "application/octet-stream")},
    )


async def test_keys_missing_wrong_or_replaced_are_refused_like_octoprint(
    tmp_path: Path, kit: Any
) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        old = await key_for(gw)
        new = await key_for(gw)  # the same label again: the old key is revoked
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await c.get("/api/version")
            assert r.status_code == 401 and "slicer key" in r.json()["error"]
            r = await c.get("/api/version", headers={"X-Api-Key": "gwm_made-up"})
            assert r.status_code == 403 and "not valid" in r.json()["error"]
            r = await upload(c, old, "a.gcode", JOB, print="true")
            assert r.status_code == 403 and "touchscreen" in r.json()["error"]
            assert (await c.get("/api/version", params={"apikey": new})).status_code == 200
            # An admin revokes the member's keys: the key stops working at once.
            await gw.commands.call("slicer_key_revoke", {"member_id": "m-ada"})
            assert (await c.get("/api/version", headers={"X-Api-Key": new})).status_code == 403
            # An API token is not a member key.
            admin = kit.new_token(gw, "admin", Scope.ADMIN)
            r = await c.get("/api/version", headers={"X-Api-Key": admin})
            assert r.status_code == 403
        assert await gw.commands.call("slicer_held") == {"held": []}


async def test_bad_files_get_a_reason_and_leave_nothing(tmp_path: Path, kit: Any) -> None:
    config = kit.make_config(tmp_path / "state", jobs={"max_upload_bytes": 64 * 1024})
    async with kit.running_gateway(config) as gw:
        key = await key_for(gw)
        before = library(gw)
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await upload(c, key, "model.stl", b"solid cube\nendsolid\n", print="true")
            assert r.status_code == 415 and "not a G-code file name" in r.json()["error"]
            r = await upload(c, key, "empty.gcode", b"", print="true")
            assert r.status_code == 422 and "no G-code" in r.json()["error"]
            r = await upload(c, key, "binary.gcode", b"G28\n\x89PNG\x00\x01\x02\n", print="true")
            assert r.status_code == 422 and "control byte" in r.json()["error"]
            big = b"G1 X1 Y1 F1000\n" * 6000  # 90 KiB, over the 64 KiB limit
            r = await upload(c, key, "big.gcode", big, print="true")
            assert r.status_code == 413 and "limit" in r.json()["error"]
            r = await c.post(
                "/server/files/upload",
                headers={"X-Api-Key": key},
                files={"file": ("big.gcode", big, "text/plain")},
            )
            assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
            r = await c.post(
                "/api/files/local",
                headers={"X-Api-Key": key, "Content-Type": "application/json"},
                content=b"{}",
            )
            assert r.status_code == 415
        assert library(gw) == before
        assert await gw.commands.call("slicer_held") == {"held": []}


async def test_path_tricks_are_neutralised(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await key_for(gw)
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await upload(c, key, "../../../etc/evil.gcode", JOB, path="../../../tmp")
            assert r.status_code == 201, r.text
            assert r.json()["files"]["local"]["name"] == "evil.gcode"
            r = await upload(c, key, "C:\\Users\\ada\\.hidden.gcode", JOB)
            assert r.json()["files"]["local"]["name"] == "hidden.gcode"
            r = await c.post(
                "/api/files/local/..%2F..%2Fgateway.db",
                headers={"X-Api-Key": key},
                json={"command": "select", "print": True},
            )
            assert r.status_code in (400, 404)
        assert "evil.gcode" in library(gw) and "hidden.gcode" in library(gw)
        assert found_outside(tmp_path, gw.machine.files.root, "evil.gcode") == []


async def test_same_name_never_replaces_a_held_file(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await key_for(gw)
        bob = await key_for(gw, "m-max", "Max Mender")
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await upload(c, key, "part.gcode", JOB, print="true")
            assert r.json()["files"]["local"]["name"] == "part.gcode"
            r = await upload(c, bob, "part.gcode", JOB + b"G1 X30\n", print="true")
            assert r.json()["files"]["local"]["name"] == "part-2.gcode"
            r = await upload(c, bob, "part.gcode", JOB + b"G1 X40\n", print="true")
            assert r.json()["files"]["local"]["name"] == "part-3.gcode"
        assert gw.machine.files.get("part.gcode").lines == 3
        held = (await gw.commands.call("slicer_held"))["held"]
        assert [(j["file"], j["member_id"]) for j in held] == [
            ("part.gcode", "m-ada"),
            ("part-2.gcode", "m-max"),
            ("part-3.gcode", "m-max"),
        ]
        # Another member cannot take over Ada's file with a select+print.
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            r = await c.post(
                "/api/files/local/part.gcode",
                headers={"X-Api-Key": bob},
                json={"command": "select", "print": True},
            )
            assert r.status_code == 409 and "another member" in r.json()["error"]


async def test_upload_cut_off_midstream_leaves_nothing(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await key_for(gw)
        before = library(gw)
        assert gw.web is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.web.port)
        boundary = "cutoffboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="print"\r\n\r\ntrue\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="cut.gcode"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        body = head + b"G1 X1 Y1 F1000\n" * 20_000
        request = (
            "POST /api/files/local HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Api-Key: {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body) + 10_000}\r\n\r\n"
        ).encode()
        writer.write(request + body)
        await writer.drain()
        writer.close()
        await kit.wait_for(lambda: not any(p.startswith(".incoming/") for p in library(gw)))
        await asyncio.sleep(0.5)
        assert library(gw) == before
        assert await gw.commands.call("slicer_held") == {"held": []}
        del reader


async def test_disk_full_answers_507_and_leaves_nothing(tmp_path: Path, kit: Any) -> None:
    """The process's file-size limit stands in for a full disk: writes past it fail
    with EFBIG as they would with ENOSPC, through the same code path."""
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await key_for(gw)
        before = library(gw)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, hard))
        try:
            async with httpx.AsyncClient(base_url=base(gw)) as c:
                r = await upload(c, key, "huge.gcode", b"G1 X1 Y1 F1000\n" * 300_000)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old)
        assert r.status_code == 507, r.text
        assert "storage is full" in r.json()["error"]
        assert library(gw) == before


async def test_mangled_uploads_never_crash_and_leave_no_partial_file(
    tmp_path: Path, kit: Any
) -> None:
    """Upload bodies cut, flipped and mislabelled at random (seeded) points: each gets
    a 4xx with a reason, or is a whole valid upload; the library never keeps a part."""
    import random

    rng = random.Random(1234)
    async with kit.running_gateway(kit.make_config(tmp_path / "state")) as gw:
        key = await key_for(gw)
        boundary = "mangleboundary"
        good = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="print"\r\n\r\ntrue\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="m.gcode"\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            + JOB * 50
            + f"\r\n--{boundary}--\r\n".encode()
        )
        statuses = []
        async with httpx.AsyncClient(base_url=base(gw)) as c:
            for _ in range(40):
                body = bytearray(good)
                match rng.randrange(4):
                    case 0:
                        body = body[: rng.randrange(len(body))]
                    case 1:
                        for _ in range(rng.randrange(1, 8)):
                            body[rng.randrange(len(body))] = rng.randrange(256)
                    case 2:
                        cut = rng.randrange(len(body))
                        body[cut:cut] = rng.randbytes(rng.randrange(1, 200))
                    case _:
                        body = bytearray(body.replace(b"mangleboundary", b"otherboundary", 1))
                r = await c.post(
                    "/api/files/local",
                    content=bytes(body),
                    headers={
                        "X-Api-Key": key,
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                )
                statuses.append(r.status_code)
                assert r.status_code in (201, 400, 415, 422), (r.status_code, r.text)
                assert "error" in r.json() or r.status_code == 201
        assert 400 in statuses
        assert not [p for p in library(gw) if p.startswith(".incoming/")]
        # Whatever was kept is a whole, checked file with its record.
        for f in await asyncio.to_thread(gw.machine.files.list):
            assert f.lines > 0

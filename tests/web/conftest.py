"""A real gateway for the web tests: simulated Marlin controller, simulated badge reader,
mock GPIO, a demo access list, and tokens of every scope.

``running_gateway`` runs it in the test's event loop (API tests through
httpx's ASGI transport, plus the live uvicorn for streams);
``GatewayThread`` runs it in a thread of its own, for clients that block
(Playwright's sync API, schemathesis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import GatewayConfig, load_config
from gateway.daemon import Gateway, build
from gateway.store import open_database
from gateway.web.auth import Scope, create_token

SITE_SECRET = "web-tests-site-secret-0123456789"
ADA, MAX, BOB, EVE = "04A1B2C3", "04D4E5F6", "04B0B0B0", "04E0E0E0"
UNKNOWN = "0499887766"
KIOSK = ("127.0.0.1", 40001)
REMOTE = ("203.0.113.7", 40002)

DEMO_MEMBERS = [
    {"id": "m-ada", "name": "Ada Lovelace", "badges": [ADA], "machines": {"*": "user"}},
    {"id": "m-max", "name": "Max Mender", "badges": [MAX], "machines": {"*": "maintainer"}},
    {"id": "m-bob", "name": "Bob Newcomer", "badges": [BOB], "machines": {}},
    {
        "id": "m-eve",
        "name": "Eve Lapsed",
        "badges": [EVE],
        "machines": {"*": "user"},
        "valid_until": "2020-01-31",
    },
]


def write_access_list(path: Path) -> Path:
    doc = {
        "version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": len(DEMO_MEMBERS),
        "members": DEMO_MEMBERS,
    }
    path.write_text(json.dumps(doc, indent=2))
    return path


def access_section(state_dir: Path) -> dict[str, Any]:
    return {
        "gpio": "mock",
        "site_secret": SITE_SECRET,
        "readers": [{"type": "simulated", "name": "sim", "repeat_suppress": 0.0}],
        "source": {
            "type": "file",
            "path": str(write_access_list(state_dir / "demo-members.json")),
            "check_interval": 0.5,
        },
        # The kiosk test is refused six times before "too many attempts".
        "rules": {"denied_rate_limit": 6},
    }


def make_config(
    state_dir: Path,
    *,
    time_scale: float = 0.0,
    simulation: bool = True,
    access: bool = True,
    jobs: dict[str, Any] | None = None,
    web: dict[str, Any] | None = None,
    camera: dict[str, Any] | None = None,
) -> GatewayConfig:
    state_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        "simulation": {"enabled": simulation, "time_scale": time_scale},
        "storage": {"state_dir": str(state_dir)},
        "web": {"port": 0, **(web or {})},
        "machine": {"id": "test-printer", "name": "Test printer"},
    }
    if jobs:
        overrides["jobs"] = jobs
    if camera:
        overrides["camera"] = camera
    overrides["access"] = access_section(state_dir) if access else {"enabled": False}
    return load_config(None, **overrides)


def new_token(gw: Gateway, name: str, scope: Scope) -> str:
    db = open_database(gw.config.storage.database)
    try:
        return create_token(db, name, scope)[1]
    finally:
        db.conn.close()


async def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


def ready(gw: Gateway) -> bool:
    if gw.machine.status()["state"] != "idle":
        return False
    if gw.access is None or not gw.access.config.enabled:
        return True
    s = gw.access.status()
    return bool(s["running"]) and s["access_list"]["members"] == len(DEMO_MEMBERS)


@dataclass
class Tokens:
    read: str
    operate: str
    admin: str

    def header(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


@contextlib.asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[Gateway]:
    gw = build(config)
    async with gw.supervisor:
        await wait_for(lambda: ready(gw), 15.0, "the gateway to be ready")
        yield gw


def client(gw: Gateway, address: tuple[str, int] = REMOTE, **kw: Any) -> httpx.AsyncClient:
    assert gw.web is not None
    transport = httpx.ASGITransport(app=gw.web.app, client=address, **kw)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost:8080")


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(make_config(tmp_path / "state")) as g:
        yield g


@pytest.fixture
def tokens(gw: Gateway) -> Tokens:
    return Tokens(
        read=new_token(gw, "reader", Scope.READ),
        operate=new_token(gw, "operator", Scope.OPERATE),
        admin=new_token(gw, "admin", Scope.ADMIN),
    )


def gcode_file(moves: int, *, feed: int = 1200, step: float = 5.0) -> bytes:
    """A Marlin job of ``moves`` back-and-forth moves (at time_scale 1, step/feed*60 s each)."""
    lines = ["; web test job", "G28", "G90", "M104 S200", "M140 S60"]
    for i in range(moves):
        lines.append(f"G1 X{step if i % 2 == 0 else 0:.1f} Y{i % 7:.1f} F{feed}")
    lines.append("M104 S0")
    return ("\n".join(lines) + "\n").encode()


class GatewayThread:
    """The daemon running in its own thread and event loop, for blocking clients."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.gw: Gateway | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="gateway", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # reported to the test thread
            self._error = err
            self._started.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_gateway(self.config) as gw:
            self.gw = gw
            self._started.set()
            await self._stop.wait()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the daemon's loop (for reading its state safely)."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    @property
    def url(self) -> str:
        assert self.gw is not None and self.gw.web is not None
        return f"http://127.0.0.1:{self.gw.web.port}"

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        if not self._started.wait(30) or self._error is not None:
            raise RuntimeError(f"the gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@contextlib.contextmanager
def gateway_thread(config: GatewayConfig) -> Iterator[GatewayThread]:
    with GatewayThread(config) as g:
        yield g


class Kit:
    """The helpers above, handed to test modules by the ``kit`` fixture (test modules
    cannot import from conftest under ``--import-mode=importlib``)."""

    ADA, MAX, BOB, EVE, UNKNOWN = ADA, MAX, BOB, EVE, UNKNOWN
    KIOSK, REMOTE = KIOSK, REMOTE
    DEMO_MEMBERS = DEMO_MEMBERS
    Tokens = Tokens
    make_config = staticmethod(make_config)
    running_gateway = staticmethod(running_gateway)
    gateway_thread = staticmethod(gateway_thread)
    client = staticmethod(client)
    new_token = staticmethod(new_token)
    wait_for = staticmethod(wait_for)
    gcode_file = staticmethod(gcode_file)
    write_access_list = staticmethod(write_access_list)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit

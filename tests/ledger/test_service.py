"""The ledger service on the bus; its records through the telemetry outbox and the
broker's retained copy, against a real Mosquitto that goes away mid-run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.backoff import Backoff
from gateway.bus import EventBus
from gateway.cli import main
from gateway.commands import CommandError, CommandRouter
from gateway.ledger.config import LedgerConfig
from gateway.ledger.events import LedgerRecorded
from gateway.ledger.service import LedgerService
from gateway.metering.events import SessionUsageClosed
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.service import TelemetryService

MACHINE = "printer-1"


def usage(n: int) -> SessionUsageClosed:
    return SessionUsageClosed(
        session_id=f"s{n}", member_id="m-ada", member_name="Ada", role="user",
        inducted_by=None, started=1.7e9, ended=1.7e9 + 600, reason="badge_out",
        powered_seconds=600.0, busy_seconds=420.0, idle_seconds=180.0, energy_wh=140.0,
        estimated=False, grams=18.0, jobs=((n, "completed"),), cost="1.85", currency="EUR",
        free_minutes=0.0,
    )


def telemetry_config(broker: Any) -> TelemetryConfig:
    return TelemetryConfig(
        enabled=True, host=broker.host, port=broker.port, keepalive=5,
        telemetry_interval=0, home_assistant=False,
    )


@contextlib.asynccontextmanager
async def run(*services: Any) -> AsyncIterator[None]:
    tasks = []
    try:
        for s in services:
            tasks.append(asyncio.create_task(s.run()))
            async with asyncio.timeout(10):
                await s.ready.wait()
        yield
    finally:
        for t in reversed(tasks):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t


def ledger(
    tmp_path: Path, bus: EventBus, commands: CommandRouter, telemetry: Any = None
) -> LedgerService:
    service = LedgerService(
        LedgerConfig(), machine_id=MACHINE, db_path=tmp_path / "state" / "gateway.db",
        state_dir=tmp_path / "state", bus=bus, commands=commands, telemetry=telemetry,
    )
    return service


async def test_closed_sessions_become_signed_records_and_corrections_follow(tmp_path: Path) -> None:
    bus, commands = EventBus(), CommandRouter()
    service = ledger(tmp_path, bus, commands)
    async with run(service):
        with bus.subscribe(LedgerRecorded) as recorded:
            bus.publish(usage(1))
            first = await asyncio.wait_for(recorded.get(), 5)
            assert first.record["seq"] == 1 and first.record["kind"] == "session"
            assert first.record["body"]["cost"] == "1.85"
            assert first.record["body"]["jobs"] == [[1, "completed"]]
            result = await commands.call(
                "ledger_correct", {"seq": 1, "reason": "failed print", "cost": "0.00"}
            )
            assert result == {"seq": 2, "hash": result["hash"], "corrects": 1}
            key = await commands.call("ledger_key")
            assert key["records"] == 2 and key["algorithm"] == "Ed25519"
            for bad in ({"seq": 99, "reason": "x"}, {"seq": 1, "reason": "x", "cost": "lots"}):
                try:
                    await commands.call("ledger_correct", bad)
                except CommandError as err:
                    assert err.code in ("not_found", "bad_args")
                else:
                    raise AssertionError(f"{bad} was accepted")
    assert (tmp_path / "state" / "ledger-ed25519.pem").exists()


async def test_records_survive_a_broker_outage_in_order(
    tmp_path: Path, broker: Any, collector_factory: Any
) -> None:
    bus, commands = EventBus(), CommandRouter()
    tconf = telemetry_config(broker)
    telemetry = TelemetryService(
        tconf, MACHINE, "Printer", tmp_path / "state" / "gateway.db", tmp_path, bus,
        commands, "test", backoff=Backoff(initial=0.05, maximum=0.3, jitter=0.0),
    )
    service = ledger(tmp_path, bus, commands, telemetry=tconf)
    topic = f"gateway/{MACHINE}/event/ledger"
    async with (
        collector_factory(broker, topic, client_id="membership") as sub,
        run(telemetry, service),
    ):
        await asyncio.wait_for(telemetry.connected.wait(), 5)
        for n in range(1, 6):
            bus.publish(usage(n))
        await sub.wait_for_seq(5)
        broker.stop()
        for n in range(6, 16):
            bus.publish(usage(n))
        await asyncio.sleep(1.5)  # records wait in the outbox meanwhile
        assert service.appended == 15
        broker.start()
        for n in range(16, 21):
            bus.publish(usage(n))
        await sub.wait_for_seq(20)
        assert service.mirror is not None
        async with asyncio.timeout(10):
            while service.store is None or service.store.cursor("published") < 20:
                await asyncio.sleep(0.05)
    # At least once, in order: a redelivery after the reconnect repeats a record (the
    # telemetry outbox's contract; receivers de-duplicate by seq), never skips one.
    first_seen: dict[int, str] = {}
    for t, payload in sub.messages:
        assert t == topic
        first_seen.setdefault(payload["record"]["seq"], payload["record"]["body"]["session_id"])
    assert list(first_seen) == list(range(1, 21))
    assert list(first_seen.values()) == [f"s{n}" for n in range(1, 21)]

    # The broker's retained copy verifies, and says where it was cut when a record goes.
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        f'[machine]\nid = "{MACHINE}"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[telemetry]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    assert await asyncio.to_thread(main, ["ledger", "verify", "--from-broker", "-c", str(cfg)]) == 0
    import aiomqtt

    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(f"gateway/{MACHINE}/ledger/record/7", b"", qos=1, retain=True)
    assert await asyncio.to_thread(main, ["ledger", "verify", "--from-broker", "-c", str(cfg)]) == 1


async def test_a_restored_backup_does_not_overwrite_the_brokers_copy(
    tmp_path: Path, broker: Any
) -> None:
    import sqlite3

    from gateway.ledger import keys
    from gateway.ledger.mirror import BrokerMirror
    from gateway.ledger.store import LedgerStore

    state = tmp_path / "state"
    key = keys.load_or_create(state / "ledger-ed25519.pem")
    store = LedgerStore(state / "gateway.db", key, MACHINE)
    tconf = telemetry_config(broker)
    doc = {"algorithm": "Ed25519", "public_key": keys.public_text(key.public_key())}

    def mirror(s: LedgerStore) -> BrokerMirror:
        return BrokerMirror(
            s, tconf, prefix=f"gateway/{MACHINE}", key_document=doc, client_id="mirror",
            backoff=Backoff(initial=0.05, maximum=0.2, jitter=0.0),
        )

    store.append("session", 1.0, {"n": 1})
    store.append("session", 2.0, {"n": 2})
    backup = sqlite3.connect(tmp_path / "backup.db")
    with sqlite3.connect(state / "gateway.db") as live:
        live.backup(backup)
    backup.close()
    store.append("session", 3.0, {"n": 3})
    first = mirror(store)
    task = asyncio.create_task(first.run())
    async with asyncio.timeout(10):
        while store.cursor("published") < 3:
            await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.close()

    # The older backup comes back and records a different session 3.
    (tmp_path / "backup.db").replace(state / "gateway.db")
    for suffix in ("-wal", "-shm"):
        (state / f"gateway.db{suffix}").unlink(missing_ok=True)
    restored = LedgerStore(state / "gateway.db", key, MACHINE)
    restored.append("session", 4.0, {"n": "not the same"})
    second = mirror(restored)
    task = asyncio.create_task(second.run())
    try:
        async with asyncio.timeout(10):
            while second.conflict is None:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "older backup" in second.conflict
    assert restored.cursor("published") == 0  # the backup predates the copy; nothing sent
    restored.close()

    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        f'[machine]\nid = "{MACHINE}"\n[storage]\nstate_dir = "{state}"\n'
        f'[telemetry]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    # The broker's copy is still the original chain, and verifies on its own.
    assert await asyncio.to_thread(main, ["ledger", "verify", "--from-broker", "-c", str(cfg)]) == 0

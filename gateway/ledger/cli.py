"""``gateway ledger verify|export|correct``: check, export and correct the usage ledger.

``verify`` reads the local database (default), an exported JSON file, a file of
JSON lines (records, or the ``event/ledger`` MQTT messages), or the broker's
retained copy (``--from-broker``), and names the first bad record.  The key to
check against is ``--key`` when given (best: from the admin page, a channel the
file's author does not control), else the one in the file or on the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from gateway.config import GatewayConfig
from gateway.ledger import keys
from gateway.ledger.chain import Record, Verdict, verify_chain
from gateway.ledger.errors import LedgerError, LedgerFormatError
from gateway.ledger.mirror import topics
from gateway.ledger.store import LedgerStore, export_csv, export_json
from gateway.mqtt import client_options, tls_context

QUIET = 1.0  # seconds without a retained message: the broker has sent them all
BROKER_WAIT = 30.0


def _config(path: str | None) -> GatewayConfig:
    # The same default as every other command: config/sim.toml inside a checkout, the
    # installed /etc/gateway/gateway.toml otherwise, said on stderr.
    from gateway.cli import _load

    return _load(path, announce=True)


def _open_store(config: GatewayConfig) -> LedgerStore:
    key_path = config.storage.state_dir / config.ledger.key_file
    if not key_path.exists():
        raise LedgerError(f"no ledger key at {key_path}: has this gateway recorded anything yet?")
    return LedgerStore(config.storage.database, keys.load_or_create(key_path), config.machine.id)


# --------------------------------------------------------------------------- reading files


def _record_of(item: Any) -> Record:
    if isinstance(item, dict) and isinstance(item.get("record"), dict):
        item = item["record"]  # an event/ledger message or a webhook body
    return Record.from_dict(item)


def read_file(path: Path) -> tuple[list[Record], str | None, tuple[int, str] | None]:
    """Records, the public key and the head a file carries (an export or JSON lines)."""
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        head = doc.get("head")
        head_pair = (int(head["seq"]), str(head["hash"])) if isinstance(head, dict) else None
        records = [_record_of(r) for r in doc["records"]]
        key = doc.get("public_key") if isinstance(doc.get("public_key"), str) else None
        return records, key, head_pair
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(_record_of(json.loads(line)))
        except ValueError as err:
            raise LedgerFormatError(f"{path}:{number}: not JSON ({err})") from err
    return records, None, None


# --------------------------------------------------------------------------- broker


async def read_broker(
    config: GatewayConfig,
) -> tuple[list[Record], str | None, tuple[int, str] | None]:
    import aiomqtt

    t = config.telemetry
    names = topics(t.topic_prefix(config.machine.id))
    records: dict[int, Record] = {}
    key: str | None = None
    head: tuple[int, str] | None = None
    tls = await asyncio.to_thread(tls_context, t)
    identifier = f"ledger-verify-{int(time.time() * 1000) % 10**9}"
    async with aiomqtt.Client(**client_options(t, identifier=identifier, tls=tls)) as client:
        await client.subscribe(f"{names['key'].rsplit('/', 1)[0]}/#", qos=1)
        deadline = time.monotonic() + BROKER_WAIT
        messages = client.messages
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(QUIET):
                    message = await anext(messages)
            except TimeoutError:
                break
            body = message.payload if isinstance(message.payload, bytes) else b""
            if not body:
                continue
            topic = message.topic.value
            if topic == names["conflict"]:
                continue
            data = json.loads(body)
            if topic == names["key"]:
                key = data.get("public_key")
            elif topic == names["head"]:
                head = (int(data["seq"]), str(data["hash"]))
            elif topic.startswith(names["records"] + "/"):
                record = Record.from_dict(data)
                records[record.seq] = record
    return [records[s] for s in sorted(records)], key, head


# --------------------------------------------------------------------------- commands


def cmd_verify(args: argparse.Namespace) -> int:
    config = _config(args.config) if (args.from_broker or not args.file) else None
    head: tuple[int, str] | None = None
    key_text: str | None = args.key
    where: str
    try:
        if args.from_broker:
            assert config is not None
            records, broker_key, head = asyncio.run(read_broker(config))
            key_text = key_text or broker_key
            where = f"the broker {config.telemetry.host}:{config.telemetry.port}"
        elif args.file:
            records, file_key, head = read_file(Path(args.file))
            key_text = key_text or file_key
            where = args.file
        else:
            assert config is not None
            store = _open_store(config)
            try:
                records = store.records()
                head = store.head()
                key_text = key_text or keys.public_text(store.key.public_key())
            finally:
                store.close()
            where = str(config.storage.database)
        if key_text is None:
            print(
                "gateway ledger verify: no public key; pass --key (see the admin page)",
                file=sys.stderr,
            )
            return 2
        verdict: Verdict = verify_chain(records, keys.parse_public(key_text), expected_head=head)
    except (LedgerError, OSError, ValueError, KeyError) as err:
        print(f"gateway ledger verify: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # aiomqtt's errors, without importing it for file checks
        print(f"gateway ledger verify: cannot read the broker: {err}", file=sys.stderr)
        return 2
    print(f"{where}: {verdict.describe()}")
    if args.key is None and (args.file or args.from_broker):
        print(
            "note: checked against the key the source itself carries; pass --key with the "
            "key from the admin page to rule out a substituted key",
            file=sys.stderr,
        )
    return 0 if verdict.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    config = _config(args.config)
    try:
        store = _open_store(config)
        try:
            records = store.records()
            public = keys.public_text(store.key.public_key())
        finally:
            store.close()
    except (LedgerError, OSError) as err:
        print(f"gateway ledger export: {err}", file=sys.stderr)
        return 1
    if args.format == "csv":
        text = export_csv(records)
    else:
        text = export_json(records, public_key=public, machine_id=config.machine.id)
    out: TextIO = sys.stdout
    with contextlib.ExitStack() as stack:
        if args.output and args.output != "-":
            out = stack.enter_context(open(args.output, "w", newline="", encoding="utf-8"))
        out.write(text)
    print(f"{len(records)} records written", file=sys.stderr)
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    from gateway.ledger.service import correction_body

    config = _config(args.config)
    try:
        store = _open_store(config)
        try:
            original = store.get(args.seq)
            if original is None:
                print(f"gateway ledger correct: there is no record {args.seq}", file=sys.stderr)
                return 1
            body = correction_body(original, reason=args.reason, cost=args.cost, by=args.by)
            record = store.append("correction", time.time(), body)
        finally:
            store.close()
    except (LedgerError, OSError) as err:
        print(f"gateway ledger correct: {err}", file=sys.stderr)
        return 1
    print(f"record {record.seq} corrects record {args.seq}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``gateway ledger ...`` to the main parser's subcommands."""
    lg = sub.add_parser("ledger", help="the signed usage ledger: verify, export, correct")
    lg_sub = lg.add_subparsers(dest="ledger_command", required=True)
    v = lg_sub.add_parser("verify", help="check chain and signatures; name the first bad record")
    v.add_argument("file", nargs="?", help="an export or JSON lines (default: this gateway's)")
    v.add_argument("--from-broker", action="store_true", help="the broker's retained copy")
    v.add_argument("--key", help="the public key to check against (base64, hex or PEM)")
    v.set_defaults(func=cmd_verify)
    e = lg_sub.add_parser("export", help="every record, for accounting")
    e.add_argument("--format", choices=["csv", "json"], default="csv")
    e.add_argument("-o", "--output", help="file to write (default: standard output)")
    e.set_defaults(func=cmd_export)
    c = lg_sub.add_parser("correct", help="append a correction (a refund, a print not billed)")
    c.add_argument("seq", type=int, help="the record to correct")
    c.add_argument("--reason", required=True)
    c.add_argument("--cost", default="0.00", help="what it should have cost")
    c.add_argument("--by", default="admin", help="who corrects it")
    c.set_defaults(func=cmd_correct)
    for p in (v, e, c):
        p.add_argument("--config", "-c", help="the gateway's config file")

"""The ``gateway`` command: the daemon, the simulators, and one-shot tools."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import gateway

if TYPE_CHECKING:
    from gateway.config import GatewayConfig


def _setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


#: The config file of a gateway installed on a Pi (systemd passes it explicitly).
INSTALLED_CONFIG = Path("/etc/gateway/gateway.toml")
#: The file ``make run`` starts the simulation with, relative to a checkout.
CHECKOUT_CONFIG = Path("config") / "sim.toml"


def checkout_config(start: Path) -> Path | None:
    """``config/sim.toml`` of the source checkout containing ``start``, if any.

    A checkout is a folder holding both ``pyproject.toml`` and ``config/sim.toml``;
    ``start`` and its parents are searched, as git finds its repository.
    """
    for folder in (start, *start.parents):
        candidate = folder / CHECKOUT_CONFIG
        if candidate.is_file() and (folder / "pyproject.toml").is_file():
            return candidate
    return None


def default_config(cwd: Path, installed: Path = INSTALLED_CONFIG) -> Path | None:
    """The config file a command uses when ``--config`` is not given.

    From inside a checkout that is the file ``make run`` uses, so ``gateway token
    create`` next to ``make run`` writes where the running simulation reads; on an
    installed gateway it is /etc/gateway/gateway.toml; otherwise the built-in defaults.
    """
    found = checkout_config(cwd)
    if found is not None:
        return found
    return installed if installed.is_file() else None


def _load(path: str | None, *, announce: bool = False) -> GatewayConfig:
    """Load ``path`` or, without one, :func:`default_config`.

    With ``announce``, a command that reads or writes the gateway's state says on
    stderr which config file and state folder it used when the user named none.
    """
    # Imported here: commands that need no config (analyze) start faster without it.
    from gateway.config import ConfigError, load_config

    chosen: Path | str | None = path
    if chosen is None:
        chosen = default_config(Path.cwd())
    try:
        config = load_config(chosen)
    except ConfigError as err:
        print(f"gateway: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    if announce and path is None:
        source = f"config {chosen}" if chosen is not None else "built-in defaults (no --config)"
        print(
            f"gateway: using {source}; state folder {config.storage.state_dir}",
            file=sys.stderr,
        )
    return config


# -- gateway run ----------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from gateway import daemon

    config = _load(args.config)
    _setup_logging(config.logging.level)
    from gateway.ops.journal import use_journal_if_available

    use_journal_if_available(config.machine.id, os.environ)

    def announce(gw: daemon.Gateway) -> None:
        mode = " (simulation mode: every device is simulated)" if config.simulation.enabled else ""
        print(f"Gateway {gateway.__version__} running{mode}", flush=True)
        print(
            f"  machine:  {config.machine.name} [{config.machine.id}], {config.machine.firmware}",
            flush=True,
        )
        if gw.simulator is not None and gw.simulator.controller is not None:
            print(f"  simulated controller: {gw.simulator.controller.path}", flush=True)
        print(f"  state:    {config.storage.state_dir}", flush=True)
        print(f"  web UI:   {gw.web_url}", flush=True)
        print(f"  status:   {gw.web_url}api/status", flush=True)
        print("Press Ctrl-C to stop.", flush=True)

    asyncio.run(daemon.run(config, announce=announce))
    return 0


# -- gateway sim ------------------------------------------------------------------------


def cmd_sim(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.machine.sim.firmware import SimulatedFirmware
    from gateway.machine.sim.grbl import SimulatedGrbl
    from gateway.machine.sim.link import Faults
    from gateway.machine.sim.marlin import SimulatedMarlin
    from gateway.machine.sim.pty import PtyController

    _setup_logging("WARNING")
    fw: SimulatedFirmware
    if args.firmware == "grbl":
        fw = SimulatedGrbl(rx_buffer_size=args.rx_buffer or 128, time_scale=args.time_scale)
    else:
        fw = SimulatedMarlin(
            rx_buffer_size=args.rx_buffer or 128,
            advanced_ok=not args.no_advanced_ok,
            time_scale=args.time_scale,
        )
    faults = Faults(
        corrupt=args.error_rate,
        drop_reply=args.drop_rate,
        garble_reply=args.drop_rate,
        seed=args.seed,
    )

    async def serve() -> None:
        async with PtyController(fw, baud=args.baud, faults=faults) as sim:
            print(sim.path, flush=True)
            print(
                f"simulated {args.firmware} at {args.baud} baud on {sim.path}; Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            import signal

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        print(f"executed {len(fw.executed)} lines, {fw.overflows} RX overflows", file=sys.stderr)

    asyncio.run(serve())
    return 0


# -- gateway print ----------------------------------------------------------------------


def cmd_print(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.machine.oneshot import PrintError, print_file

    _setup_logging("DEBUG" if args.verbose else "WARNING")
    try:
        result = asyncio.run(
            print_file(
                Path(args.file),
                port=args.port,
                firmware=args.firmware,
                baud=args.baud,
                rx_buffer_size=args.rx_buffer,
                max_line_length=args.max_line_length,
                response_timeout=args.timeout,
                progress=None if args.json else sys.stderr,
            )
        )
    except PrintError as err:
        if args.json:
            print(json.dumps({"outcome": "failed", "error": str(err)}))
        else:
            print(f"gateway print: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['outcome']}: {result['lines']} lines in {result['seconds']:.2f} s "
            f"({result['lines_per_s']:.0f} lines/s, wire {result['wire_utilisation']:.0%}), "
            f"{result['resends']} resends, {result['errors']} errors"
            + (f" - {result['reason']}" if result.get("reason") else "")
        )
    return 0 if result["outcome"] == "completed" else 1


# -- gateway analyze --------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    from gateway.machine.analysis import analyze_file

    path = Path(args.file)
    try:
        analysis = analyze_file(path, firmware=args.firmware)
    except OSError as err:
        print(f"gateway analyze: cannot read {path}: {err.strerror}", file=sys.stderr)
        return 1
    data = analysis.to_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    for key, value in data.items():
        if isinstance(value, float):
            value = round(value, 3)
        print(f"{key:>20}: {value}")
    return 0


# -- gateway sessions export --------------------------------------------------------------


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from err


def cmd_sessions_export(args: argparse.Namespace) -> int:
    from gateway.access.cli import sessions_export
    from gateway.access.errors import AccessError

    config = _load(args.config, announce=True)
    out: TextIO = sys.stdout
    try:
        with contextlib.ExitStack() as stack:
            if args.output and args.output != "-":
                out = stack.enter_context(open(args.output, "w", newline="", encoding="utf-8"))
            if args.usage and config.slicer.enabled:
                # Members' jobs (slicer, USB, web) join the usage totals as extra columns.
                from gateway.slicer.cli import add_job_columns

                text = io.StringIO()
                sessions_export(
                    config.storage.database, text, since=args.since, until=args.until, usage=True
                )
                rows = add_job_columns(text.getvalue(), config.storage.database, out)
            else:
                rows = sessions_export(
                    config.storage.database,
                    out,
                    since=args.since,
                    until=args.until,
                    usage=args.usage,
                )
    except (AccessError, ValueError, OSError) as err:
        print(f"gateway sessions export: {err}", file=sys.stderr)
        return 1
    print(f"{rows} rows written", file=sys.stderr)
    return 0


# -- gateway token -----------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.web import tokens_cli

    config = _load(args.config, announce=True)
    db = config.storage.database
    if args.token_command == "create":
        return tokens_cli.token_create(db, args.name, args.scope)
    if args.token_command == "revoke":
        return tokens_cli.token_revoke(db, args.name)
    return tokens_cli.token_list(db)


# -- gateway slicer-key / slicer-jobs / usb ------------------------------------------------


def cmd_slicer(args: argparse.Namespace) -> int:
    from gateway.slicer import cli as slicer_cli

    if args.command == "usb":
        return slicer_cli.usb(args.url, args.usb_command, args.name)
    db = _load(args.config).storage.database
    if args.command == "slicer-jobs":
        out: TextIO = sys.stdout
        with contextlib.ExitStack() as stack:
            if args.output and args.output != "-":
                out = stack.enter_context(open(args.output, "w", newline="", encoding="utf-8"))
            rows = slicer_cli.jobs_csv(db, out)
        print(f"{rows} rows written", file=sys.stderr)
        return 0
    if args.key_command == "create":
        return slicer_cli.key_create(db, args.member, args.name)
    if args.key_command == "revoke":
        return slicer_cli.key_revoke(db, args.member)
    return slicer_cli.key_list(db)


# -- gateway badge (simulation) -----------------------------------------------------------


def cmd_badge(args: argparse.Namespace) -> int:
    """Present a badge to a running gateway's simulated reader."""
    import httpx

    url = args.url.rstrip("/") + "/api/sim/badge"
    try:
        r = httpx.post(url, json={"uid": args.uid, "reader": args.reader}, timeout=10)
    except httpx.HTTPError as err:
        print(f"gateway badge: cannot reach {url}: {err}; is `make run` running?", file=sys.stderr)
        return 1
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text
        print(f"gateway badge: {message}", file=sys.stderr)
        return 1
    print(json.dumps(r.json()))
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    """Unplug or plug back in a running gateway's simulated controller."""
    import httpx

    url = args.url.rstrip("/") + "/api/sim/controller"
    try:
        r = httpx.post(url, json={"action": args.cable}, timeout=10)
    except httpx.HTTPError as err:
        print(f"gateway controller: cannot reach {url}: {err}; is `make run` running?",
              file=sys.stderr)
        return 1
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text
        print(f"gateway controller: {message}", file=sys.stderr)
        return 1
    print(json.dumps(r.json()))
    return 0


# -- gateway fleet -----------------------------------------------------------------------


def cmd_fleet(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.telemetry.fleet import FleetError, run_fleet

    try:
        asyncio.run(run_fleet(args.broker, args.prefix, once=args.once))
    except FleetError as err:
        print(f"gateway fleet: {err}", file=sys.stderr)
        return 1
    return 0


# -- gateway backup / restore / relay-off (operations) ------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    from gateway.ops.backup import BackupError, backup_database

    config = _load(args.config, announce=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.output or f"gateway-{config.machine.id}-{stamp}.db")
    try:
        info = backup_database(config.storage.database, out)
    except BackupError as err:
        print(f"gateway backup: {err}", file=sys.stderr)
        return 1
    print(f"backed up {config.storage.database} to {info.path} ({info.size} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from gateway.ops.backup import BackupError, daemon_answers, required_tables, restore_database

    config = _load(args.config, announce=True)
    if daemon_answers(config.web.host, config.web.port):
        print(
            f"gateway restore: the gateway is running (port {config.web.port} answers); "
            "stop it first: sudo systemctl stop gateway",
            file=sys.stderr,
        )
        return 1
    try:
        info = restore_database(
            Path(args.file),
            config.storage.database,
            required=required_tables(config.access.enabled),
        )
    except BackupError as err:
        print(f"gateway restore: {err}", file=sys.stderr)
        return 1
    print(f"restored {args.file} into {info.path}; the previous database is {info.path}.bak")
    return 0


def cmd_relay_off(args: argparse.Namespace) -> int:
    from gateway.access.errors import AccessError
    from gateway.ops.relay import relay_off

    config = _load(args.config)
    try:
        print(f"gateway relay-off: {relay_off(config)}", file=sys.stderr)
    except AccessError as err:
        print(f"gateway relay-off: {err}", file=sys.stderr)
        return 1
    return 0


# -- parser -------------------------------------------------------------------------------

CONFIG_HELP = (
    "TOML config file (default: config/sim.toml inside a source checkout, as `make run` "
    "uses; else /etc/gateway/gateway.toml if it exists; else built-in defaults)"
)


def _add_analyze(sub: Any) -> None:
    a = sub.add_parser("analyze", help="lines, extents, filament and duration of a file")
    a.add_argument("file")
    a.add_argument("--firmware", choices=["marlin", "grbl"], default="marlin")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_analyze)


#: Commands that need nothing beyond their own module, and how to add each to the parser:
#: ``gateway <command>`` builds a parser with that command alone.  Building every command's
#: parser, and loading the ledger's command-line module (the config models, SQLite and
#: cryptography), takes longer than ``gateway analyze`` takes for a typical file.
SELF_CONTAINED: dict[str, Callable[[Any], None]] = {"analyze": _add_analyze}


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``only`` one of :data:`SELF_CONTAINED`."""
    p = argparse.ArgumentParser(prog="gateway", description=gateway.__doc__)
    p.add_argument("--version", action="version", version=f"gateway {gateway.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    if only is not None:
        SELF_CONTAINED[only](sub)
        return p

    r = sub.add_parser("run", help="run the daemon")
    r.add_argument("--config", "-c", help=CONFIG_HELP)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sim", help="serve a simulated controller on a pseudo-terminal")
    s.add_argument("firmware", choices=["marlin", "grbl"])
    s.add_argument("--baud", type=int, default=115200, help="emulated wire rate")
    s.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="probability per line of a corrupted byte (Marlin detects it)",
    )
    s.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        help="probability per reply line of being dropped or garbled",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rx-buffer", type=int, default=None, help="RX buffer bytes (128)")
    s.add_argument(
        "--time-scale", type=float, default=0.0, help="motion time factor (0: moves are instant)"
    )
    s.add_argument("--no-advanced-ok", action="store_true", help="Marlin: plain ok without N/P/B")
    s.set_defaults(func=cmd_sim)

    pr = sub.add_parser("print", help="stream one file to a controller and exit")
    pr.add_argument("file")
    pr.add_argument("--port", required=True, help="serial device path or glob")
    pr.add_argument("--firmware", choices=["marlin", "grbl"], required=True)
    pr.add_argument("--baud", type=int, default=115200)
    pr.add_argument("--rx-buffer", type=int, default=127)
    pr.add_argument(
        "--max-line-length",
        type=int,
        default=None,
        help="longest line the firmware accepts (Marlin 96, GRBL 80)",
    )
    pr.add_argument("--timeout", type=float, default=10.0, help="seconds without a reply")
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.add_argument("--verbose", "-v", action="store_true")
    pr.set_defaults(func=cmd_print)

    _add_analyze(sub)

    se = sub.add_parser("sessions", help="badge session records")
    se_sub = se.add_subparsers(dest="sessions_command", required=True)
    ex = se_sub.add_parser("export", help="sessions (or usage totals) as CSV")
    ex.add_argument("--config", "-c", help=CONFIG_HELP)
    ex.add_argument("--since", type=_date, help="first day, e.g. 2026-11-01 (UTC)")
    ex.add_argument("--until", type=_date, help="day after the last, e.g. 2026-12-01")
    ex.add_argument(
        "--usage",
        action="store_true",
        help="totals per member and machine: powered time, job time, filament",
    )
    ex.add_argument("-o", "--output", help="file to write (default: standard output)")
    ex.set_defaults(func=cmd_sessions_export)

    t = sub.add_parser("token", help="API tokens for remote admins")
    t_sub = t.add_subparsers(dest="token_command", required=True)
    tc = t_sub.add_parser("create", help="create a token; its secret is shown once")
    tc.add_argument("--name", required=True)
    tc.add_argument("--scope", choices=["read", "operate", "admin"], required=True)
    tl = t_sub.add_parser("list", help="list tokens (never their secrets)")
    tr = t_sub.add_parser("revoke", help="revoke a token by name")
    tr.add_argument("name")
    for tp in (tc, tl, tr):
        tp.add_argument("--config", "-c", help=CONFIG_HELP)
        tp.set_defaults(func=cmd_token)

    sk = sub.add_parser("slicer-key", help="members' slicer keys (OctoPrint API keys)")
    sk_sub = sk.add_subparsers(dest="key_command", required=True)
    skc = sk_sub.add_parser("create", help="create or replace a member's key; shown once")
    skc.add_argument("--member", required=True, help="member id, e.g. m-ada")
    skc.add_argument("--name", required=True, help="member's name, e.g. 'Ada Lovelace'")
    skl = sk_sub.add_parser("list", help="list keys (never their secrets)")
    skr = sk_sub.add_parser("revoke", help="revoke every key of a member")
    skr.add_argument("member")
    sj = sub.add_parser("slicer-jobs", help="members' jobs: who uploaded, door, who released")
    sj_sub = sj.add_subparsers(dest="jobs_command", required=True)
    sje = sj_sub.add_parser("export", help="as CSV")
    sje.add_argument("-o", "--output", help="file to write (default: standard output)")
    for sp in (skc, skl, skr, sje):
        sp.add_argument("--config", "-c", help="the gateway's config file")
        sp.set_defaults(func=cmd_slicer)
    us = sub.add_parser("usb", help="plug in or pull out a simulated USB stick (simulation)")
    us.add_argument("usb_command", choices=["plug", "unplug"])
    us.add_argument("--name", default="STICK")
    us.add_argument("--url", default="http://127.0.0.1:8080/")
    us.set_defaults(func=cmd_slicer)

    sc = sub.add_parser(
        "controller", help="unplug or plug back in the simulated controller (simulation)"
    )
    sc.add_argument("cable", choices=["plug", "unplug"])
    sc.add_argument("--url", default="http://127.0.0.1:8080/")
    sc.set_defaults(func=cmd_controller)

    b = sub.add_parser("badge", help="present a badge to a running gateway in simulation mode")
    b.add_argument("uid", help="card UID in hex, e.g. 04A1B2C3")
    b.add_argument("--url", default="http://127.0.0.1:8080/")
    b.add_argument("--reader", default="sim")
    b.set_defaults(func=cmd_badge)

    f = sub.add_parser("fleet", help="live overview of every gateway on the broker")
    f.add_argument(
        "--broker",
        default="mqtt://localhost:1883",
        help="mqtt://user:password@host:port or mqtts://...",
    )
    f.add_argument("--prefix", default="gateway")
    f.add_argument("--once", action="store_true", help="print one table and exit")
    f.set_defaults(func=cmd_fleet)

    bk = sub.add_parser("backup", help="consistent copy of the state database, while running")
    bk.add_argument("--config", "-c", help=CONFIG_HELP)
    bk.add_argument("-o", "--output", help="file to write (default: gateway-<id>-<time>.db)")
    bk.set_defaults(func=cmd_backup)

    rs = sub.add_parser("restore", help="replace the state database with a backup (stopped)")
    rs.add_argument("file", help="a file made by `gateway backup`")
    rs.add_argument("--config", "-c", help=CONFIG_HELP)
    rs.set_defaults(func=cmd_restore)

    ro = sub.add_parser("relay-off", help="drive the relay pin off (systemd ExecStopPost)")
    ro.add_argument("--config", "-c", help=CONFIG_HELP)
    ro.set_defaults(func=cmd_relay_off)

    from gateway.ledger.cli import add_parser as add_ledger_parser

    add_ledger_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    only = words[0] if words and words[0] in SELF_CONTAINED else None
    args = build_parser(only=only).parse_args(words)
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return 130

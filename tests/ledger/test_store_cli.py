"""The SQLite ledger and ``gateway ledger verify|export|correct`` on real files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.ledger import keys
from gateway.ledger.store import LedgerStore


def write_config(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[machine]\nid = "printer-1"\n[storage]\nstate_dir = "{state}"\n')
    return cfg


def fill(tmp_path: Path, n: int = 4) -> LedgerStore:
    state = tmp_path / "state"
    key = keys.load_or_create(state / "ledger-ed25519.pem")
    store = LedgerStore(state / "gateway.db", key, "printer-1")
    for i in range(n):
        store.append(
            "session",
            1.7e9 + i * 60,
            {"session_id": f"s{i}", "member_id": "m-ada", "member_name": "Ada",
             "powered_seconds": 600.0, "busy_seconds": 420.0, "idle_seconds": 180.0,
             "energy_wh": 140.0, "grams": 18.0, "cost": "1.85", "currency": "EUR",
             "estimated": False},
        )
    return store


def test_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    a = keys.load_or_create(path)
    b = keys.load_or_create(path)
    assert keys.public_text(a.public_key()) == keys.public_text(b.public_key())
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.public_text(keys.parse_public(keys.public_text(a.public_key()))) == (
        keys.public_text(a.public_key())
    )


def test_verify_export_and_an_edited_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    fill(tmp_path).close()
    assert main(["ledger", "verify", "-c", str(cfg)]) == 0
    assert "ok: 4 records" in capsys.readouterr().out

    out = tmp_path / "ledger.json"
    assert main(["ledger", "export", "--format", "json", "-o", str(out), "-c", str(cfg)]) == 0
    assert main(["ledger", "verify", str(out)]) == 0
    doc = json.loads(out.read_text())
    doc["records"][2]["body"]["cost"] = "0.00"
    out.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["ledger", "verify", str(out)]) == 1
    assert "record #3 (seq 3)" in capsys.readouterr().out

    csv_out = tmp_path / "ledger.csv"
    assert main(["ledger", "export", "--format", "csv", "-o", str(csv_out), "-c", str(cfg)]) == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("seq,time,kind,member_id")
    assert len(lines) == 5 and ",1.85,EUR," in lines[1]


def test_a_deleted_row_breaks_the_chain_visibly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    store = fill(tmp_path)
    db = sqlite3.connect(tmp_path / "state" / "gateway.db")
    db.execute("DELETE FROM ledger WHERE seq = 4")  # the newest row, which no link protects
    db.commit()
    db.close()
    store.append("session", 2e9, {"session_id": "s9", "cost": "0.10"})
    store.close()
    assert main(["ledger", "verify", "-c", str(cfg)]) == 1
    assert "seq 5 where 4 was due" in capsys.readouterr().out


def test_corrections_are_new_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    fill(tmp_path, 2).close()
    assert main(["ledger", "correct", "2", "--reason", "failed print", "-c", str(cfg)]) == 0
    assert main(["ledger", "verify", "-c", str(cfg)]) == 0
    assert "ok: 3 records" in capsys.readouterr().out
    assert main(["ledger", "correct", "9", "--reason", "nope", "-c", str(cfg)]) == 1


def test_garbage_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"seq": 1}\nnot json\n')
    assert main(["ledger", "verify", str(bad), "--key", "A" * 44]) == 2
    assert "gateway ledger verify:" in capsys.readouterr().err

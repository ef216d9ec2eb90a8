from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_are_valid() -> None:
    sim = load_config(ROOT / "config" / "sim.toml")
    assert sim.simulation.enabled
    assert sim.storage.state_dir.is_absolute()
    example = load_config(ROOT / "config" / "gateway.example.toml")
    assert example.serial.port == "/dev/ttyACM0"


def test_errors_name_the_key_and_why(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text('[machine]\nfirmware = "smoothie"\n[serial]\nbaud = -1\nbuad = 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = str(err.value)
    assert "machine.firmware" in text and "smoothie" in text
    assert "serial.baud" in text
    assert "serial.buad: unknown key" in text


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text("[machine\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "g.toml"
    f.write_text("[web]\nport = 9000\n")
    monkeypatch.setenv("GATEWAY_WEB__PORT", "9100")
    monkeypatch.setenv("GATEWAY_MACHINE__NAME", "Laser")
    cfg = load_config(f)
    assert cfg.web.port == 9100
    assert cfg.machine.name == "Laser"


def test_config_is_frozen() -> None:
    cfg = load_config()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        cfg.web.port = 1  # type: ignore[misc]


def test_relative_state_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "g.toml"
    f.parent.mkdir()
    f.write_text('[storage]\nstate_dir = "state"\n')
    assert load_config(f).storage.state_dir == (tmp_path / "sub" / "state").resolve()

"""`onecard-central` commands, run in-process through ``main(argv)``."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from central.cli import _parser, main
from central.config import CentralConfig, CentralConfigError
from protocol.crypto import SigningKey, fingerprint


@pytest.fixture
def cfg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "central.toml"
    assert main(["--config", str(path), "init", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    return path


def test_init_writes_private_key_config_and_prints_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    conf = CentralConfig.load(tmp_path / "c" / "central.toml")
    assert stat.S_IMODE(conf.key_file.stat().st_mode) == 0o600
    key_hex = next(x.split()[-1] for x in out.splitlines() if x.startswith("central key"))
    assert fingerprint(bytes.fromhex(key_hex)) in out
    assert conf.db.exists()
    # a second init refuses to overwrite the key of a running site
    assert main(["init", "--dir", str(tmp_path / "c")]) == 1


def test_enrol_shows_fingerprint_and_nodes_lists_it(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey(b"n" * 32)
    assert main(["--config", str(cfg), "enrol", "pharmacy-01", "--key", key.public_key.hex(),
                 "--role", "pharmacy"]) == 0
    assert key.fingerprint in capsys.readouterr().out
    assert main(["--config", str(cfg), "nodes"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("pharmacy-01"))
    assert line.split()[1:4] == ["pharmacy", "offline", "never"]


@pytest.mark.parametrize(
    ("node", "key", "role"),
    [
        ("Bad Node", "00" * 32, "cashier"),  # not a node id
        ("central", "00" * 32, "cashier"),  # reserved
        ("cashier-09", "zz", "cashier"),  # not hex
        ("cashier-09", "00" * 31, "cashier"),  # 31 bytes
        ("cashier-09", "00" * 32, "janitor"),  # unknown role
    ],
)
def test_enrol_refuses_bad_input(cfg: Path, node: str, key: str, role: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(cfg), "enrol", node, "--key", key, "--role", role]) == 1
    assert capsys.readouterr().err


def test_enrol_twice_and_revoke(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k = SigningKey(b"r" * 32).public_key.hex()
    args = ["--config", str(cfg), "enrol", "cashier-05", "--key", k, "--role", "cashier"]
    assert main(args) == 0
    assert main(args) == 1  # already enrolled: revoke first
    assert main(["--config", str(cfg), "revoke", "cashier-05"]) == 0
    assert main(["--config", str(cfg), "revoke", "nobody"]) == 1
    assert main(["--config", str(cfg), "revoke", "central"]) == 1  # never revoke central
    capsys.readouterr()
    main(["--config", str(cfg), "nodes"])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("cashier-05"))
    assert " revoked " in line
    assert main(args) == 0  # re-enrolling a revoked node rotates its key


def test_missing_or_bad_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "nodes"]) == 2
    assert "onecard-central init" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[central]\nport = "eighty"\n')
    with pytest.raises(CentralConfigError):
        CentralConfig.load(bad)
    bad.write_text("[central]\ncolour = 1\n")
    assert main(["--config", str(bad), "nodes"]) == 2


def test_every_command_has_help_text() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helps = {a.dest: a.help for a in sub._choices_actions}  # type: ignore[attr-defined]
    assert set(helps) == {"init", "enrol", "revoke", "nodes", "serve", "conflicts",
                          "console", "import"}
    assert all(h and len(h) > 10 for h in helps.values())


def test_max_skew_ms_is_read_and_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "central.toml"
    cfg.write_text("[central]\nmax_skew_ms = 90000\n", encoding="utf-8")
    assert CentralConfig.load(cfg).max_skew_ms == 90_000
    cfg.write_text("[central]\n", encoding="utf-8")
    assert CentralConfig.load(cfg).max_skew_ms == 300_000
    cfg.write_text("[central]\nmax_skew_ms = 0\n", encoding="utf-8")
    with pytest.raises(CentralConfigError, match="max_skew_ms"):
        CentralConfig.load(cfg)

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
    assert main(args) == 1  # a revoked node stays revoked: enrol does not bring it back
    assert "stays revoked" in capsys.readouterr().err


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
    assert set(helps) == {"init", "enrol", "rotate", "rotate-central", "revoke", "nodes",
                          "serve", "conflicts", "console", "import", "catalogue", "dormant",
                          "backup", "restore", "audit", "balance", "verify", "limits",
                          "staff", "snapshot"}
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


def test_language_is_read_and_checked(tmp_path: Path, cfg: Path) -> None:
    assert CentralConfig.load(cfg).language == "zh"  # init writes the default: zh
    assert 'language = "zh"' in cfg.read_text()
    en = tmp_path / "en.toml"
    en.write_text('[central]\nlanguage = "en"\n', encoding="utf-8")
    assert CentralConfig.load(en).language == "en"
    en.write_text('[central]\nlanguage = "fr"\n', encoding="utf-8")
    with pytest.raises(CentralConfigError, match='language must be "zh" or "en"'):
        CentralConfig.load(en)


def test_console_opens_in_the_configured_language(
        cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from central.console.app import ConsoleApp

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(ConsoleApp, "run", lambda self: seen.append((self.language, self.title)))
    assert main(["--config", str(cfg), "console", "--operator", "it.li"]) == 0
    cfg.write_text(cfg.read_text().replace('language = "zh"', 'language = "en"'))
    assert main(["--config", str(cfg), "console", "--operator", "it.li"]) == 0
    assert seen == [("zh", "一卡通 信息科控制台"), ("en", "onecard central")]


def test_init_as_the_readme_says_then_enrol_without_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--config /etc/onecard/central.toml init --dir /var/lib/onecard`, then plain
    `enrol`: the config is where --config said, and the default finds it."""
    import central.config

    etc, data = tmp_path / "etc" / "central.toml", tmp_path / "var"
    monkeypatch.setattr(central.config, "SYSTEM_CONFIG", etc)
    monkeypatch.delenv("ONECARD_CENTRAL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # not where anything is
    assert main(["--config", str(etc), "init", "--dir", str(data)]) == 0
    conf = CentralConfig.load(etc)
    assert conf.db == (data / "central.sqlite3").resolve() and conf.db.exists()
    assert conf.key_file == (data / "central.key").resolve()
    assert not (data / "central.toml").exists()
    key = SigningKey(b"k" * 32).public_key.hex()
    assert main(["enrol", "cashier-01", "--key", key, "--role", "cashier"]) == 0
    capsys.readouterr()
    assert main(["nodes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(x.startswith("cashier-01") for x in lines)
    central_line = next(x for x in lines if x.startswith("central"))
    assert " self " in central_line and "offline" not in central_line


@pytest.mark.parametrize("command", [
    ["enrol", "cashier-01", "--key", "ab" * 32, "--role", "cashier"], ["revoke", "cashier-01"],
    ["nodes"], ["serve"], ["conflicts", "list"], ["conflicts", "show", "x"],
    ["conflicts", "ack", "x", "--operator", "a"],
    ["conflicts", "resolve", "x", "--remedy", "debt", "--reason", "r", "--operator", "a"],
    ["console"]])
@pytest.mark.parametrize("config", ["missing", "directory", "not toml", "binary", "language",
                                    "no database", "damaged database"])
def test_no_traceback_for_a_missing_or_damaged_config(
        tmp_path: Path, command: list[str], config: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "central.toml"
    if config == "directory":
        path.mkdir()
    elif config == "not toml":
        path.write_text("[central\n")
    elif config == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    elif config == "language":
        path.write_text('[central]\nlanguage = "klingon"\n')
    elif config == "no database":
        path.write_text('[central]\ndb = "nowhere.sqlite3"\n')
    elif config == "damaged database":
        (tmp_path / "junk.sqlite3").write_bytes(b"not a database at all" * 200)
        path.write_text('[central]\ndb = "junk.sqlite3"\n')
    status = main(["--config", str(path), *command])
    err = capsys.readouterr().err
    assert status != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_output_into_a_closed_pipe_exits_quietly(cfg: Path) -> None:
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # `onecard-central nodes | head -0`: the reader is gone
    try:
        out = subprocess.run([sys.executable, "-m", "central.cli", "--config", str(cfg), "nodes"],
                             stdout=w, stderr=subprocess.PIPE, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    finally:
        os.close(w)
    assert out.stderr == "" and out.returncode != 0
